// Where a benchmark's time goes: LibTorch's Kineto profiler (CPUs, and CUPTI on a GPU) around a few extra steps
// run after the timed ones, summed per kernel name (GPU) and per operator (CPU), written as a markdown table.
// The GPU rows are kernel time, graph-replayed kernels included; the CPU rows include the time of the operators
// they call (nested), so they overlap. It records what ran in all threads on the GPU, and on the CPU only in the
// thread that started it.
#pragma once
#include <memory>
#include <string>

namespace chatmill::bench {

class OpProfile {
 public:
  // Starts profiling the CPU, and the GPU when `cuda`.
  explicit OpProfile(bool cuda);
  ~OpProfile();
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  // Stops, and writes to `path` the `top` largest rows of each table, per step (`steps` profiled: training
  // steps, or whole generation runs).
  void finish(const std::string& path, int64_t steps, int top = 40);

 private:
  bool cuda_;
  bool running_ = false;
};

}  // namespace chatmill::bench
