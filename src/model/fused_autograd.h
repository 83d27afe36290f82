// Training-side layer ops with hand-written backward passes: on CUDA each forward and each backward is one
// pass over memory (a kernel of src/model/cuda/autograd_kernels.cu, or ATen's fused RMSNorm), where autograd
// through HF's op-by-op formulation launches several kernels and keeps more tensors alive. Elsewhere the same
// functions run as LibTorch ops with the same hand-written backward (tested against autograd of the
// reference ops). decoder_layer takes them under `Kernels::Fused`; inference keeps HF's exact op order.
//
// Shape legend: B batch, T positions, H heads, D head dim, C hidden, F intermediate.
#pragma once
#include <ATen/core/Tensor.h>

namespace chatmill::model {

// How a decoder layer computes: HF's op order (inference parity, rounding included) or the fused ops below
// (training: fewer kernels and fewer saved tensors; the same math, bf16 rounding may differ slightly).
enum class Kernels { Reference, Fused };

// On CUDA, LibTorch ops instead of this project's kernels: for tests that compare the two.
struct ForceAtenOps {
  bool on = false;
};

// x: (..., C), weight: (C) -> RMSNorm(x) * weight, statistics in float32; on CUDA ATen's fused kernels.
at::Tensor rms_norm_fused(const at::Tensor& x, const at::Tensor& weight, double eps);

// x: (B, T, H, D) (the layout the projections produce); cos, sin: (B, T, D) in x's dtype (RopeTables).
// -> x * cos + rotate_half(x) * sin: (B, T, H, D) contiguous, rounded where HF's ops round. The backward is
// the same rotation with -sin; only the tables are saved.
at::Tensor rotary_fused(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, ForceAtenOps aten = {});

// gate, up: (..., F) -> silu(gate) * up (silu rounded to the dtype first, as HF). Saves gate and up only:
// silu is recomputed in backward, whose gradients are computed in float32 and rounded once.
at::Tensor swiglu_fused(const at::Tensor& gate, const at::Tensor& up, ForceAtenOps aten = {});

}  // namespace chatmill::model
