// A mark in a device's queue of work: record() after queuing work on the current stream; wait() returns once the
// device has done that work (and its writes to pinned host memory are visible). What lets a host queue the next
// decode step before it reads this one's results. On a CPU device both do nothing: the work ran as it was queued;
// so too in a build without -DCHATMILL_CUDA=ON, whose ops wait for a CUDA device where the engine needs them to.
#pragma once
#include <c10/core/Device.h>

#include <memory>

namespace chatmill::model {

class DeviceEvent {
 public:
  explicit DeviceEvent(at::Device device);
  ~DeviceEvent();
  DeviceEvent(const DeviceEvent&) = delete;
  DeviceEvent& operator=(const DeviceEvent&) = delete;
  void record();
  void wait();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chatmill::model
