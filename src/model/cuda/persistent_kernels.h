// Entry point of src/model/cuda/persistent_kernels.cu (CUDA builds only): the persistent decode step
// (model/persistent_decode.h) on the current stream, for a PersistentStep already checked by
// persistent_decode.cpp.
#pragma once
#include "model/persistent_decode.h"

namespace chatmill::model::fused::cuda {

void persistent_step(const PersistentStep& s);

}  // namespace chatmill::model::fused::cuda
