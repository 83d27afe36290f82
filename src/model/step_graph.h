// Records a fixed-shape step into a CUDA graph once and replays it, removing per-kernel launch cost from
// decoding. Available only in builds with CHATMILL_CUDA (see CMakeLists.txt).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>

#include "common/error.h"

namespace chatmill::model {

class StepGraph {
 public:
  virtual ~StepGraph() = default;
  virtual void replay() = 0;
  // Replays `replays` times back to back on the current stream and waits for them: seconds per replay, by
  // device events (what the step takes on the GPU, launch gaps between replays included).
  virtual double seconds_per_replay(int replays) = 0;
};

// What capture_step_graph throws when `body` fails in its eager warm-up, before any capture began, once the
// warm-up's work has finished: the caller may go on without this graph (the engine's autotune leaves such a
// variant out). A failure during the capture itself is a plain chatmill::Error or the library's own.
class StepWarmupError : public Error {
 public:
  using Error::Error;
};

// Runs `body` once eagerly on a side stream (warm-up: cuBLAS handles, allocator pools), then records it.
// The recording does not execute: call replay() for each step. `body` must touch only tensors whose
// shapes and addresses stay fixed. Throws chatmill::Error when the build has no CUDA graph support.
std::unique_ptr<StepGraph> capture_step_graph(const std::function<void()>& body, at::Device device);

bool cuda_graphs_built();

}  // namespace chatmill::model
