// What the fused decode step's tests (fused_ops_test.cpp, tile_ops_test.cpp) share: their small Llama, the
// fused step checked against the full forward of each sequence alone, and the skip for machines without the
// CUDA kernels.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "common/test_env.h"
#include "model/config.h"
#include "model/fused_decode.h"
#include "model/fused_ops.h"
#include "model/kv_cache.h"
#include "model/persistent_decode.h"
#include "model/transformer.h"
#include "model/weights.h"

#define SKIP_WITHOUT_GPU_KERNELS()                                                                      \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine"; \
  if (!model::fused::kernels_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON"

namespace chatmill::testing {

inline model::LlamaConfig small_config(int64_t hidden, int64_t heads, int64_t kv_heads) {
  model::LlamaConfig cfg = model::llama2_debug();
  cfg.hidden_size = hidden;
  cfg.num_heads = heads;
  cfg.num_kv_heads = kv_heads;
  cfg.intermediate_size = (hidden * 8 / 3 + 7) / 8 * 8;  // a multiple of 8, so down_proj runs the skinny GEMM too
  cfg.num_layers = 3;
  cfg.rope_theta = 50000;  // not the default, so a kernel that ignores inv_freq would show
  cfg.rms_norm_eps = 1e-6;
  return cfg;
}

// Fused one-token step for rows of different lengths vs the full forward of each sequence alone. Returns the
// largest difference of the final hidden states over all rows.
// `lengths`: tokens per sequence, the last one decoded fused (up to 2 rows take the folded kernels).
inline double fused_step_vs_full_forward(const model::LlamaConfig& cfg, at::ScalarType dtype, at::Device dev,
                                  const std::vector<int64_t>& lengths = {5, 12, 1, 9},
                                  model::FusedStepOptions options = {}) {
  model::Model m(cfg, model::init_weights(cfg, 0.05, 7, dtype, dev));
  const int64_t B = static_cast<int64_t>(lengths.size()), S = 16;
  auto longs = at::TensorOptions().dtype(at::kLong).device(dev);
  model::KVCache cache = model::KVCache::allocate(cfg, B, S, dtype, dev);
  std::vector<at::Tensor> seqs;
  std::vector<int64_t> last, pos;
  for (int64_t b = 0; b < B; ++b) {
    at::Tensor seq = at::randint(3, cfg.vocab_size, {1, lengths[b]}, longs);
    seqs.push_back(seq);
    last.push_back(seq[0][lengths[b] - 1].item<int64_t>());
    pos.push_back(lengths[b] - 1);
    const int64_t n = lengths[b] - 1;
    if (n == 0) continue;
    model::KVCache row;  // this row's slice of the batch cache, prefilled as a lone sequence
    for (size_t l = 0; l < cache.k.size(); ++l) {
      row.k.push_back(cache.k[l].narrow(0, b, 1));
      row.v.push_back(cache.v[l].narrow(0, b, 1));
    }
    model::forward_hidden(m, seq.narrow(1, 0, n), at::arange(n, longs).unsqueeze(0), &row);
  }
  at::Tensor ids = at::tensor(last, at::kLong).to(dev), positions = at::tensor(pos, at::kLong).to(dev);
  at::Tensor got = model::fused_decode_hidden(m, ids, positions, positions, positions + 1, cache, options);  // (B, C)
  EXPECT_EQ(cache.split_counters.count_nonzero().item<int64_t>(), 0) << "attention leaves its counters at zero";
  if (options.persistent && dev.is_cuda() && dtype != at::kFloat && B <= 2)
    EXPECT_TRUE(cache.persistent_table.defined()) << "the persistent step did not run";
  double worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    at::Tensor full = model::forward_hidden(m, seqs[b], at::arange(lengths[b], longs).unsqueeze(0), nullptr);
    worst = std::max(worst, max_abs_diff(got[b], full[0][lengths[b] - 1]));
  }
  return worst;
}

// fused_step_vs_full_forward on the GPU with these options, printed as `what`, within tol.
inline void expect_step_near_full_forward(const model::LlamaConfig& cfg, at::ScalarType dtype, double tol,
                                   const std::vector<int64_t>& lengths, const model::FusedStepOptions& options,
                                   const std::string& what) {
  const double d = fused_step_vs_full_forward(cfg, dtype, at::Device("cuda:0"), lengths, options);
  std::cout << "GPU " << what << " vs full forward, hidden " << cfg.hidden_size << ", " << dtype << ", "
            << lengths.size() << " rows: max |diff| " << d << "\n";
  EXPECT_LE(d, tol) << what << ", hidden " << cfg.hidden_size << ", " << dtype << ", " << lengths.size() << " rows";
}

}  // namespace chatmill::testing
