// Entry point of src/model/cuda/persistent_kernels.cu (CUDA builds only): the persistent decode step
// (model/persistent_decode.h) on the current stream, for a PersistentStep already checked by
// persistent_decode.cpp.
#pragma once
#include "model/persistent_decode.h"

namespace chatmill::model::fused::cuda {

void persistent_step(const PersistentStep& s);

// `count` grid barriers in one cooperative launch with the persistent step's grid, and nothing else: what a
// barrier costs (bench/bench_kernels.cpp). word: (1) int32 on the device, zero before the first call.
void grid_barriers(const at::Tensor& word, int64_t count);

}  // namespace chatmill::model::fused::cuda
