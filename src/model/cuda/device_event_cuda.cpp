// model/device_event.h on CUDA (compiled with -DCHATMILL_CUDA=ON only): a CUDA event without timing, recorded on
// the device's current stream; a CPU device needs none.
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>

#include "model/device_event.h"

namespace chatmill::model {

struct DeviceEvent::Impl {
  at::Device device;
  std::optional<at::cuda::CUDAEvent> event;
};

DeviceEvent::DeviceEvent(at::Device device) : impl_(std::make_unique<Impl>(Impl{device, std::nullopt})) {
  if (device.is_cuda()) impl_->event.emplace(cudaEventDisableTiming);
}

DeviceEvent::~DeviceEvent() = default;

void DeviceEvent::record() {
  if (!impl_->event) return;
  const c10::cuda::CUDAGuard guard(impl_->device);
  impl_->event->record(c10::cuda::getCurrentCUDAStream(impl_->device.index()));
}

void DeviceEvent::wait() {
  if (impl_->event) impl_->event->synchronize();
}

}  // namespace chatmill::model
