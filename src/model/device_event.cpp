// The CPU build's side of device_event.h; src/model/cuda/device_event_cuda.cpp is the CUDA one.
#ifndef CHATMILL_CUDA
#include "model/device_event.h"

#include "common/error.h"

namespace chatmill::model {

struct DeviceEvent::Impl {};

DeviceEvent::DeviceEvent(at::Device device) {
  CHATMILL_CHECK(!device.is_cuda(), "a CUDA device needs a build with -DCHATMILL_CUDA=ON (scripts/gpu_check.sh builds "
                 "one)");
}

DeviceEvent::~DeviceEvent() = default;

void DeviceEvent::record() {}

void DeviceEvent::wait() {}

}  // namespace chatmill::model
#endif
