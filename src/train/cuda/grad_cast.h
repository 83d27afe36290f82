// The float32 = / += bf16 gradient hand-over of train/cuda/grad_cast_kernels.cuh: which tensors it takes, and
// its entry point (src/train/cuda/grad_cast.cu, CUDA builds only), on the current stream of the tensors' device.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace chatmill::train::grad_cast {

// Whether cast_into takes these tensors: dst float32, src bf16 or fp16, both contiguous, equally many
// elements, on the same device, 16-byte aligned.
inline bool applies(const at::Tensor& dst, const at::Tensor& src) {
  auto aligned = [](const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; };
  return dst.scalar_type() == at::kFloat && (src.scalar_type() == at::kBFloat16 || src.scalar_type() == at::kHalf) &&
         dst.is_contiguous() && src.is_contiguous() && dst.numel() == src.numel() && dst.device() == src.device() &&
         aligned(dst) && aligned(src);
}

// dst = src, or dst += src with `add`, for tensors where applies().
void cast_into_cuda(const at::Tensor& dst, const at::Tensor& src, bool add);

}  // namespace chatmill::train::grad_cast
