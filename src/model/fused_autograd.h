// Training-side layer ops with hand-written backward passes: on CUDA each forward and each backward is one
// pass over memory (a kernel of src/model/cuda/autograd_kernels.cu, or ATen's fused RMSNorm), where autograd
// through HF's op-by-op formulation launches several kernels and keeps more tensors alive. They work on
// packed projections ([q; k; v] and [gate; up] stacked into one weight each, so one GEMM computes each
// packed output). Elsewhere the same functions run as LibTorch ops with the same hand-written backward
// (tested against autograd of the reference ops). decoder_layer takes them under `Kernels::Fused`; inference
// keeps HF's exact op order.
//
// Shape legend: B batch, T positions, H heads, Hkv kv heads, D head dim, C hidden, F intermediate.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include "model/fused_ops.h"

namespace chatmill::model {

// How a decoder layer computes: HF's op order (inference parity, rounding included) or the fused ops below
// (training: fewer kernels, fewer saved tensors, packed GEMMs; the same math, bf16 rounding may differ).
enum class Kernels { Reference, Fused };

// x: (..., C), weight: (C) -> RMSNorm(x) * weight, statistics in float32; on CUDA ATen's fused kernels.
at::Tensor rms_norm_fused(const at::Tensor& x, const at::Tensor& weight, double eps);

struct QkvHeads {
  at::Tensor q;  // (B, T, H, D) contiguous, rotated
  at::Tensor k;  // (B, T, Hkv, D) contiguous, rotated
  at::Tensor v;  // (B, T, Hkv, D) contiguous
};
// qkv: (B, T, (H + 2 Hkv) D), the output of the packed projection; cos, sin: (B, T, D) in its dtype
// (RopeTables). Splits it into heads and rotates q and k as HF does (x * cos + rotate_half(x) * sin, rounded
// where HF's ops round). The backward rotates with -sin and packs the three gradients into one; only the
// tables are saved.
QkvHeads qkv_rotary_fused(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, int64_t heads,
                          int64_t kv_heads, fused::ForceReference aten = {});

// gate_up: (..., 2F), the output of the packed [gate; up] projection -> (..., F) silu(gate) * up (silu rounded
// to the dtype first, as HF). Saves gate_up only; the backward recomputes silu, computes in float32 and rounds
// once, into one (..., 2F) gradient.
at::Tensor swiglu_fused(const at::Tensor& gate_up, fused::ForceReference aten = {});

// Matrices with equal column counts stacked along the rows, converted to `dtype` in the same pass: (sum of
// rows, K). The backward hands each part its rows of the gradient (in the part's dtype).
at::Tensor stack_rows(at::TensorList parts, at::ScalarType dtype);

}  // namespace chatmill::model
