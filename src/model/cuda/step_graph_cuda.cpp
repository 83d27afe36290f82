// CUDA graph capture of a decode step (compiled with -DCHATMILL_CUDA=ON only).
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <string>

#include "common/error.h"
#include "model/step_graph.h"

namespace chatmill::model {

namespace {

// `waiter` waits for the work queued so far on `done`.
void wait(const c10::cuda::CUDAStream& waiter, const c10::cuda::CUDAStream& done) {
  at::cuda::CUDAEvent event;
  event.record(done);
  event.block(waiter);
}

class CudaStepGraph : public StepGraph {
 public:
  CudaStepGraph(const std::function<void()>& body, at::Device device) : device_(device) {
    c10::cuda::CUDAGuard device_guard(device);
    // Capture must happen off the legacy default stream.
    c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(device.index());
    c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
    wait(stream, current);
    {
      c10::cuda::CUDAStreamGuard guard(stream);
      try {
        body();  // warm-up
      } catch (const std::exception& e) {
        stream.synchronize();  // what it launched before it threw has finished: nothing runs on unordered
        throw StepWarmupError(std::string("the decode step failed before its CUDA graph capture: ") + e.what());
      }
      stream.synchronize();
      graph_.capture_begin();
      body();
      graph_.capture_end();
    }
    wait(current, stream);
  }

  void replay() override {
    c10::cuda::CUDAGuard device_guard(device_);
    graph_.replay();
  }

  double seconds_per_replay(int replays) override {
    CHATMILL_CHECK(replays >= 1, "seconds_per_replay: replays must be at least 1, got ", replays);
    c10::cuda::CUDAGuard device_guard(device_);
    const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(device_.index());
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);  // timing events
    start.record(stream);
    for (int i = 0; i < replays; ++i) graph_.replay();
    stop.record(stream);
    stop.synchronize();
    return 1e-3 * start.elapsed_time(stop) / replays;
  }

 private:
  at::Device device_;
  at::cuda::CUDAGraph graph_;
};

}  // namespace

std::unique_ptr<StepGraph> capture_step_graph(const std::function<void()>& body, at::Device device) {
  CHATMILL_CHECK(device.is_cuda(), "CUDA graphs need a model on a CUDA device, not ", device);
  return std::make_unique<CudaStepGraph>(body, device);
}

bool cuda_graphs_built() { return true; }

}  // namespace chatmill::model
