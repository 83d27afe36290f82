// The CPU build's side of step_graph.h; src/model/cuda/step_graph_cuda.cpp is the CUDA one.
#ifndef CHATMILL_CUDA
#include "model/step_graph.h"

#include "common/error.h"

namespace chatmill::model {

std::unique_ptr<StepGraph> capture_step_graph(const std::function<void()>&, at::Device) {
  CHATMILL_FAIL("CUDA graphs need a build with -DCHATMILL_CUDA=ON (scripts/gpu_check.sh builds one); "
                "run without --cuda-graph");
}

bool cuda_graphs_built() { return false; }

}  // namespace chatmill::model
#endif
