// The error long work throws when its caller asked it to stop.
#pragma once
#include "common/error.h"

namespace chatmill {

// Thrown by long work (generation, an evaluation) that gave up because its caller asked it to stop (a stop
// signal during training): nothing is wrong with the input; the work's results are incomplete and not written.
class Interrupted : public Error {
 public:
  using Error::Error;
};

}  // namespace chatmill
