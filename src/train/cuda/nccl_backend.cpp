// The NCCL process group for CUDA ranks (compiled with -DCHATMILL_CUDA=ON only).
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "common/error.h"
#include "train/parallel/dist_env.h"

namespace chatmill::train {

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, const DistEnv& env,
                                                    std::chrono::milliseconds timeout) {
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, opts);
}

}  // namespace chatmill::train
