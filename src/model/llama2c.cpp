#include "model/llama2c.h"

#include <ATen/ATen.h>

#include <cstring>

#include "common/error.h"
#include "common/mapped_file.h"

namespace chatmill::model {

at::Tensor permute_rotary_rows(const at::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), C = w.size(1), D = rows / heads;
  return w.view({heads, D / 2, 2, C}).transpose(1, 2).reshape({rows, C});
}

Model load_llama2c(const std::filesystem::path& file, const LoadOptions& opts) {
  auto map = MappedFile::open(file);
  CHATMILL_CHECK(map->size() >= 28, "llama2.c checkpoint ", file, " is truncated: ", map->size(),
                 " bytes, shorter than its 28-byte header");
  int32_t h[7];
  std::memcpy(h, map->data(), sizeof h);
  LlamaConfig cfg;
  cfg.hidden_size = h[0];
  cfg.intermediate_size = h[1];
  cfg.num_layers = h[2];
  cfg.num_heads = h[3];
  cfg.num_kv_heads = h[4];
  cfg.vocab_size = std::abs(h[5]);
  cfg.tie_word_embeddings = h[5] > 0;
  cfg.max_position_embeddings = h[6];
  cfg.rms_norm_eps = 1e-5;  // llama2.c's constant
  cfg.rope_theta = 10000.0;
  try {
    cfg.validate();
  } catch (const Error& e) {
    CHATMILL_FAIL(file, " does not look like a llama2.c legacy checkpoint: ", e.what());
  }

  const int64_t C = cfg.hidden_size, F = cfg.intermediate_size, L = cfg.num_layers, V = cfg.vocab_size;
  const int64_t D = cfg.head_dim(), KV = cfg.num_kv_heads * D;
  const int64_t freq = cfg.max_position_embeddings * D / 2;  // freq_cis_real and _imag, unused
  const int64_t floats = V * C + L * C + L * C * C + 2 * L * KV * C + L * C * C + L * C + 3 * L * F * C + C +
                         2 * freq + (cfg.tie_word_embeddings ? 0 : V * C);
  const uint64_t expected = 28 + static_cast<uint64_t>(floats) * 4;
  CHATMILL_CHECK(map->size() == expected, "llama2.c checkpoint ", file, " is ", map->size(), " bytes, but its header (dim ",
                 C, ", hidden ", F, ", layers ", L, ", heads ", cfg.num_heads, ", kv heads ", cfg.num_kv_heads,
                 ", vocab ", h[5], ", seq_len ", h[6], ") implies ", expected,
                 "; only the legacy float32 format (export.py --version 0) is supported");

  at::Tensor all = at::from_blob(const_cast<uint8_t*>(map->data()) + 28, {floats}, at::kFloat);
  int64_t at_ = 0;
  auto take = [&](std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    at::Tensor t = all.narrow(0, at_, n).view(shape);
    at_ += n;
    return t;
  };
  at::Tensor embed = take({V, C}), att_norm = take({L, C}), wq = take({L, C, C}), wk = take({L, KV, C}),
             wv = take({L, KV, C}), wo = take({L, C, C}), ffn_norm = take({L, C}), w1 = take({L, F, C}),
             w2 = take({L, C, F}), w3 = take({L, F, C}), norm = take({C});
  take({2 * freq});
  at::Tensor wcls = cfg.tie_word_embeddings ? embed : take({V, C});

  auto conv = [&](const at::Tensor& t) { return t.to(opts.device, opts.dtype, /*non_blocking=*/false, /*copy=*/true); };
  Weights w;
  w.embed = conv(embed);
  w.norm = conv(norm);
  w.lm_head = conv(wcls);
  for (int64_t i = 0; i < L; ++i) {
    LayerWeights l;
    l.input_norm = conv(att_norm[i]);
    l.q_proj = conv(permute_rotary_rows(wq[i], cfg.num_heads));
    l.k_proj = conv(permute_rotary_rows(wk[i], cfg.num_kv_heads));
    l.v_proj = conv(wv[i]);
    l.o_proj = conv(wo[i]);
    l.post_norm = conv(ffn_norm[i]);
    l.gate_proj = conv(w1[i]);
    l.down_proj = conv(w2[i]);
    l.up_proj = conv(w3[i]);
    w.layers.push_back(std::move(l));
  }
  return Model(cfg, std::move(w));
}

}  // namespace chatmill::model
