// What the bench's own CUDA files (read_streams.cu, block_gemv.cu) share: error checks, and the blocks of a
// kernel the device holds at once.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace chatmill::bench::cuda_util {

// Throws std::runtime_error naming `who` and `what` where e is an error.
inline void check(cudaError_t e, const char* who, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(who) + ": " + what + ": " + cudaGetErrorString(e));
}

// Blocks of `kernel` the current device holds at once, at `threads` threads and `smem` bytes of dynamic
// shared memory.
template <typename K>
int resident(K kernel, int threads, size_t smem, const char* who) {
  int device = 0, sms = 0, per_sm = 0;
  check(cudaGetDevice(&device), who, "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), who, "multiprocessor count");
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem), who, "occupancy");
  return per_sm * sms;
}

}  // namespace chatmill::bench::cuda_util
