// Host side of the decode kernels: grid sizes, argument packing and dtype dispatch, generic over how a kernel
// is launched. The CUDA build passes a launcher onto the current stream with programmatic dependent launch
// (fused_kernels.cu, decode_attention.cu); the tests pass the CPU emulator's (tests/common/cuda_emu.h), so
// that this code and the kernels run on CPU tensors too.
//
// A Launcher L has
//   L(kernel, dim3 grid, dim3 block, args...)   launches kernel<<<grid, block>>>(args...);
//   L.resident_blocks(kernel, threads)          how many blocks of the kernel the device holds at once.
// Tensors arrive checked by model/fused_ops.cpp (shapes, dtypes, contiguity, 16-byte alignment for the skinny
// GEMM); model/fused_ops.h says what each op computes.
#pragma once
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "model/cuda/attention_kernels.cuh"
#include "model/cuda/decode_kernels.cuh"
#include "model/cuda/reduce.cuh"
#include "model/cuda/skinny_kernels.cuh"
#include "model/cuda/staged_gemv.cuh"
#include "model/cuda/tile_kernels.cuh"
#include "model/fused_ops.h"

namespace chatmill::model::fused::launchers {

static_assert(kernels::kMaxNormK == kMaxFoldedWidth, "fused_ops.h promises the width the kernels hold");

template <class L>
void add_rms_norm(const L& launch, const at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight,
                  double eps, const at::Tensor& out) {
  const int64_t N = residual.size(0), C = residual.size(1);
  if (N == 0) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, residual.scalar_type(), "add_rms_norm", [&] {
    const scalar_t* d = delta.defined() ? delta.data_ptr<scalar_t>() : nullptr;
    const int64_t d_stride = delta.defined() ? delta.stride(0) : 0;
    // 16-byte loads where every row and the weight allow them.
    constexpr int64_t kN = 16 / sizeof(scalar_t);
    const bool vec = C % kN == 0 && aligned16(residual) && aligned16(weight) && aligned16(out) &&
                     (d == nullptr || (aligned16(d) && d_stride % kN == 0));
    auto go = [&](auto kernel, int64_t work) {
      launch(kernel, dim3(static_cast<unsigned>(N)), dim3(std::min(cuda_math::threads_for(work), 512)),
             residual.data_ptr<scalar_t>(), d, d_stride, weight.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), C,
             static_cast<float>(eps));
    };
    if (vec) go(kernels::add_rms_norm_kernel<scalar_t, true>, C / kN);
    else go(kernels::add_rms_norm_kernel<scalar_t, false>, C);
  });
}

template <class L>
void silu_mul(const L& launch, const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out) {
  const int64_t N = gate.size(0), F = gate.size(1);
  if (N == 0 || F == 0) return;
  const int threads = 256;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((F + threads - 1) / threads, 1024)), static_cast<unsigned>(N));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gate.scalar_type(), "silu_mul", [&] {
    launch(kernels::silu_mul_kernel<scalar_t>, grid, dim3(threads), gate.data_ptr<scalar_t>(), gate.stride(0),
           up.data_ptr<scalar_t>(), up.stride(0), out.data_ptr<scalar_t>(), F);
  });
}

template <class L>
void rope_append(const L& launch, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                 const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                 const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out) {
  const int64_t B = q.size(0);
  if (B == 0) return;
  const int D = static_cast<int>(k_cache.size(3)), Hkv = static_cast<int>(k_cache.size(1));
  const int H = static_cast<int>(q.size(1) / D);
  const int64_t S = k_cache.size(2);
  const int64_t work = static_cast<int64_t>(H + Hkv) * (D / 2) + static_cast<int64_t>(Hkv) * D;
  constexpr int kRopeThreads = 256;
  const dim3 grid(static_cast<unsigned>(B), static_cast<unsigned>((work + kRopeThreads - 1) / kRopeThreads));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "rope_append", [&] {
    launch(kernels::rope_append_kernel<scalar_t>, grid, dim3(kRopeThreads), q.data_ptr<scalar_t>(), q.stride(0),
           k.data_ptr<scalar_t>(), k.stride(0), v.data_ptr<scalar_t>(), v.stride(0), positions.data_ptr<int64_t>(),
           columns.data_ptr<int64_t>(), inv_freq.data_ptr<float>(), k_cache.data_ptr<scalar_t>(),
           v_cache.data_ptr<scalar_t>(), q_out.data_ptr<scalar_t>(), H, Hkv, S, D);
  });
}

// ---- the skinny GEMM ---------------------------------------------------------------------------------------

namespace detail {

template <typename T>
kernels::NormIn<T> norm_in(const NormedInput& t) {
  kernels::NormIn<T> in;
  in.residual_in = t.residual_in.data_ptr<T>();
  in.delta = t.delta.defined() ? t.delta.data_ptr<T>() : nullptr;
  in.delta_stride = t.delta.defined() ? t.delta.stride(0) : 0;
  in.weight = t.weight.data_ptr<T>();
  in.residual_out = t.residual_out.data_ptr<T>();
  in.eps = static_cast<float>(t.eps);
  return in;
}

// Launches skinny_kernel for M rows (1 or 2). Plain (x from global memory): one item per warp. Normalised
// (kNorm: x = the norm `norm` describes): at most the blocks the device holds at once (each computes the norm
// for itself, so fewer blocks mean less of that work), every warp with the same number of items (the last few
// one fewer), not a last round that only some warps work through. With l2_prefetch, each warp asks L2 for up
// to 6 KB of its first item's rows beyond its first loads before the wait: about 25 MB over a device's warps,
// half of an H100's L2.
template <typename T, bool kNorm, class L, class Plan>
void launch_skinny(const L& launch, int64_t M, const T* x, const kernels::NormIn<T>& norm, const Plan& plan,
                   int64_t K, bool l2_prefetch) {
  const int l2_lines = l2_prefetch ? kernels::kL2PrefetchLines / Plan::kRows : 0;
  const int64_t items = plan.items();
  if (items == 0) return;
  const dim3 block(kernels::kSkinnyWarps * 32);
  auto go = [&](auto kernel) {
    int64_t per_warp = 1;
    if constexpr (kNorm) {
      const int64_t warps = kernels::kSkinnyWarps * std::max<int64_t>(1, launch.resident_blocks(kernel, block.x));
      per_warp = (items + warps - 1) / warps;
    }
    const int64_t grid = (items + kernels::kSkinnyWarps * per_warp - 1) / (kernels::kSkinnyWarps * per_warp);
    launch(kernel, dim3(static_cast<unsigned>(grid)), block, x, norm, plan, K, l2_lines);
  };
  if (M == 1) go(kernels::skinny_kernel<T, 1, Plan, kNorm>);
  else if (M == 2) go(kernels::skinny_kernel<T, 2, Plan, kNorm>);
  else TORCH_INTERNAL_ASSERT(false, "the skinny GEMM takes 1 or 2 rows, got ", M);
}

}  // namespace detail

namespace detail {

// The plans of the skinny and tile GEMMs (skinny_kernels.cuh) from the ops' tensors.
template <typename T, typename Out = T>
kernels::PartsPlan<T, Out> parts_plan(at::TensorList weights, const at::Tensor& out) {
  TORCH_INTERNAL_ASSERT(!weights.empty() && weights.size() <= kernels::kMaxParts, "the GEMM plans take 1 to 3 weights");
  const int64_t N = out.size(1);
  kernels::PartsPlan<T, Out> plan{};
  int64_t end = 0;
  for (size_t i = 0; i < static_cast<size_t>(kernels::kMaxParts); ++i) {
    const size_t j = std::min(i, weights.size() - 1);  // unused parts repeat the last, empty
    if (i == j) end += weights[i].size(0);
    plan.w[i] = weights[j].data_ptr<T>();
    plan.end[i] = end;
  }
  TORCH_INTERNAL_ASSERT(end == N, "the GEMM plans: out has ", N, " columns for ", end, " weight rows");
  plan.out = out.data_ptr<Out>();
  plan.N = N;
  return plan;
}

template <typename T>
kernels::RopePlan<T> rope_plan(const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                               const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                               const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out) {
  kernels::RopePlan<T> plan{};
  plan.wq = wq.data_ptr<T>();
  plan.wk = wk.data_ptr<T>();
  plan.wv = wv.data_ptr<T>();
  plan.positions = positions.data_ptr<int64_t>();
  plan.columns = columns.data_ptr<int64_t>();
  plan.inv_freq = inv_freq.data_ptr<float>();
  plan.q_out = q_out.data_ptr<T>();
  plan.k_cache = k_cache.data_ptr<T>();
  plan.v_cache = v_cache.data_ptr<T>();
  plan.H = static_cast<int>(q_out.size(1));
  plan.Hkv = static_cast<int>(k_cache.size(1));
  plan.D = static_cast<int>(k_cache.size(3));
  plan.S = k_cache.size(2);
  return plan;
}

template <typename T>
kernels::SiluPlan<T> silu_plan(const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out) {
  return {wg.data_ptr<T>(), wu.data_ptr<T>(), out.data_ptr<T>(), out.size(1)};
}

}  // namespace detail

// x: (M, K); weights: 1 to 3 of (N_i, K); out: (M, sum N_i) gets x w_0^T, x w_1^T, ... side by side.
template <class L>
void skinny_linear(const L& launch, const at::Tensor& x, at::TensorList weights, const at::Tensor& out,
                   bool l2_prefetch = false) {
  AT_DISPATCH_REDUCED_FLOATING_TYPES(x.scalar_type(), "skinny_linear", [&] {
    detail::launch_skinny<scalar_t, false>(launch, x.size(0), x.data_ptr<scalar_t>(), kernels::NormIn<scalar_t>{},
                                           detail::parts_plan<scalar_t>(weights, out), x.size(1), l2_prefetch);
  });
}

// out: (M, N) float32 = x w^T for x = the normalised input (w: (N, K)), each logit rounded to the dtype and
// widened (fused::lm_head_logits).
template <class L>
void skinny_logits(const L& launch, const NormedInput& in, const at::Tensor& w, const at::Tensor& out,
                   bool l2_prefetch = false) {
  AT_DISPATCH_REDUCED_FLOATING_TYPES(w.scalar_type(), "skinny_logits", [&] {
    detail::launch_skinny<scalar_t, true>(launch, out.size(0), nullptr, detail::norm_in<scalar_t>(in),
                                          detail::parts_plan<scalar_t, float>({w}, out), w.size(1), l2_prefetch);
  });
}

// x: (M, K), M 1 or 2; w: (N, K); out: (M, N) = x w^T through staged_gemv_kernel (LaunchOptions::stage_weights),
// on the blocks the device holds at once, so that every warp's staged row is in flight before the wait.
template <class L>
void staged_linear(const L& launch, const at::Tensor& x, const at::Tensor& w, const at::Tensor& out) {
  AT_DISPATCH_REDUCED_FLOATING_TYPES(x.scalar_type(), "staged_linear", [&] {
    const int64_t N = w.size(0);
    if (N == 0) return;
    const dim3 block(kernels::kStagedWarps * 32);
    auto go = [&](auto kernel) {
      const int64_t grid = std::min(std::max<int64_t>(1, launch.resident_blocks(kernel, block.x)),
                                    (N + kernels::kStagedWarps - 1) / kernels::kStagedWarps);
      launch(kernel, dim3(static_cast<unsigned>(grid)), block, x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
             out.data_ptr<scalar_t>(), N, x.size(1));
    };
    if (x.size(0) == 1) go(kernels::staged_gemv_kernel<scalar_t, 1>);
    else if (x.size(0) == 2) go(kernels::staged_gemv_kernel<scalar_t, 2>);
    else TORCH_INTERNAL_ASSERT(false, "the staged GEMV takes 1 or 2 rows, got ", x.size(0));
  });
}

// q, k, v = x wq^T, x wk^T, x wv^T for x = the normalised input; q and k rotated at positions, k and v into the
// caches at columns; q_out: (M, H, D).
template <class L>
void skinny_qkv_rope(const L& launch, const NormedInput& in, const at::Tensor& wq, const at::Tensor& wk,
                     const at::Tensor& wv, const at::Tensor& positions, const at::Tensor& columns,
                     const at::Tensor& inv_freq, const at::Tensor& k_cache, const at::Tensor& v_cache,
                     const at::Tensor& q_out, bool l2_prefetch = false) {
  AT_DISPATCH_REDUCED_FLOATING_TYPES(q_out.scalar_type(), "skinny_qkv_rope", [&] {
    detail::launch_skinny<scalar_t, true>(
        launch, q_out.size(0), nullptr, detail::norm_in<scalar_t>(in),
        detail::rope_plan<scalar_t>(wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, q_out), wq.size(1),
        l2_prefetch);
  });
}

// out: (M, F) = silu(x wg^T) * (x wu^T) for x = the normalised input.
template <class L>
void skinny_gate_up_silu(const L& launch, const NormedInput& in, const at::Tensor& wg, const at::Tensor& wu,
                         const at::Tensor& out, bool l2_prefetch = false) {
  AT_DISPATCH_REDUCED_FLOATING_TYPES(out.scalar_type(), "skinny_gate_up_silu", [&] {
    detail::launch_skinny<scalar_t, true>(launch, out.size(0), nullptr, detail::norm_in<scalar_t>(in),
                                          detail::silu_plan<scalar_t>(wg, wu, out), wg.size(1), l2_prefetch);
  });
}

// ---- the tile GEMM (3 to 16 rows; model/cuda/tile_kernels.cuh) --------------------------------------------

namespace detail {

// At most the blocks the device holds at once, each looping over tiles (its loads run ahead into the next), and
// the fewest that give every block the same number of tiles, give or take one: a last round that only some
// blocks work through streams at a fraction of the bandwidth (gate/up at 7B: 1376 tiles on 264 resident blocks
// were 56 blocks with a sixth tile; now 230 blocks, 226 of 6 and 4 of 5). x: (M, K), or with kNormX the
// residual that `norm` normalises.
template <typename T, bool kNormX, class L, class Plan>
void launch_tile(const L& launch, int64_t M, int64_t K, const T* x, const kernels::NormX<T>& norm, const Plan& plan) {
  const int64_t tiles = kernels::tile_count(plan);
  TORCH_INTERNAL_ASSERT(M >= 1 && M <= kernels::kTileRows, "the tile GEMM takes 1 to 16 rows, got ", M);
  if (tiles == 0) return;
  const dim3 block(kernels::kTileWarps * 32);
  auto go = [&](auto kernel) {
    const int64_t resident = std::max<int64_t>(1, launch.resident_blocks(kernel, block.x));
    const int64_t per_block = (tiles + resident - 1) / resident;
    const int64_t grid = (tiles + per_block - 1) / per_block;
    launch(kernel, dim3(static_cast<unsigned>(grid)), block, x, norm, static_cast<int>(M), plan, K);
  };
  if (M <= 8) go(kernels::tile_kernel<T, 1, Plan, kNormX>);
  else go(kernels::tile_kernel<T, 2, Plan, kNormX>);
}

template <typename T>
kernels::NormX<T> norm_x(const TileNormedInput& in) {
  kernels::NormX<T> n;
  n.residual = in.residual.data_ptr<T>();
  n.weight = in.weight.data_ptr<T>();
  n.sumsq = in.sumsq.data_ptr<float>();
  n.parts = in.sumsq.size(0);
  n.eps = static_cast<float>(in.eps);
  return n;
}

// A plan through the tile GEMM on x as it is (a tensor) or normalised as it is loaded (a TileNormedInput).
template <typename T, class L, class Plan>
void tile_plan(const L& launch, const at::Tensor& x, const Plan& plan) {
  launch_tile<T, false>(launch, x.size(0), x.size(1), x.data_ptr<T>(), kernels::NormX<T>{}, plan);
}
template <typename T, class L, class Plan>
void tile_plan(const L& launch, const TileNormedInput& in, const Plan& plan) {
  launch_tile<T, true>(launch, in.residual.size(0), in.residual.size(1), nullptr, norm_x<T>(in), plan);
}

}  // namespace detail

// skinny_linear's product through the tile GEMM.
template <class L>
void tile_linear(const L& launch, const at::Tensor& x, at::TensorList weights, const at::Tensor& out) {
  AT_DISPATCH_REDUCED_FLOATING_TYPES(x.scalar_type(), "tile_linear", [&] {
    detail::tile_plan<scalar_t>(launch, x, detail::parts_plan<scalar_t>(weights, out));
  });
}

// skinny_qkv_rope's results through the tile GEMM, for In: x (M, K) as it is (a tensor, already normalised) or
// a TileNormedInput.
template <class L, class In>
void tile_qkv_rope(const L& launch, const In& x, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                   const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                   const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out) {
  AT_DISPATCH_REDUCED_FLOATING_TYPES(q_out.scalar_type(), "tile_qkv_rope", [&] {
    detail::tile_plan<scalar_t>(
        launch, x, detail::rope_plan<scalar_t>(wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, q_out));
  });
}

// skinny_gate_up_silu's results through the tile GEMM, In as for tile_qkv_rope.
template <class L, class In>
void tile_gate_up_silu(const L& launch, const In& x, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out) {
  AT_DISPATCH_REDUCED_FLOATING_TYPES(out.scalar_type(), "tile_gate_up_silu", [&] {
    detail::tile_plan<scalar_t>(launch, x, detail::silu_plan<scalar_t>(wg, wu, out));
  });
}

// residual (M, N) += x w^T (w: (N, K)) in place, rounded as HF's residual add; sumsq (ceil(N / 16), 16) float32
// gets each 16-column group's sums of squares of the new rows (rows past M left alone).
template <class L>
void tile_residual_linear(const L& launch, const at::Tensor& residual, const at::Tensor& x, const at::Tensor& w,
                          const at::Tensor& sumsq) {
  AT_DISPATCH_REDUCED_FLOATING_TYPES(x.scalar_type(), "tile_residual_linear", [&] {
    const kernels::ResidualPlan<scalar_t> plan{w.data_ptr<scalar_t>(), residual.data_ptr<scalar_t>(),
                                               sumsq.data_ptr<float>(), w.size(0)};
    detail::tile_plan<scalar_t>(launch, x, plan);
  });
}

// ---- decode attention --------------------------------------------------------------------------------------

namespace detail {

// Lanes per column of the vectorised kernel for head dim D in T (16-byte pieces per row), or 0 where it does
// not apply (not a power of two up to 32, or pointers not 16-byte aligned).
template <typename T>
int vec_group(int64_t D, const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache) {
  constexpr int64_t kVec = 16 / sizeof(T);
  if (D % kVec != 0) return 0;
  const int64_t g = D / kVec;
  if (g < 1 || g > 32 || (g & (g - 1)) != 0) return 0;
  for (const at::Tensor* t : {&q, &k_cache, &v_cache})
    if (!aligned16(*t)) return 0;
  return static_cast<int>(g);
}

}  // namespace detail

// The split count attention uses for (B, H, S) with `resident` split blocks on the device at once: as many as one
// wave of blocks holds (at least 16 columns a split: a block's one round of loads). Each block pays a prologue
// (the wait, q) and an epilogue (its partial, the ticket, the last block's combine) of a few L2 round trips
// around its stream; a second wave pays them again. Run 4 aimed at 2048 blocks: two waves of 8 blocks an SM on
// an H200 at batch 16 (4 splits), 64% of copy bandwidth at length 192; now 2 splits, one wave. Fixed by (B, H, S)
// and the device, so a CUDA graph captured once serves every length.
inline int64_t attention_splits(int64_t B, int64_t H, int64_t S, int64_t resident) {
  const int64_t max_splits = std::max<int64_t>(1, (S + 15) / 16);
  return std::min(max_splits, std::max<int64_t>(1, resident / (B * H)));
}

// counters: undefined (a combine kernel follows the split kernel), or (>= B*H) int32, all zero, which the
// kernel leaves zero again (the last split block of each head combines). fresh: undefined, or (B) int64, the
// column the kernel before wrote in each row: the vectorised kernel then loads the rest before its wait
// (split_vec_kernel, at head dims 16 to 128); the scalar one ignores it.
template <class L>
void decode_attention(const L& launch, const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                      const at::Tensor& lengths, const at::Tensor& counters, const at::Tensor& out,
                      const at::Tensor& fresh = {}) {
  const int64_t B = q.size(0), H = q.size(1), D = q.size(2);
  const int64_t Hkv = k_cache.size(1), S = k_cache.size(2);
  if (B == 0) return;
  at::Tensor part_acc, part_ml;
  int64_t splits = 0;
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  const dim3 block(kernels::kWarps * 32);
  int* cp = counters.defined() ? counters.data_ptr<int>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "decode_attention", [&] {
    const scalar_t* qp = q.data_ptr<scalar_t>();
    const scalar_t* kp = k_cache.data_ptr<scalar_t>();
    const scalar_t* vp = v_cache.data_ptr<scalar_t>();
    const int64_t* lp = lengths.data_ptr<int64_t>();
    const int64_t* fp = fresh.defined() ? fresh.data_ptr<int64_t>() : nullptr;
    scalar_t* op = out.data_ptr<scalar_t>();
    const int h = static_cast<int>(H), hkv = static_cast<int>(Hkv);
    float *pa = nullptr, *pm = nullptr;
    // The splits (from the resident blocks of the split kernel that runs), the partials' buffers, the grid.
    auto grid_for = [&](auto kernel) {
      splits = attention_splits(B, H, S, launch.resident_blocks(kernel, static_cast<int>(block.x)));
      part_acc = at::empty({B * H * splits, D}, q.options().dtype(at::kFloat));
      part_ml = at::empty({B * H * splits, 2}, q.options().dtype(at::kFloat));
      pa = part_acc.data_ptr<float>();
      pm = part_ml.data_ptr<float>();
      return dim3(static_cast<unsigned>(B * H), static_cast<unsigned>(splits));
    };
    auto vec = [&](auto g) {  // g: std::integral_constant, the lanes per column
      const auto kernel = kernels::split_vec_kernel<scalar_t, decltype(g)::value>;
      const dim3 grid = grid_for(kernel);  // before the launch's arguments take pa and pm
      launch(kernel, grid, block, qp, kp, vp, lp, fp, pa, pm, op, cp, h, hkv, S, scale);
    };
    switch (detail::vec_group<scalar_t>(D, q, k_cache, v_cache)) {
      case 1: vec(std::integral_constant<int, 1>{}); break;
      case 2: vec(std::integral_constant<int, 2>{}); break;
      case 4: vec(std::integral_constant<int, 4>{}); break;
      case 8: vec(std::integral_constant<int, 8>{}); break;
      case 16: vec(std::integral_constant<int, 16>{}); break;
      case 32: vec(std::integral_constant<int, 32>{}); break;
      default: {
        const auto kernel = kernels::split_scalar_kernel<scalar_t>;
        const dim3 grid = grid_for(kernel);
        launch(kernel, grid, block, qp, kp, vp, lp, pa, pm, op, cp, h, hkv, S, static_cast<int>(D), scale);
      }
    }
    if (cp == nullptr)
      launch(kernels::combine_kernel<scalar_t>, dim3(static_cast<unsigned>(B * H)), dim3(cuda_math::threads_for(D)),
             pa, pm, op, static_cast<int>(splits), static_cast<int>(D));
  });
}

}  // namespace chatmill::model::fused::launchers
