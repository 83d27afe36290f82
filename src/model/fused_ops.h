// The operations of a one-token decode step, each fused into one pass over memory: on CUDA tensors (builds
// with -DCHATMILL_CUDA=ON) each is one kernel of src/model/cuda/fused_kernels.cu; otherwise each runs as the
// equivalent LibTorch ops (the reference the kernels are tested against, and what the CPU runs).
// Rounding follows HF's eager Llama in the activations' dtype: a kernel rounds wherever HF's ops round.
//
// Shape legend: N rows (one token each), C hidden, F intermediate, B batch, H heads, Hkv kv heads,
// D head dim, S cache columns per row.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace chatmill::model::fused {

// Whether p is 16-byte aligned, as the kernels' 16-byte loads need.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
inline bool aligned16(const at::Tensor& t) { return aligned16(t.data_ptr()); }

// Whether the CUDA kernels were compiled in (else every op runs as LibTorch ops, CUDA tensors included).
bool kernels_built();

// The reference path (LibTorch ops) even on CUDA: for tests that compare kernels with it.
struct ForceReference {
  bool on = false;
};

// How the CUDA kernels launch. `programmatic`: programmatic dependent launch (model/cuda/launch.cuh), each
// kernel overlapping the end of the one before on Hopper GPUs. An option so that tests and benchmarks can run
// both ways. With it, an op's index inputs (positions, columns, lengths, fresh columns) must not be the output of
// the kernel right before it: the rotary table and attention's first loads read them before the wait.
// `l2_prefetch`: the skinny GEMM's warps ask L2 for more of their first rows before waiting on the kernel
// before (model/cuda/skinny_kernels.cuh). Off by default: on an H200 it made the batch-1 decode step 3% slower
// (bench/README.md), though each projection alone ran as fast or faster.
// `tile_gemm`: projections of tile_min_rows <= M <= kTileRows rows through the tensor-core tile GEMM
// (model/cuda/tile_kernels.cuh) instead of at::linear (or, from 1 or 2 rows, instead of the skinny GEMM: its
// block-ordered reads against the skinny GEMM's row-ordered ones), with the rotary + cache append and SwiGLU in
// its epilogue (qkv_rope_append and gate_up_silu on a plain x). Off here; the decode step turns it on
// (FusedStepOptions::tile_gemm).
// `stage_weights`: a one-weight skinny GEMM (linear) through the staged GEMV (model/cuda/staged_gemv.cuh): each
// warp copies the first 8 KB of its first weight row into shared memory before waiting on the kernel before, for
// a projection that follows a stage leaving DRAM idle (decode attention). Off here; FusedStepOptions::o_stage.
struct LaunchOptions {
  bool programmatic = true;
  bool l2_prefetch = false;
  bool tile_gemm = false;
  int64_t tile_min_rows = 3;  // kSkinnyRows + 1: the skinny GEMM's rows stay its own
  bool stage_weights = false;
};

// Whether an op on `t` runs this project's CUDA kernel: a CUDA build, a CUDA tensor, and no ForceReference.
bool use_kernel(const at::Tensor& t, ForceReference ref);

// residual, delta: (N, C); weight: (C). residual += delta (rounded to the dtype, as HF's `residual + h`),
// then returns rms_norm(residual) (HF's order: float32 statistics, cast, then scale). With `delta` undefined
// only the norm is taken.
at::Tensor add_rms_norm(at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight, double eps,
                        ForceReference ref = {}, LaunchOptions launch = {});

// gate, up: (N, F), rows may be strided views -> (N, F) silu(gate) * up.
at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up, ForceReference ref = {}, LaunchOptions launch = {});

// q: (B, H*D), k, v: (B, Hkv*D) (rows may be strided views) for one token per row; positions, columns: (B)
// int64; inv_freq: (D/2) float32. Applies HF's rotary embedding at `positions` to q and k, writes k and v into
// column columns[b] of row b of k_cache, v_cache: (B, Hkv, S, D) contiguous. Returns rotated q: (B, H, D).
at::Tensor rope_append(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                       const at::Tensor& columns, const at::Tensor& inv_freq, at::Tensor& k_cache,
                       at::Tensor& v_cache, ForceReference ref = {}, LaunchOptions launch = {});

// q: (B, H, D); k_cache, v_cache: (B, Hkv, S, D) contiguous; lengths: (B) int64 on the device, each in [1, S]:
// row b attends to its columns [0, lengths[b]). Softmax(q k^T / sqrt(D)) v per head, query head h reading kv
// head h / (H / Hkv). Returns (B, H*D). The work follows the lengths, not S, so one CUDA graph captured at S
// serves every length.
// counters: optional, (>= B*H) int32 zeros on q's device that the op leaves zero again (KVCache::
// split_counters): with them the CUDA op is one kernel, the last split block of each head combining the
// others' partials; without, a second kernel combines.
// fresh: optional, (B) int64 on q's device: the cache column of each row that the kernel right before wrote (the
// step's new token; then neither lengths nor fresh may be that kernel's output). The CUDA op then loads the
// row's other columns before it waits for that kernel (launch.programmatic), so that their DRAM latency
// overlaps its end.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& lengths, ForceReference ref = {}, LaunchOptions launch = {},
                            const at::Tensor& counters = {}, const at::Tensor& fresh = {});

// x: (M, K), weight: (N, K) -> x weight^T: (M, N). For decode's few rows (M <= kSkinnyRows) in bf16/fp16 on
// CUDA, one kernel streams each weight row once with 16-byte loads and serves all M rows from it (a GEMV
// rather than a tensor-core GEMM tiled for large M); otherwise at::linear.
// kSkinnyRows from bench_kernels on an H200 (7B projections and LM head, bf16), skinny vs cuBLAS: 1.05-2.7x at
// 1 row, 0.93-2.0x at 2, 0.61-1.29x at 4, 0.48-0.89x at 8 (its CUDA-core FMAs and x re-reads bind past 2 rows);
// the engine at batch 8 decoded 894 tokens/s skinny vs 1503 through cuBLAS.
constexpr int64_t kSkinnyRows = 2;
// The most rows the tile GEMM takes (LaunchOptions::tile_gemm): one mma's 16 rows of A, x as its two n = 8 halves.
constexpr int64_t kTileRows = 16;
static_assert(LaunchOptions{}.tile_min_rows == kSkinnyRows + 1, "by default the tile GEMM starts past the skinny GEMM");
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, ForceReference ref = {}, LaunchOptions launch = {});

// x: (M, K), weights: 1 to 3 of (N_i, K) -> x w_i^T for each, (M, N_i). Where linear() would take the skinny
// GEMM or the tile GEMM, one launch serves all weights (q, k, v; gate, up) and the results are column views of
// one (M, sum N_i) buffer (rows sum N_i apart); otherwise one at::linear each.
std::vector<at::Tensor> linear_parts(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                                     ForceReference ref = {}, LaunchOptions launch = {});

// Whether x w^T for these weights runs as the tile GEMM: launch.tile_gemm, CUDA kernels built, CUDA bf16/fp16
// tensors, max(1, launch.tile_min_rows) <= M <= kTileRows, K % 8 == 0, x and the weights contiguous and 16-byte
// aligned. Where it applies it takes precedence over the skinny GEMM.
bool tile_applies(const at::Tensor& x, const std::vector<at::Tensor>& weights, ForceReference ref, LaunchOptions launch);

// x: (N, C), already normalised. linear_parts(x, {wq, wk, wv}) then rope_append: returns rotated q (N, H, D) and
// writes k and v into the caches. One kernel where tile_applies (the rotation and cache writes in its epilogue);
// otherwise those ops.
at::Tensor qkv_rope_append(const at::Tensor& x, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                           const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                           at::Tensor& k_cache, at::Tensor& v_cache, ForceReference ref = {}, LaunchOptions launch = {});

// x: (N, C), already normalised -> silu(x wg^T) * (x wu^T): (N, F). One kernel where tile_applies.
at::Tensor gate_up_silu(const at::Tensor& x, const at::Tensor& wg, const at::Tensor& wu, ForceReference ref = {},
                        LaunchOptions launch = {});

// ---- the tile GEMM's folded step (3 to 16 rows: no norm kernels between layers) --------------------------

// The partial sums of squares residual_add_linear leaves for an (N, C) residual: (ceil(C / kTileRows),
// kTileRows) float32, entry [p][n] the sum over columns 16p..16p+15 of row n.
int64_t sumsq_parts(int64_t C);

// residual (N, C) += x w^T (x: (N, K), w: (C, K)), rounded as HF's `residual + o_proj(...)` (the projection's
// output to the dtype, then the sum); sumsq (sumsq_parts(C), kTileRows) float32 gets the new rows' partial sums
// of squares (rows past N left alone). One tile-GEMM kernel where tile_applies (the add in its epilogue);
// otherwise LibTorch ops.
void residual_add_linear(at::Tensor& residual, const at::Tensor& x, const at::Tensor& w, at::Tensor& sumsq,
                         ForceReference ref = {}, LaunchOptions launch = {});

// The input of a projection, normalised as the tile GEMM loads it: x = rms_norm(residual) * weight (rounded as
// add_rms_norm), where sumsq holds the partial sums of squares residual_add_linear left for this residual.
struct TileNormedInput {
  at::Tensor residual, weight, sumsq;
  double eps = 1e-5;
};

// qkv_rope_append and gate_up_silu of that x: one kernel each where tile_applies (to the residual), the norm
// in its loads; otherwise add_rms_norm, then the ops on a plain x.
at::Tensor qkv_rope_append(const TileNormedInput& in, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                           const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                           at::Tensor& k_cache, at::Tensor& v_cache, ForceReference ref = {}, LaunchOptions launch = {});
at::Tensor gate_up_silu(const TileNormedInput& in, const at::Tensor& wg, const at::Tensor& wu, ForceReference ref = {},
                        LaunchOptions launch = {});

// ---- projections with their neighbours folded in (decode at up to kSkinnyRows rows) ----------------------

// The input of a normalised projection: x = rms_norm(residual_in + delta) * weight (rounded as add_rms_norm);
// residual_out (N, C) gets residual_in + delta, and residual_in is left alone (residual_out must be another
// buffer: the kernel's blocks read residual_in while one of them writes residual_out). delta: (N, C) with
// contiguous rows, or undefined (then residual_out gets a copy of residual_in).
struct NormedInput {
  at::Tensor residual_in, delta, weight, residual_out;
  double eps = 1e-5;
};

// The widest residual a folded projection normalises (its blocks hold x in 32 KB of shared memory).
constexpr int64_t kMaxFoldedWidth = 8192;

// Whether qkv_rope_append, gate_up_silu and lm_head_logits run as one skinny-GEMM kernel each for this input and
// these weights: CUDA kernels built, CUDA bf16/fp16 tensors, N <= kSkinnyRows rows, C <= kMaxFoldedWidth, the
// skinny GEMM's layout conditions, and the norm weight and delta's rows 16-byte aligned. Where not, they run as
// the unfolded ops, with the same results (the kernels sum the norm's squares in another order than
// add_rms_norm's: a value may differ by one step of the dtype).
bool folds_apply(const NormedInput& in, const std::vector<at::Tensor>& weights, ForceReference ref = {});

// q, k, v projections of the normalised input (wq: (H*D, C), wk, wv: (Hkv*D, C)), then rope_append: returns
// rotated q: (N, H, D) and writes k and v into the caches. One kernel where folds_apply: the norm in its
// prologue, the rotation and the cache writes in its epilogue.
at::Tensor qkv_rope_append(const NormedInput& in, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                           const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                           at::Tensor& k_cache, at::Tensor& v_cache, ForceReference ref = {}, LaunchOptions launch = {});

// silu(x wg^T) * (x wu^T) of the normalised input (wg, wu: (F, C)): (N, F). One kernel where folds_apply.
at::Tensor gate_up_silu(const NormedInput& in, const at::Tensor& wg, const at::Tensor& wu, ForceReference ref = {},
                        LaunchOptions launch = {});

// The LM head of the normalised input (w: (V, C)) into out: (N, V) float32 with contiguous rows, each logit
// rounded to the dtype and widened (lm_logits of x). One kernel where folds_apply: the final norm in its prologue,
// the widening in its epilogue; otherwise add_rms_norm, linear and a copy.
void lm_head_logits(const NormedInput& in, const at::Tensor& w, const at::Tensor& out, ForceReference ref = {},
                    LaunchOptions launch = {});

}  // namespace chatmill::model::fused
