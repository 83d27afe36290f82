// The operations of a one-token decode step, each fused into one pass over memory: on CUDA tensors (builds
// with -DCHATMILL_CUDA=ON) each is one kernel of src/model/cuda/fused_kernels.cu; otherwise each runs as the
// equivalent LibTorch ops (the reference the kernels are tested against, and what the CPU runs).
// Rounding follows HF's eager Llama in the activations' dtype: a kernel rounds wherever HF's ops round.
//
// Shape legend: N rows (one token each), C hidden, F intermediate, B batch, H heads, Hkv kv heads,
// D head dim, S cache columns per row.
#pragma once
#include <ATen/core/Tensor.h>

namespace chatmill::model::fused {

// Whether the CUDA kernels were compiled in (else every op runs as LibTorch ops, CUDA tensors included).
bool kernels_built();

// The reference path (LibTorch ops) even on CUDA: for tests that compare kernels with it.
struct ForceReference {
  bool on = false;
};

// Whether an op on `t` runs this project's CUDA kernel: a CUDA build, a CUDA tensor, and no ForceReference.
bool use_kernel(const at::Tensor& t, ForceReference ref);

// residual, delta: (N, C); weight: (C). residual += delta (rounded to the dtype, as HF's `residual + h`),
// then returns rms_norm(residual) (HF's order: float32 statistics, cast, then scale). With `delta` undefined
// only the norm is taken.
at::Tensor add_rms_norm(at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight, double eps,
                        ForceReference ref = {});

// gate, up: (N, F), rows may be strided views -> (N, F) silu(gate) * up.
at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up, ForceReference ref = {});

// q: (B, H*D), k, v: (B, Hkv*D) (rows may be strided views) for one token per row; positions, columns: (B)
// int64; inv_freq: (D/2) float32. Applies HF's rotary embedding at `positions` to q and k, writes k and v into
// column columns[b] of row b of k_cache, v_cache: (B, Hkv, S, D) contiguous. Returns rotated q: (B, H, D).
at::Tensor rope_append(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                       const at::Tensor& columns, const at::Tensor& inv_freq, at::Tensor& k_cache,
                       at::Tensor& v_cache, ForceReference ref = {});

// q: (B, H, D); k_cache, v_cache: (B, Hkv, S, D) contiguous; lengths: (B) int64 on the device, each in [1, S]:
// row b attends to its columns [0, lengths[b]). Softmax(q k^T / sqrt(D)) v per head, query head h reading kv
// head h / (H / Hkv). Returns (B, H*D). The work follows the lengths, not S, so one CUDA graph captured at S
// serves every length.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& lengths, ForceReference ref = {});

// x: (M, K), weight: (N, K) -> x weight^T: (M, N). For decode's few rows (M <= kSkinnyRows) in bf16/fp16 on
// CUDA, one kernel streams each weight row once with 16-byte loads and serves all M rows from it (a GEMV
// rather than a tensor-core GEMM tiled for large M); otherwise at::linear.
constexpr int64_t kSkinnyRows = 8;
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, ForceReference ref = {});

}  // namespace chatmill::model::fused
