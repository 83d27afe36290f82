// chatmill's Llama against HF transformers (tests/model/make_reference.py): logits, greedy generation,
// KV-cache decode and batching.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "common/error.h"
#include "common/test_env.h"
#include "model/generate.h"
#include "model/hf_checkpoint.h"

namespace chatmill {
namespace {

using testing::max_abs_diff;
using testing::read_all;
using testing::testdata;

struct GenerateRef {
  std::vector<std::vector<int64_t>> prompts, generated;
};

GenerateRef read_generate_ref(const std::string& name) {
  std::ifstream in(testdata() / "ref" / (name + "_generate.json"));
  auto j = nlohmann::json::parse(in);
  return {j["prompts"].get<std::vector<std::vector<int64_t>>>(), j["generated"].get<std::vector<std::vector<int64_t>>>()};
}

model::GenerationRequest greedy_request(const std::vector<int64_t>& prompt, int64_t n) {
  model::GenerationRequest r;
  r.prompt = prompt;
  r.max_new_tokens = n;
  r.stop_on_eos = false;  // the reference ran with eos ignored
  return r;
}

class HfParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParity, Float32LogitsMatchTransformers) {
  auto ref = read_all(testdata() / "ref" / (GetParam() + ".safetensors"));
  model::Model m = model::load_hf_model(testdata() / "models" / GetParam());
  at::Tensor logits = model::forward_logits(m, ref["input_ids"]);
  ASSERT_EQ(logits.sizes(), ref["logits"].sizes());
  const double diff = max_abs_diff(logits, ref["logits"]);
  std::cout << GetParam() << ": float32 logits max |chatmill - HF| = " << diff << "\n";
  EXPECT_LE(diff, 1e-4);
}

TEST_P(HfParity, Bfloat16LogitsCloseToTransformers) {
  // bf16 has 8 mantissa bits: both sides round differently inside matmuls, so the bound is relative.
  auto ref = read_all(testdata() / "ref" / (GetParam() + ".safetensors"));
  model::Model m = model::load_hf_model(testdata() / "models" / GetParam(), {at::kBFloat16, at::kCPU});
  at::Tensor logits = model::forward_logits(m, ref["input_ids"]);
  const double scale = ref["logits"].abs().max().item<double>();
  const double diff = max_abs_diff(logits, ref["logits_bf16"]);
  std::cout << GetParam() << ": bf16 logits max |chatmill - HF| = " << diff << " (max |logit| " << scale << ")\n";
  EXPECT_LE(diff, 0.01 * scale);
}

TEST_P(HfParity, Float16LogitsCloseToFloat32) {
  // No fp16 reference from HF on the CPU path; the float32 reference bounds fp16 rounding instead.
  auto ref = read_all(testdata() / "ref" / (GetParam() + ".safetensors"));
  model::Model m = model::load_hf_model(testdata() / "models" / GetParam(), {at::kHalf, at::kCPU});
  EXPECT_EQ(m.dtype(), at::kHalf);
  at::Tensor logits = model::forward_logits(m, ref["input_ids"]);
  const double scale = ref["logits"].abs().max().item<double>();
  const double diff = max_abs_diff(logits, ref["logits"]);
  std::cout << GetParam() << ": fp16 logits max |chatmill fp16 - HF fp32| = " << diff << " (max |logit| " << scale << ")\n";
  EXPECT_LE(diff, 0.01 * scale);
}

TEST_P(HfParity, GreedyGenerationMatchesTransformersAloneAndBatched) {
  model::Model m = model::load_hf_model(testdata() / "models" / GetParam());
  GenerateRef ref = read_generate_ref(GetParam());
  std::vector<model::GenerationRequest> batch;
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    auto alone = model::generate(m, {greedy_request(ref.prompts[i], 64)});
    EXPECT_EQ(alone[0].tokens, ref.generated[i]) << "prompt " << i << " run alone";
    batch.push_back(greedy_request(ref.prompts[i], 64));
  }
  // Prompts of lengths 5, 12, 1, 8 in one left-padded batch.
  auto batched = model::generate(m, batch);
  for (size_t i = 0; i < ref.prompts.size(); ++i) EXPECT_EQ(batched[i].tokens, ref.generated[i]) << "prompt " << i << " in batch";
}

TEST_P(HfParity, StaticDecodeStepGivesTheSameTokens) {
  // The fixed-shape step that CUDA graphs capture, run eagerly: same greedy tokens as HF, batched.
  model::Model m = model::load_hf_model(testdata() / "models" / GetParam());
  GenerateRef ref = read_generate_ref(GetParam());
  std::vector<model::GenerationRequest> batch;
  for (const auto& p : ref.prompts) batch.push_back(greedy_request(p, 64));
  model::GenerateOptions options;
  options.static_decode = true;
  model::GenerationStats stats;
  options.stats = &stats;
  auto out = model::generate(m, batch, options);
  for (size_t i = 0; i < ref.prompts.size(); ++i) EXPECT_EQ(out[i].tokens, ref.generated[i]) << "prompt " << i;
  EXPECT_EQ(stats.generated_tokens, 64 * static_cast<int64_t>(ref.prompts.size()));
  EXPECT_EQ(stats.prompt_tokens, 5 + 12 + 1 + 8);
  EXPECT_GT(stats.decode_seconds, 0.0);
}

TEST_P(HfParity, KvCacheDecodeEqualsFullForward) {
  model::Model m = model::load_hf_model(testdata() / "models" / GetParam());
  auto ref = read_all(testdata() / "ref" / (GetParam() + ".safetensors"));
  at::Tensor tokens = ref["input_ids"];  // (3, 17)
  const int64_t B = tokens.size(0), T = tokens.size(1);
  at::Tensor full = model::forward_logits(m, tokens);

  // Prefill 6 positions, then a chunk of 4, then one token at a time.
  model::KVCache cache = model::KVCache::allocate(m.config, B, T, at::kFloat, at::kCPU);
  std::vector<at::Tensor> parts;
  int64_t pos = 0;
  for (int64_t chunk : {6, 4, 1, 1, 1, 1, 1, 1, 1}) {
    at::Tensor ids = tokens.narrow(1, pos, chunk);
    at::Tensor positions = at::arange(pos, pos + chunk, at::kLong).unsqueeze(0).expand({B, chunk});
    parts.push_back(model::lm_logits(m, model::forward_hidden(m, ids, positions, &cache)));
    pos += chunk;
  }
  ASSERT_EQ(pos, T);
  ASSERT_EQ(cache.length, T);
  const double diff = max_abs_diff(at::cat(parts, 1), full);
  std::cout << GetParam() << ": cached decode vs full forward max diff = " << diff << "\n";
  EXPECT_LE(diff, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Models, HfParity, ::testing::Values("mha_untied", "gqa_tied", "gqa_sharded"));

TEST(Generate, CacheOverflowIsAnError) {
  model::Model m = model::load_hf_model(testdata() / "models" / "mha_untied");
  model::KVCache cache = model::KVCache::allocate(m.config, 1, 4, at::kFloat, at::kCPU);
  at::Tensor ids = at::ones({1, 5}, at::kLong);
  at::Tensor positions = at::arange(5, at::kLong).unsqueeze(0);
  testing::expect_error([&] { model::forward_hidden(m, ids, positions, &cache); }, {"KV cache overflow", "capacity of 4"});
}

}  // namespace
}  // namespace chatmill
