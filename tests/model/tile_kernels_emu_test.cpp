// The tensor-core tile GEMM (src/model/cuda/tile_kernels.cuh, mma.cuh) and its launch code (decode_launch.cuh)
// under the CPU emulator of tests/common/cuda_emu.h, against the reference ops (model/fused_ops.h with
// ForceReference): the emulated mma against PTX's documented fragment layout, the GEMM and its epilogues, the
// residual add with its row sums, the loads that normalise x, and the five-kernel step composed from them. The
// same comparisons run on the GPU in tile_ops_test.cpp.
//
// Tolerances, relative to the reference's largest magnitude: one or two steps of the dtype (the kernels round
// where HF rounds); the whole step four.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/test_env.h"
#include "model/emu_kernel_checks.h"
#include "model/fused_decode.h"
#include "model/fused_ops.h"
#include "model/kv_cache.h"
#include "model/rope.h"
#include "model/transformer.h"
#include "model/weights.h"
// After every ATen header: the emulator defines CUDA's keywords as macros.
#include "common/cuda_emu.h"
#include "model/cuda/decode_launch.cuh"

namespace chatmill {
namespace {

namespace emu = testing::cuda_emu;
namespace launchers = model::fused::launchers;
using testing::expect_gemm_equals_linear;
using testing::expect_qkv_near;
using testing::kernel_tolerance;
using testing::kHalfTypes;
using testing::kRef;
using testing::rel_diff;

// One warp: D (16 x 8) = A (16 x 16) B (16 x 8) through mma_16816, every fragment loaded and stored by the PTX
// ISA's formulas (model/cuda/mma.cuh), written out here independently of the tile GEMM's own bookkeeping.
template <typename T, bool kBf16>
__global__ void mma_by_the_book(const T* a, const T* b, float* d) {  // a: (16, 16) row-major, b: (16, 8) row-major
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  auto pack = [](T lo, T hi) {
    union {
      uint32_t u;
      T v[2];
    } bits;
    bits.v[0] = lo;
    bits.v[1] = hi;
    return bits.u;
  };
  uint32_t af[4], bf[2];
  for (int r = 0; r < 4; ++r) {  // register r holds a_{2r}, a_{2r+1}
    const int i = 2 * r, row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8, col = t * 2 + (i >= 4 ? 8 : 0);
    af[r] = pack(a[row * 16 + col], a[row * 16 + col + 1]);
  }
  for (int r = 0; r < 2; ++r) {  // b_{2r}, b_{2r+1}: rows 2t (+8), column g
    const int row = t * 2 + (r == 1 ? 8 : 0);
    bf[r] = pack(b[row * 8 + g], b[(row + 1) * 8 + g]);
  }
  float acc[4] = {1.f, 2.f, 3.f, 4.f};  // accumulates onto what D held
  model::cuda_math::mma_16816<T, kBf16>(acc, af, bf);
  for (int i = 0; i < 4; ++i) d[(i < 2 ? g : g + 8) * 8 + t * 2 + (i & 1)] = acc[i] - static_cast<float>(i + 1);
}

TEST(EmulatedKernels, MmaFollowsThePtxFragmentLayout) {
  for (at::ScalarType dtype : kHalfTypes) {
    at::manual_seed(11);
    at::Tensor a = at::randn({16, 16}, dtype), b = at::randn({16, 8}, dtype), d = at::empty({16, 8}, at::kFloat);
    if (dtype == at::kBFloat16)
      emu::launch(mma_by_the_book<c10::BFloat16, true>, dim3(1), dim3(32), a.data_ptr<c10::BFloat16>(),
                  b.data_ptr<c10::BFloat16>(), d.data_ptr<float>());
    else
      emu::launch(mma_by_the_book<c10::Half, false>, dim3(1), dim3(32), a.data_ptr<c10::Half>(), b.data_ptr<c10::Half>(),
                  d.data_ptr<float>());
    EXPECT_LE(rel_diff(d, at::matmul(a.to(at::kFloat), b.to(at::kFloat))), 1e-6) << dtype;
  }
}

// The tile GEMM (3 to 16 rows of x) against at::linear: one n = 8 half of x and two, partial tiles, partial
// 32-value slabs (K of 33 chunks), rows over several rounds; blocks looping over tiles (resident 1, and 4: the 5
// tiles of 73 rows go to 3 blocks of 2, 2 and 1, fewer blocks than the device holds).
TEST(EmulatedKernels, TileGemmEqualsATLinear) {
  for (int64_t resident : {1, 4}) {
    const emu::Launcher launch{resident};
    for (at::ScalarType dtype : kHalfTypes) {
      at::manual_seed(12);
      expect_gemm_equals_linear(
          [&](const at::Tensor& x, const std::vector<at::Tensor>& ws, const at::Tensor& out) {
            launchers::tile_linear(launch, x, ws, out);
          },
          dtype, {{13, 264}, {40, 64}, {20, 2064}}, {1, 2, 3, 8, 9, 16}, 5, c10::str("tile, resident ", resident));
    }
  }
}

// The tile GEMM's epilogues (rotary + cache append, SwiGLU) on `in` (x itself, or a TileNormedInput) against the
// reference ops on the same input; M rows of C = H * D.
template <class In>
void expect_tile_epilogues(const emu::Launcher& launch, const In& in, int64_t M, int64_t H, int64_t Hkv, int64_t D,
                           at::ScalarType dtype, const std::string& where) {
  const int64_t C = H * D, F = 40, S = 17;
  at::Tensor wq = at::randn({H * D, C}, dtype) * 0.1, wk = at::randn({Hkv * D, C}, dtype) * 0.1,
             wv = at::randn({Hkv * D, C}, dtype) * 0.1;
  at::Tensor positions = at::randint(0, 500, {M}, at::kLong), columns = at::randperm(S, at::kLong).narrow(0, 0, M);
  model::RotaryEmbedding rope(D, 10000, at::kCPU);
  at::Tensor kc = at::randn({M, Hkv, S, D}, dtype), vc = at::randn({M, Hkv, S, D}, dtype);
  at::Tensor kc_ref = kc.clone(), vc_ref = vc.clone(), q_out = at::empty({M, H, D}, dtype);
  launchers::tile_qkv_rope(launch, in, wq, wk, wv, positions, columns, rope.inv_freq(), kc, vc, q_out);
  at::Tensor want =
      model::fused::qkv_rope_append(in, wq, wk, wv, positions, columns, rope.inv_freq(), kc_ref, vc_ref, kRef);
  expect_qkv_near(q_out, want, kc, kc_ref, vc, vc_ref, dtype, where);
  at::Tensor wg = at::randn({F, C}, dtype) * 0.1, wu = at::randn({F, C}, dtype) * 0.1;
  at::Tensor act = at::empty({M, F}, dtype);
  launchers::tile_gate_up_silu(launch, in, wg, wu, act);
  EXPECT_LE(rel_diff(act, model::fused::gate_up_silu(in, wg, wu, kRef)), kernel_tolerance(dtype, 2))
      << where << ": gate_up_silu";
}

TEST(EmulatedKernels, TileEpiloguesEqualTheUnfoldedOps) {
  const emu::Launcher launch{2};
  for (at::ScalarType dtype : kHalfTypes)
    for (auto [H, Hkv, D] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{4, 2, 16}, {2, 1, 48}})
      for (int64_t M : {3, 16}) {
        at::manual_seed(13);
        expect_tile_epilogues(launch, at::randn({M, H * D}, dtype), M, H, Hkv, D, dtype,
                              c10::str(dtype, " M ", M, " H ", H, " Hkv ", Hkv, " D ", D));
      }
}

// The tile GEMM's residual add (o and down at 3-16 rows): residual += x w^T in place, rounded as HF's, and each
// 16-column group's sums of squares of the new rows; partial last tiles (N 40) and blocks looping over tiles.
TEST(EmulatedKernels, TileResidualLinearAddsAsHFAndLeavesTheRowSums) {
  for (int64_t resident : {1, 3}) {
    const emu::Launcher launch{resident};
    for (at::ScalarType dtype : kHalfTypes)
      for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{40, 264}, {64, 96}})
        for (int64_t M : {3, 16}) {
          const std::string where = c10::str(dtype, " M ", M, " N ", N, " K ", K, " resident ", resident);
          at::manual_seed(14);
          at::Tensor x = at::randn({M, K}, dtype), w = at::randn({N, K}, dtype) * 0.05;
          at::Tensor residual = at::randn({M, N}, dtype), residual_ref = residual.clone();
          const int64_t P = model::fused::sumsq_parts(N);
          at::Tensor sumsq = at::full({P, 16}, NAN, at::kFloat), sumsq_ref = sumsq.clone();
          launchers::tile_residual_linear(launch, residual, x, w, sumsq);
          model::fused::residual_add_linear(residual_ref, x, w, sumsq_ref, kRef);
          EXPECT_LE(rel_diff(residual, residual_ref), kernel_tolerance(dtype, 2)) << where << ": residual";
          EXPECT_LE(rel_diff(sumsq.narrow(1, 0, M), sumsq_ref.narrow(1, 0, M)), kernel_tolerance(dtype, 2))
              << where << ": sums of squares";
          if (M < 16) EXPECT_TRUE(sumsq.narrow(1, M, 16 - M).isnan().all().item<bool>()) << where << ": rows past M";
        }
  }
  // HF rounds the projection's output before the add: o = 257 (exact in the accumulator, 256 in bf16) onto a
  // residual of 0.5 gives 256; one rounding of the sum would give 258.
  at::Tensor x = at::ones({3, 8}, at::kBFloat16), w = at::zeros({16, 8}, at::kBFloat16);
  w[0][0] = 200;
  w[0][1] = 57;
  at::Tensor residual = at::full({3, 16}, 0.5, at::kBFloat16), residual_ref = residual.clone();
  at::Tensor sumsq = at::empty({1, 16}, at::kFloat), sumsq_ref = at::empty({1, 16}, at::kFloat);
  launchers::tile_residual_linear(emu::Launcher{}, residual, x, w, sumsq);
  model::fused::residual_add_linear(residual_ref, x, w, sumsq_ref, kRef);
  EXPECT_EQ(residual[0][0].item<float>(), 256.f);
  EXPECT_TRUE(residual.equal(residual_ref));
}

// The tile GEMM with x normalised as it loads it (fused::TileNormedInput) against the norm, then the ops.
TEST(EmulatedKernels, TileNormedInputEqualsTheNormThenTheOps) {
  const emu::Launcher launch{2};
  for (at::ScalarType dtype : kHalfTypes)
    for (int64_t M : {3, 16}) {
      const int64_t H = 4, Hkv = 2, D = 24, C = H * D;
      at::manual_seed(15);
      at::Tensor residual = at::randn({M, C}, dtype) * 3, nw = at::randn({C}, dtype);
      // The sums of squares as the residual add leaves them (here: of a zero projection's).
      at::Tensor sumsq = at::empty({model::fused::sumsq_parts(C), 16}, at::kFloat);
      model::fused::residual_add_linear(residual, at::zeros({M, 8}, dtype), at::zeros({C, 8}, dtype), sumsq, kRef);
      expect_tile_epilogues(launch, model::fused::TileNormedInput{residual, nw, sumsq, 1e-5}, M, H, Hkv, D, dtype,
                            c10::str(dtype, " M ", M, " normalised"));
    }
}

// The folded tile step (fused_decode.cpp's branch from tile_min_rows to 16 rows with FusedStepOptions::tile_fold: five
// kernels a layer) composed here from the emulated kernels in that order, against the step's reference
// composition (fused_decode_hidden on the CPU): the norms come only from the sums of squares the residual adds
// leave, so a sum read from the wrong kernel, or a residual updated out of turn, shows in the hidden states and
// the cache.
TEST(EmulatedKernels, FoldedTileStepEqualsTheReferenceStep) {
  const emu::Launcher launch{3};
  // One n = 8 half of the mma in fp16, both in bf16, and one row (FusedStepOptions::tile_min_rows 1); the
  // emulator's mma is slow: one case each.
  for (auto [dtype, M] :
       std::vector<std::pair<at::ScalarType, int64_t>>{{at::kHalf, 3}, {at::kBFloat16, 16}, {at::kBFloat16, 1}}) {
    const model::LlamaConfig cfg = testing::emulated_step_config(4, 2, 32);  // hidden 128
    const double eps = cfg.rms_norm_eps;
    const std::string where = c10::str(dtype, " M ", M);
    model::Model m(cfg, model::init_weights(cfg, 0.05, 7, dtype, at::kCPU));
    const int64_t S = 24, C = cfg.hidden_size, H = cfg.num_heads, D = C / H;
    at::manual_seed(9);
    auto [cache, ref] = testing::random_cache_and_copy(cfg, M, S, dtype);
    const at::Tensor positions = at::randint(0, S, {M}, at::kLong), lengths = positions + 1;
    const at::Tensor ids = at::randint(3, cfg.vocab_size, {M}, at::kLong);
    const at::Tensor want = model::fused_decode_hidden(m, ids, positions, positions, lengths, ref);  // (M, C)

    at::Tensor x = at::embedding(m.weights.embed, ids).contiguous();  // the residual, updated in place
    at::Tensor sumsq = at::full({model::fused::sumsq_parts(C), 16}, NAN, at::kFloat);
    at::Tensor first = at::empty_like(x);
    launchers::add_rms_norm(launch, x, at::Tensor(), m.weights.layers[0].input_norm, eps, first);
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      const model::LayerWeights& w = m.weights.layers[l];
      at::Tensor q = at::empty({M, H, D}, dtype), attn = at::empty({M, H * D}, dtype);
      if (l == 0)
        launchers::tile_qkv_rope(launch, first, w.q_proj, w.k_proj, w.v_proj, positions, positions,
                                 m.rope.inv_freq(), cache.k[l], cache.v[l], q);
      else
        launchers::tile_qkv_rope(launch, model::fused::TileNormedInput{x, w.input_norm, sumsq, eps}, w.q_proj,
                                 w.k_proj, w.v_proj, positions, positions, m.rope.inv_freq(), cache.k[l],
                                 cache.v[l], q);
      launchers::decode_attention(launch, q, cache.k[l], cache.v[l], lengths, at::Tensor(), attn, positions);
      launchers::tile_residual_linear(launch, x, attn, w.o_proj, sumsq);
      at::Tensor act = at::empty({M, cfg.intermediate_size}, dtype);
      launchers::tile_gate_up_silu(launch, model::fused::TileNormedInput{x, w.post_norm, sumsq, eps}, w.gate_proj,
                                   w.up_proj, act);
      launchers::tile_residual_linear(launch, x, act, w.down_proj, sumsq);
    }
    at::Tensor got = at::empty_like(x);
    launchers::add_rms_norm(launch, x, at::Tensor(), m.weights.norm, eps, got);
    // Two layers of one-ulp differences (matmul and attention reduction orders) through the norms.
    EXPECT_LE(rel_diff(got, want), kernel_tolerance(dtype, 4)) << where;
    testing::expect_caches_near(cache, ref, dtype, where);
  }
}

}  // namespace
}  // namespace chatmill
