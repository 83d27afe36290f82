// The fused decode step (model/fused_ops.h, model/fused_decode.h).
// CPU: the reference composition is checked against independent computations: rotary and cache writes
// against the model's own rotary tables, attention over each row's prefix against SDPA on that row alone, and
// the whole fused step against the full forward of each sequence alone.
// GPU (scripts/gpu_check.sh): every CUDA kernel against the reference on the same tensors (float32, bf16,
// fp16; MHA and GQA; head dims 64 and 128), and the fused step against the full forward on the GPU.
// The tile GEMM's ops and step are tested in tile_ops_test.cpp; both share fused_step_check.h.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "common/test_env.h"
#include "model/fused_decode.h"
#include "model/fused_ops.h"
#include "model/fused_step_check.h"
#include "model/persistent_decode.h"
#include "model/rope.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace chatmill {
namespace {

using model::fused::ForceReference;

using testing::expect_step_near_full_forward;
using testing::fused_step_vs_full_forward;
using testing::max_abs_diff;
using testing::rel_diff;
using testing::small_config;

TEST(FusedOps, RopeAppendRotatesLikeTheModelAndWritesOnlyEachRowsColumn) {
  const int64_t B = 3, H = 4, Hkv = 2, D = 16, S = 10;
  at::manual_seed(1);
  at::Tensor qkv = at::randn({B, (H + 2 * Hkv) * D});
  at::Tensor q = qkv.narrow(1, 0, H * D), k = qkv.narrow(1, H * D, Hkv * D), v = qkv.narrow(1, (H + Hkv) * D, Hkv * D);
  at::Tensor positions = at::tensor({7, 0, 3}, at::kLong), columns = at::tensor({2, 9, 0}, at::kLong);
  model::RotaryEmbedding rope(D, 50000, at::kCPU);
  at::Tensor kc = at::randn({B, Hkv, S, D}), vc = at::randn({B, Hkv, S, D});
  const at::Tensor kc0 = kc.clone(), vc0 = vc.clone();
  at::Tensor qr = model::fused::rope_append(q, k, v, positions, columns, rope.inv_freq(), kc, vc);  // (B, H, D)

  model::RopeTables t = rope.tables(positions.unsqueeze(1), at::kFloat);  // (B, 1, D)
  EXPECT_LE(max_abs_diff(qr, model::apply_rotary(q.reshape({B, H, 1, D}), t).squeeze(2)), 0.0);
  at::Tensor kr = model::apply_rotary(k.reshape({B, Hkv, 1, D}), t).squeeze(2);  // (B, Hkv, D)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t c = columns[b].item<int64_t>();
    EXPECT_LE(max_abs_diff(kc[b].select(1, c), kr[b]), 0.0) << "row " << b;
    EXPECT_LE(max_abs_diff(vc[b].select(1, c), v[b].reshape({Hkv, D})), 0.0) << "row " << b;
    for (int64_t s = 0; s < S; ++s)
      if (s != c) {
        EXPECT_TRUE(kc[b].select(1, s).equal(kc0[b].select(1, s))) << "row " << b << " column " << s;
        EXPECT_TRUE(vc[b].select(1, s).equal(vc0[b].select(1, s))) << "row " << b << " column " << s;
      }
  }
}

TEST(FusedOps, DecodeAttentionEqualsEachRowAloneOverItsPrefix) {
  const int64_t B = 3, H = 6, Hkv = 2, D = 8, S = 12;
  at::manual_seed(2);
  at::Tensor q = at::randn({B, H, D}), kc = at::randn({B, Hkv, S, D}), vc = at::randn({B, Hkv, S, D});
  const std::vector<int64_t> lens = {1, 12, 5};
  at::Tensor out = model::fused::decode_attention(q, kc, vc, at::tensor(lens, at::kLong));  // (B, H*D)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      at::Tensor keys = kc[b][h / (H / Hkv)].narrow(0, 0, lens[b]);  // (L, D)
      at::Tensor vals = vc[b][h / (H / Hkv)].narrow(0, 0, lens[b]);
      at::Tensor p = at::softmax(at::matmul(keys, q[b][h]) / std::sqrt(static_cast<double>(D)), 0);  // (L)
      EXPECT_LE(max_abs_diff(out[b].narrow(0, h * D, D), at::matmul(p, vals)), 1e-6) << "row " << b << " head " << h;
    }
}

TEST(FusedOps, FusedStepEqualsTheFullForwardOfEachSequenceAlone) {
  // float32 on the CPU: reduction order only.
  for (auto cfg : {small_config(64, 8, 4), small_config(64, 4, 4)}) {
    const double d = fused_step_vs_full_forward(cfg, at::kFloat, at::kCPU);
    std::cout << "fused step vs full forward, " << cfg.num_heads << "/" << cfg.num_kv_heads << " heads: max |diff| "
              << d << "\n";
    EXPECT_LE(d, 1e-5);
  }
  // One and two rows: the folded composition (norms into the projections after them), and unfolded.
  for (bool fold : {true, false})
    for (const std::vector<int64_t>& lengths : {std::vector<int64_t>{7}, std::vector<int64_t>{3, 11}}) {
      model::FusedStepOptions options;
      options.fold = fold;
      const double d = fused_step_vs_full_forward(small_config(64, 8, 2), at::kFloat, at::kCPU, lengths, options);
      EXPECT_LE(d, 1e-5) << lengths.size() << " rows, fold " << fold;
    }
}

// The persistent step's layer table (model/persistent_decode.h): each layer's addresses in the kernel's order,
// rebuilt when the cache changes, kept when not; off the GPU the step does not apply, says so, and the fused
// step falls back to the same result.
TEST(PersistentStep, TableHoldsEachLayersAddressesAndFollowsTheCache) {
  model::LlamaConfig cfg = small_config(128, 2, 1);  // head dim 64
  cfg.num_layers = 2;
  model::Model m(cfg, model::init_weights(cfg, 0.05, 7, at::kBFloat16, at::kCPU));
  model::KVCache cache = model::KVCache::allocate(cfg, 1, 8, at::kBFloat16, at::kCPU);
  const at::Tensor t = model::fused::layer_table(m, cache);
  ASSERT_EQ(t.sizes(), at::IntArrayRef({2, 11}));
  for (int64_t l = 0; l < 2; ++l) {
    const model::LayerWeights& w = m.weights.layers[l];
    const std::vector<const at::Tensor*> order = {&w.q_proj, &w.k_proj,    &w.v_proj,    &w.o_proj,
                                                  &w.gate_proj, &w.up_proj, &w.down_proj, &w.input_norm,
                                                  &w.post_norm, &cache.k[l], &cache.v[l]};
    for (int64_t i = 0; i < 11; ++i)
      EXPECT_EQ(t[l][i].item<int64_t>(), reinterpret_cast<int64_t>(order[i]->data_ptr())) << "layer " << l << " entry " << i;
  }
  model::fused::prepare_persistent(m, cache);
  ASSERT_TRUE(cache.persistent_table.defined() && cache.grid_barrier.defined());
  EXPECT_EQ(cache.grid_barrier.numel(), 1);
  EXPECT_EQ(cache.grid_barrier.item<int>(), 0);
  const void* built = cache.persistent_table.data_ptr();
  model::fused::prepare_persistent(m, cache);
  EXPECT_EQ(cache.persistent_table.data_ptr(), built) << "a current table is kept";
  model::KVCache other = model::KVCache::allocate(cfg, 1, 8, at::kBFloat16, at::kCPU);
  other.persistent_table = cache.persistent_table;  // another cache handed this one's table
  other.persistent_table_host = cache.persistent_table_host;
  other.grid_barrier = cache.grid_barrier;
  model::fused::prepare_persistent(m, other);
  EXPECT_TRUE(other.persistent_table.equal(model::fused::layer_table(m, other))) << "a stale table is rebuilt";

  EXPECT_FALSE(model::fused::persistent_applies(m, cache, 1)) << "no CUDA kernels for CPU tensors";
  at::Tensor x = at::randn({1, cfg.hidden_size}, at::kBFloat16);
  const at::Tensor one = at::zeros({1}, at::kLong);
  testing::expect_error([&] { model::fused::persistent_layers(m, x, one, one, one + 1, cache); },
                        {"does not apply", "folded step"});
  model::FusedStepOptions persistent;
  persistent.persistent = true;
  model::KVCache c1 = model::KVCache::allocate(cfg, 1, 8, at::kBFloat16, at::kCPU);
  model::KVCache c2 = model::KVCache::allocate(cfg, 1, 8, at::kBFloat16, at::kCPU);
  const at::Tensor ids = at::tensor(std::vector<int64_t>{5}, at::kLong);
  EXPECT_TRUE(model::fused_decode_hidden(m, ids, one, one, one + 1, c1, persistent)
                  .equal(model::fused_decode_hidden(m, ids, one, one, one + 1, c2)));
}

TEST(FusedOps, LinearIsATLinearOffTheGpu) {
  at::Tensor x = at::randn({3, 16}), w = at::randn({5, 16});
  EXPECT_TRUE(model::fused::linear(x, w).equal(at::linear(x, w)));
  testing::expect_error([&] { model::fused::linear(x, at::randn({5, 15})); }, {"do not multiply"});
}

TEST(FusedOps, LinearPartsIsATLinearOfEachWeightOffTheGpu) {
  at::Tensor x = at::randn({3, 16}), a = at::randn({5, 16}), b = at::randn({7, 16});
  const std::vector<at::Tensor> parts = model::fused::linear_parts(x, {a, b});
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_TRUE(parts[0].equal(at::linear(x, a)));
  EXPECT_TRUE(parts[1].equal(at::linear(x, b)));
  testing::expect_error([&] { model::fused::linear_parts(x, {a, at::randn({5, 15})}); }, {"do not multiply"});
  testing::expect_error([&] { model::fused::linear_parts(x, {}); }, {"1 to 3 weights"});
  testing::expect_error([&] { model::fused::linear_parts(x, {a, a, a, a}); }, {"1 to 3 weights", "got 4"});
}

TEST(FusedOps, RefusesBadShapesClearly) {
  at::Tensor x = at::randn({2, 8}), w = at::ones({8});
  testing::expect_error([&] { model::fused::add_rms_norm(x, at::randn({2, 7}), w, 1e-6); }, {"delta", "(2, 8)"});
  testing::expect_error([&] { model::fused::add_rms_norm(x, at::Tensor(), at::ones({8}, at::kDouble), 1e-6); },
                        {"norm weight"});
  testing::expect_error([&] { model::fused::silu_mul(x, at::randn({3, 8})); }, {"up", "(2, 8)"});
  at::Tensor kc = at::zeros({2, 2, 4, 4}), vc = at::zeros({2, 2, 4, 4}), inv = at::ones({2});
  at::Tensor pos = at::zeros({2}, at::kLong);
  testing::expect_error([&] { model::fused::rope_append(at::randn({2, 12}), at::randn({2, 8}), at::randn({2, 8}), pos, pos, inv, kc, vc); },
                        {"cannot share"});
  testing::expect_error([&] { model::fused::rope_append(at::randn({2, 8}), at::randn({2, 8}), at::randn({2, 8}), pos.to(at::kInt), pos, inv, kc, vc); },
                        {"positions", "int64"});
  testing::expect_error([&] { model::fused::decode_attention(at::randn({2, 2, 4}), kc.transpose(1, 2), vc, at::ones({2}, at::kLong)); },
                        {"contiguous", "k cache"});
  testing::expect_error([&] { model::fused::decode_attention(at::randn({2, 2, 4}), kc, vc, at::ones({3}, at::kLong)); },
                        {"lengths", "(2)"});
  // The kernels read index tensors densely: a strided view is refused, not misread.
  at::Tensor strided = at::ones({2, 2}, at::kLong).select(1, 0);
  testing::expect_error([&] { model::fused::decode_attention(at::randn({2, 2, 4}), kc, vc, strided); },
                        {"lengths", "dense", "stride"});
  testing::expect_error([&] { model::fused::decode_attention(at::randn({2, 2, 4}), kc, vc, pos + 1, {}, {}, {}, pos.to(at::kInt)); },
                        {"fresh columns", "int64"});
}

// ---- GPU ------------------------------------------------------------------------------------------------

using testing::kernel_tolerance;

TEST(GpuFused, KernelsEqualTheReference) {
  SKIP_WITHOUT_GPU_KERNELS();
  const at::Device dev("cuda:0");
  ForceReference ref{true};
  std::map<std::string, double> worst;  // op and dtype -> largest relative difference seen
  bool pdl_now = true;                   // the launch mode being tested
  auto close = [&](const std::string& op, at::ScalarType dtype, const at::Tensor& got, const at::Tensor& want,
                   double ulps, const std::string& where) {
    const double d = rel_diff(got, want);
    const std::string key = c10::str(op, " ", dtype);
    worst[key] = std::max(worst[key], d);
    EXPECT_LE(d, kernel_tolerance(dtype, ulps)) << op << " " << where << (pdl_now ? " (PDL)" : " (no PDL)");
  };
  // Every kernel with programmatic dependent launch (the default) and without.
  for (bool programmatic : {true, false})
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    const model::fused::LaunchOptions launch{programmatic};
    pdl_now = programmatic;
    auto opts = at::TensorOptions().dtype(dtype).device(dev);
    at::manual_seed(3);
    // add_rms_norm over 7B's width, with and without the residual add.
    for (int64_t C : {4096, 5120, 72}) {
      at::Tensor r = at::randn({5, C}, opts), d = at::randn({5, C}, opts), w = at::randn({C}, opts);
      at::Tensor r_ref = r.clone(), r2 = r.clone(), r2_ref = r.clone();
      at::Tensor y = model::fused::add_rms_norm(r, d, w, 1e-5, {}, launch);
      at::Tensor y_ref = model::fused::add_rms_norm(r_ref, d, w, 1e-5, ref);
      EXPECT_LE(max_abs_diff(r, r_ref), 0.0) << dtype << " C " << C << ": the residual add rounds as HF's";
      close("add_rms_norm", dtype, y, y_ref, 1, c10::str("C ", C));
      close("rms_norm", dtype, model::fused::add_rms_norm(r2, at::Tensor(), w, 1e-6, {}, launch),
            model::fused::add_rms_norm(r2_ref, at::Tensor(), w, 1e-6, ref), 1, c10::str("C ", C));
      // A delta that is a column range of a wider output (its rows 2C apart).
      at::Tensor wide = at::randn({5, 2 * C}, opts), r3 = r.clone(), r3_ref = r.clone();
      at::Tensor dv = wide.narrow(1, C, C);
      close("add_rms_norm", dtype, model::fused::add_rms_norm(r3, dv, w, 1e-5, {}, launch),
            model::fused::add_rms_norm(r3_ref, dv, w, 1e-5, ref), 1, c10::str("strided delta, C ", C));
      EXPECT_LE(max_abs_diff(r3, r3_ref), 0.0) << dtype << " C " << C << ": the residual add of a strided delta";
    }
    // silu_mul on strided views of one (N, 2F) matmul output, as a fused gate/up projection would give.
    at::Tensor gu = at::randn({3, 2 * 11008}, opts) * 4;
    at::Tensor g = gu.narrow(1, 0, 11008), u = gu.narrow(1, 11008, 11008);
    close("silu_mul", dtype, model::fused::silu_mul(g, u, {}, launch), model::fused::silu_mul(g, u, ref), 1, "");

    // The skinny GEMM (bf16/fp16, up to kSkinnyRows rows; more rows and float32 go to at::linear) against at::linear (cuBLAS may
    // reduce partly in bf16, hence 4 ulps): the 7B
    // projections, the LM head, and widths that leave a partial last block of rows or of in-flight chunks.
    for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {11008, 4096}, {4096, 11008},
                                                                {32000, 4096}, {1000, 96}, {13, 264}}) {
      at::Tensor w = at::randn({N, K}, opts) * 0.05;
      for (int64_t M : {1, 2, 5, 8, 16}) {
        at::Tensor x = at::randn({M, K}, opts);
        close("linear", dtype, model::fused::linear(x, w, {}, launch), at::linear(x, w), 4,
              c10::str("M ", M, " N ", N, " K ", K));
        if (M <= 2) {  // the staged GEMV (LaunchOptions::stage_weights) takes 1 and 2 rows
          model::fused::LaunchOptions staged = launch;
          staged.stage_weights = true;
          close("staged linear", dtype, model::fused::linear(x, w, {}, staged), at::linear(x, w), 4,
                c10::str("M ", M, " N ", N, " K ", K));
        }
      }
      // A weight that is a row range of a bigger matrix (a packed projection's view) works the same.
      at::Tensor big = at::randn({N + 8, K}, opts);
      at::Tensor view = big.narrow(0, 8, N), x = at::randn({3, K}, opts);
      close("linear", dtype, model::fused::linear(x, view, {}, launch), at::linear(x, view), 4,
            c10::str("view N ", N, " K ", K));
    }
    // Several weights in one launch (7B's q, k, v with GQA-sized k and v; gate, up), each part against at::linear.
    for (auto [K, Ns] : std::vector<std::pair<int64_t, std::vector<int64_t>>>{
             {4096, {4096, 1024, 1024}}, {4096, {11008, 11008}}, {264, {13, 5, 40}}, {96, {1000}}}) {
      std::vector<at::Tensor> ws;
      for (int64_t N : Ns) ws.push_back(at::randn({N, K}, opts) * 0.05);
      for (int64_t M : {1, 2}) {
        at::Tensor x = at::randn({M, K}, opts);
        const std::vector<at::Tensor> parts = model::fused::linear_parts(x, ws, {}, launch);
        ASSERT_EQ(parts.size(), ws.size());
        for (size_t i = 0; i < ws.size(); ++i)
          close("linear_parts", dtype, parts[i], at::linear(x, ws[i]), 4, c10::str("M ", M, " K ", K, " part ", i));
      }
    }

    for (auto [H, Hkv, D] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{32, 32, 128}, {8, 2, 64}, {6, 3, 16}, {4, 2, 96}, {4, 4, 256}}) {
      for (int64_t B : {1, 3, 16}) {
        const int64_t S = 300;
        at::Tensor qkv = at::randn({B, (H + 2 * Hkv) * D}, opts);
        at::Tensor q = qkv.narrow(1, 0, H * D), k = qkv.narrow(1, H * D, Hkv * D),
                   v = qkv.narrow(1, (H + Hkv) * D, Hkv * D);
        at::Tensor positions = at::randint(0, 4000, {B}, at::TensorOptions().dtype(at::kLong).device(dev));
        at::Tensor columns = at::randint(0, S, {B}, at::TensorOptions().dtype(at::kLong).device(dev));
        model::RotaryEmbedding rope(D, 10000, dev);
        at::Tensor kc = at::randn({B, Hkv, S, D}, opts), vc = at::randn({B, Hkv, S, D}, opts);
        at::Tensor kc_ref = kc.clone(), vc_ref = vc.clone();
        at::Tensor qr = model::fused::rope_append(q, k, v, positions, columns, rope.inv_freq(), kc, vc, {}, launch);
        at::Tensor qr_ref = model::fused::rope_append(q, k, v, positions, columns, rope.inv_freq(), kc_ref, vc_ref, ref);
        const std::string where = c10::str(dtype, " B ", B, " H ", H, " Hkv ", Hkv, " D ", D);
        close("rope q", dtype, qr, qr_ref, 1, where);
        close("rope k cache", dtype, kc, kc_ref, 1, where);
        EXPECT_LE(max_abs_diff(vc, vc_ref), 0.0) << where << " (whole v cache)";

        // Attention over lengths from 1 to S (row 0 the whole cache, so batch 1 runs every split too).
        at::Tensor lengths = at::randint(1, S + 1, {B}, at::TensorOptions().dtype(at::kLong)).to(dev);
        lengths[0] = S;
        // Each row's last column as the fresh one, computed here: not by the kernel right before attention.
        const at::Tensor last = lengths - 1;
        at::Tensor qa = at::randn({B, H, D}, opts);
        const at::Tensor attn_ref = model::fused::decode_attention(qa, kc, vc, lengths, ref);
        close("decode_attention", dtype, model::fused::decode_attention(qa, kc, vc, lengths, {}, launch), attn_ref, 2,
              where);
        at::Tensor counters = at::zeros({B * H}, at::TensorOptions().dtype(at::kInt).device(dev));
        for (int rep = 0; rep < 2; ++rep)  // the counters, left at zero, serve the next launch
          close("decode_attention (last-block combine)", dtype,
                model::fused::decode_attention(qa, kc, vc, lengths, {}, launch, counters), attn_ref, 2, where);
        EXPECT_EQ(counters.count_nonzero().item<int64_t>(), 0) << where << ": counters left at zero";
        // With each row's last column named fresh: the vectorised kernel loads the others before its wait.
        close("decode_attention (fresh columns)", dtype,
              model::fused::decode_attention(qa, kc, vc, lengths, {}, launch, counters, last), attn_ref, 2, where);

        // The folded q/k/v projection (norm prologue, rotary and cache epilogue), gate/up/SwiGLU and LM head (its
        // float32 logits), where the skinny GEMM applies (bf16/fp16, up to 2 rows), against the unfolded ops.
        if (dtype != at::kFloat && B <= model::fused::kSkinnyRows) {
          const int64_t C = H * D, F = 352;
          at::Tensor r = at::randn({B, C}, opts), wide = at::randn({B, 2 * C}, opts), nw = at::randn({C}, opts);
          at::Tensor wq = at::randn({H * D, C}, opts) * 0.05, wk = at::randn({Hkv * D, C}, opts) * 0.05,
                     wv = at::randn({Hkv * D, C}, opts) * 0.05;
          at::Tensor wg = at::randn({F, C}, opts) * 0.05, wu = at::randn({F, C}, opts) * 0.05;
          for (bool with_delta : {true, false}) {
            const at::Tensor delta = with_delta ? wide.narrow(1, C, C) : at::Tensor();
            const model::fused::NormedInput in{r, delta, nw, at::empty_like(r), 1e-5};
            const model::fused::NormedInput in_ref{r, delta, nw, at::empty_like(r), 1e-5};
            ASSERT_TRUE(model::fused::folds_apply(in, {wq, wk, wv})) << where;
            at::Tensor kf = kc.clone(), vf = vc.clone(), kf_ref = kc.clone(), vf_ref = vc.clone();
            at::Tensor qf = model::fused::qkv_rope_append(in, wq, wk, wv, positions, columns, rope.inv_freq(), kf, vf,
                                                          {}, launch);
            at::Tensor qf_ref = model::fused::qkv_rope_append(in_ref, wq, wk, wv, positions, columns, rope.inv_freq(),
                                                              kf_ref, vf_ref, ref);
            const std::string w2 = where + (with_delta ? " with delta" : " norm alone");
            EXPECT_LE(max_abs_diff(in.residual_out, in_ref.residual_out), 0.0) << w2 << ": residual_out";
            close("qkv_rope_append (folded)", dtype, qf, qf_ref, 4, w2);
            close("qkv_rope_append (folded) k cache", dtype, kf, kf_ref, 4, w2);
            close("qkv_rope_append (folded) v cache", dtype, vf, vf_ref, 4, w2);
            close("gate_up_silu (folded)", dtype, model::fused::gate_up_silu(in, wg, wu, {}, launch),
                  model::fused::gate_up_silu(in_ref, wg, wu, ref), 4, w2);
            at::Tensor wh = at::randn({1001, C}, opts) * 0.05;  // an LM head of odd width
            ASSERT_TRUE(model::fused::folds_apply(in, {wh})) << where;
            at::Tensor logits = at::empty({B, 1001}, opts.dtype(at::kFloat)), logits_ref = at::empty_like(logits);
            model::fused::lm_head_logits(in, wh, logits, {}, launch);
            model::fused::lm_head_logits(in_ref, wh, logits_ref, ref);
            close("lm_head_logits (folded)", dtype, logits, logits_ref, 4, w2);
            EXPECT_TRUE(logits.equal(logits.to(dtype).to(at::kFloat))) << w2 << ": logits are the dtype's values";
          }
        }
      }
    }
  }
  // Decode attention at 7B's shape in a 4096-column cache (32 splits at batch 1), at the lengths serving sees.
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    auto opts = at::TensorOptions().dtype(dtype).device(dev);
    const int64_t S = 4096;
    for (int64_t B : {1, 4}) {
      at::Tensor kc = at::randn({B, 32, S, 128}, opts), vc = at::randn({B, 32, S, 128}, opts);
      at::Tensor qa = at::randn({B, 32, 128}, opts);
      for (int64_t len : {1, 200, 256, 2048, 4095, 4096}) {
        at::Tensor lengths = at::randint(1, S + 1, {B}, at::TensorOptions().dtype(at::kLong));
        lengths[0] = len;
        lengths = lengths.to(dev);
        close("decode_attention", dtype, model::fused::decode_attention(qa, kc, vc, lengths),
              model::fused::decode_attention(qa, kc, vc, lengths, ref), 2, c10::str("7B B ", B, " length ", len));
      }
    }
  }
  for (const auto& [op, d] : worst) std::cout << "kernel vs reference, " << op << ": max relative diff " << d << "\n";
}

TEST(GpuFused, FusedStepEqualsTheFullForwardOnTheGpu) {
  SKIP_WITHOUT_GPU_KERNELS();
  for (auto cfg : {small_config(512, 8, 2), small_config(1024, 8, 8)}) {
    // bf16/fp16: both paths round at the same places; what differs is reduction order inside matmuls and
    // attention, amplified through 3 layers. The hidden states are O(1) after the final norm.
    for (auto [dtype, tol] : std::vector<std::pair<at::ScalarType, double>>{
             {at::kFloat, 1e-4}, {at::kBFloat16, 0.1}, {at::kHalf, 0.05}}) {
      // Four rows: the unfolded kernels (cuBLAS: the tile GEMM's step is tile_ops_test's); one and two: the
      // folded ones (bf16/fp16), then unfolded.
      for (const std::vector<int64_t>& lengths :
           {std::vector<int64_t>{5, 12, 1, 9}, std::vector<int64_t>{7}, std::vector<int64_t>{3, 11}})
        // Folded; with the skinny GEMM's L2 prefetch, with the o projection through the staged GEMV (both off by
        // default), the latter also beside the tile GEMM (down); unfolded.
        for (auto [fold, prefetch, o_stage, tile] : std::vector<std::tuple<bool, bool, bool, bool>>{
                 {true, false, false, false}, {true, true, false, false}, {true, false, true, false},
                 {true, false, true, true}, {false, false, false, false}}) {
          if ((!fold || prefetch || o_stage) && lengths.size() > 2) continue;  // the same path as the default
          model::FusedStepOptions options;
          options.fold = fold;
          options.l2_prefetch = prefetch;
          options.o_stage = o_stage;
          options.tile_gemm = tile;
          expect_step_near_full_forward(cfg, dtype, tol, lengths, options,
                                        std::string("fused step") + (fold ? "" : " (no fold)") +
                                            (prefetch ? " (L2 prefetch)" : "") + (o_stage ? " (o staged)" : "") +
                                            (tile ? " (tile GEMM)" : ""));
        }
    }
  }
}

// The persistent step (model/persistent_decode.h: every layer in one cooperative kernel) against the full
// forward, at 1 and 2 rows, with and without the L2 prefetches; a test of its own, so that gpu_check.sh can run
// it under its own time limit.
TEST(GpuFused, PersistentStepEqualsTheFullForwardOnTheGpu) {
  SKIP_WITHOUT_GPU_KERNELS();
  for (auto cfg : {small_config(512, 8, 2), small_config(1024, 8, 8)})  // head dims 64 and 128
    for (auto [dtype, tol] : std::vector<std::pair<at::ScalarType, double>>{{at::kBFloat16, 0.1}, {at::kHalf, 0.05}})
      for (const std::vector<int64_t>& lengths : {std::vector<int64_t>{7}, std::vector<int64_t>{3, 11}})
        for (auto [l2, o] : std::vector<std::pair<bool, bool>>{{false, true}, {true, true}, {false, false}}) {
          model::FusedStepOptions options;
          options.persistent = true;
          options.l2_prefetch = l2;
          options.persistent_o_prefetch = o;
          expect_step_near_full_forward(cfg, dtype, tol, lengths, options,
                                        std::string("persistent step") + (l2 ? " (L2 prefetch)" : "") +
                                            (o ? "" : " (no o prefetch)"));
        }
}

}  // namespace
}  // namespace chatmill
