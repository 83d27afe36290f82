// What a CUDA device is and what it has used (CUDA builds only: src/train/cuda/device_info.cpp).
#pragma once
#include <string>

namespace chatmill::train {

std::string cuda_device_name(int device);
// Makes `device` this thread's current CUDA device: a rank's kernels, streams and NCCL calls then use its own GPU.
void use_cuda_device(int device);
// Peak bytes allocated through LibTorch's caching allocator on `device`, in MiB.
double cuda_peak_memory_mb(int device);

}  // namespace chatmill::train
