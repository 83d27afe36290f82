// Packed training rows (several documents per row): the document mask and its runs of flattened positions
// (train/loss.h document_mask), and, on the GPU, flash varlen attention over those runs against SDPA under
// the dense mask, through a whole decoder layer (Kernels::Fused) forward and backward.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "common/test_env.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "train/loss.h"

namespace chatmill {
namespace {

using testing::max_abs_diff;

// Two rows of 8: [a a a b b c c -] and [d d d d d d d d]; -1 is padding.
at::Tensor packed_docs() {
  return at::tensor({0, 0, 0, 1, 1, 2, 2, -1, 0, 0, 0, 0, 0, 0, 0, 0}, at::kInt).view({2, 8});
}

TEST(DocumentMask, RunsOfFlattenedPositionsAreTheMasksDocuments) {
  model::AttentionMask m = train::document_mask(packed_docs());
  ASSERT_TRUE(m.mask.defined());
  ASSERT_TRUE(m.segment_starts.defined());
  EXPECT_EQ(m.segment_starts.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(m.segment_starts, at::tensor({0, 3, 5, 7, 8, 16}, at::kInt)));
  EXPECT_EQ(m.max_segment, 8);
  // Causal within a run, rebuilt densely, equals the mask on every real query row.
  at::Tensor run = at::zeros({16}, at::kLong);
  auto s = m.segment_starts.to(at::kLong);
  for (int64_t i = 1; i + 1 < s.size(0); ++i) run.narrow(0, s[i].item<int64_t>(), 16 - s[i].item<int64_t>()) += 1;
  at::Tensor doc = packed_docs().view({-1});
  for (int64_t q = 0; q < 16; ++q) {
    if (doc[q].item<int>() < 0) continue;
    for (int64_t k = 0; k < 16; ++k) {
      const bool same_row = q / 8 == k / 8;
      const bool runs = run[q].item<int64_t>() == run[k].item<int64_t>() && k <= q;
      const bool masked = same_row && m.mask[q / 8][0][q % 8][k % 8].item<bool>();
      EXPECT_EQ(runs, masked) << "query " << q << " key " << k;
    }
  }
  // One document per row: plain causal, no runs needed.
  model::AttentionMask one = train::document_mask(at::zeros({2, 8}, at::kInt));
  EXPECT_TRUE(one.is_causal);
  EXPECT_FALSE(one.segment_starts.defined());
}

TEST(GpuPackedAttention, FlashVarlenEqualsTheDenseMaskThroughALayer) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  at::manual_seed(9);
  model::LlamaConfig cfg = model::llama2_debug();
  cfg.hidden_size = 256;
  cfg.num_heads = 4;
  cfg.num_kv_heads = 2;  // GQA: flash takes the kv heads as they are
  cfg.intermediate_size = 512;
  cfg.num_layers = 1;
  const at::Device dev(at::kCUDA);
  model::Weights w = model::init_weights(cfg, 0.05, 3, at::kBFloat16, dev);
  // Three rows of 64 packing documents of 20, 30 and 14 positions (positions restart per document), the last
  // row ending in padding.
  std::vector<int> docs, pos;
  for (int r = 0; r < 3; ++r) {
    int d = 0, p = 0;
    for (int t = 0; t < 64; ++t) {
      const int len = d == 0 ? 20 : d == 1 ? 30 : 14;
      if (p == len) ++d, p = 0;
      docs.push_back(r == 2 && t >= 56 ? -1 : d);
      pos.push_back(p++);
    }
  }
  at::Tensor doc = at::tensor(docs, at::kInt).view({3, 64}).to(dev);
  at::Tensor positions = at::tensor(pos, at::kLong).view({3, 64}).to(dev);
  model::RotaryEmbedding rope(cfg.head_dim(), cfg.rope_theta, dev);
  model::RopeTables rt = rope.tables(positions, at::kBFloat16);
  model::AttentionMask varlen = train::document_mask(doc);
  model::AttentionMask dense = varlen;
  dense.segment_starts = at::Tensor();
  at::Tensor x0 = at::randn({3, 64, cfg.hidden_size}, at::TensorOptions().dtype(at::kBFloat16).device(dev));
  at::Tensor real = (doc >= 0).unsqueeze(-1);  // padding outputs differ by design; they feed nothing
  at::Tensor probe = at::randn_like(x0, at::kFloat) * real;
  std::vector<at::Tensor> out, gx;
  for (const model::AttentionMask* m : {&dense, &varlen}) {
    at::Tensor x = x0.clone().requires_grad_(true);
    at::Tensor y = model::decoder_layer(cfg, w.layers[0], x, rt, nullptr, 0, *m, model::Kernels::Fused);
    out.push_back((y * real).to(at::kFloat));
    gx.push_back(torch::autograd::grad({(y.to(at::kFloat) * probe).sum()}, {x})[0].to(at::kFloat));
  }
  const double scale_y = out[0].abs().max().item<double>(), scale_g = gx[0].abs().max().item<double>();
  std::cout << "  varlen vs dense mask: output " << max_abs_diff(out[1], out[0]) / scale_y << ", input gradient "
            << max_abs_diff(gx[1], gx[0]) / scale_g << " (relative)\n";
  EXPECT_LE(max_abs_diff(out[1], out[0]), 2.0 / 128 * scale_y);
  EXPECT_LE(max_abs_diff(gx[1], gx[0]), 2.0 / 128 * scale_g);
}

}  // namespace
}  // namespace chatmill
