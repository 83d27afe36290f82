// The CPU build's side of device_event.h; src/model/cuda/device_event_cuda.cpp is the CUDA one.
#ifndef CHATMILL_CUDA
#include "model/device_event.h"

namespace chatmill::model {

struct DeviceEvent::Impl {};

// Without this project's CUDA code a CUDA model still runs (LibTorch's ops), and what the engine waits for is done
// on return: model::advance_greedy's reference copies its ids to the host, which waits for the device.
DeviceEvent::DeviceEvent(at::Device) {}

DeviceEvent::~DeviceEvent() = default;

void DeviceEvent::record() {}

void DeviceEvent::wait() {}

}  // namespace chatmill::model
#endif
