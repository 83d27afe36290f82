// Entry point of src/train/cuda/cross_entropy.cu (CUDA builds only): the fused per-row cross-entropy of
// train/cuda/cross_entropy_kernels.cuh. train/linear_cross_entropy.h documents the op (cross_entropy_rows);
// tensors arrive checked there, and the kernel launches on the current stream.
#pragma once
#include <ATen/core/Tensor.h>

namespace chatmill::train::cross_entropy_cuda {

// logits: (n, V) contiguous, overwritten with d loss / d logits when `grad`; targets: (n) int64;
// losses: (n) float32, written with each row's loss.
void cross_entropy_rows(const at::Tensor& logits, const at::Tensor& targets, const at::Tensor& losses, bool grad);

}  // namespace chatmill::train::cross_entropy_cuda
