// Llama configs: presets, config.json parsing in both transformers spellings, and bad values.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/test_env.h"
#include "model/config.h"

namespace chatmill {
namespace {

using testing::error_of;

nlohmann::json llama2_7b_json() {
  // Meta's Llama-2-7b-hf config.json (transformers 4.x spelling).
  return nlohmann::json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 4096,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "tie_word_embeddings": false,
    "torch_dtype": "float16", "transformers_version": "4.31.0.dev0", "use_cache": true, "vocab_size": 32000})");
}

TEST(Config, PresetsHaveMetasParameterCounts) {
  EXPECT_EQ(model::llama2_7b().num_parameters(), 6738415616);
  EXPECT_EQ(model::llama2_13b().num_parameters(), 13015864320);
  EXPECT_EQ(model::llama2_70b().num_parameters(), 68976648192);
  EXPECT_EQ(model::llama2_70b().kv_groups(), 8);
  for (auto c : {model::llama2_7b(), model::llama2_13b(), model::llama2_70b(), model::llama2_debug(), model::llama2_tiny()})
    EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(model::preset_by_name("13b").hidden_size, 5120);
  EXPECT_NE(error_of([] { model::preset_by_name("8b"); }).find("unknown model preset '8b'"), std::string::npos);
}

TEST(Config, ReadsMetasLlama2Config) {
  auto c = model::config_from_hf_json(llama2_7b_json(), "config.json");
  auto p = model::llama2_7b();
  EXPECT_EQ(c.num_parameters(), p.num_parameters());
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(Config, ReadsTransformers5RopeParametersAndEosLists) {
  auto j = llama2_7b_json();
  j["rope_parameters"] = {{"rope_theta", 500000.0}, {"rope_type", "default"}};
  j["eos_token_id"] = {2, 7};
  j["num_key_value_heads"] = 8;
  auto c = model::config_from_hf_json(j, "config.json");
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(c.kv_groups(), 4);
  // num_key_value_heads absent means multi-head attention.
  j.erase("num_key_value_heads");
  EXPECT_EQ(model::config_from_hf_json(j, "config.json").num_kv_heads, 32);
}

TEST(Config, ToJsonRoundTrips) {
  auto c = model::llama2_70b();
  c.rope_theta = 12345.0;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  auto back = model::config_from_hf_json(model::config_to_hf_json(c, "bfloat16"), "x");
  EXPECT_EQ(back.num_parameters(), c.num_parameters());
  EXPECT_EQ(back.rope_theta, 12345.0);
  EXPECT_EQ(back.rms_norm_eps, 1e-6);
  EXPECT_TRUE(back.tie_word_embeddings);
  EXPECT_EQ(back.num_kv_heads, 8);
}

TEST(Config, HeadsMustDivideHiddenSize) {
  auto j = llama2_7b_json();
  j["num_attention_heads"] = 30;
  j["num_key_value_heads"] = 30;
  std::string e = error_of([&] { model::config_from_hf_json(j, "dir/config.json"); });
  EXPECT_NE(e.find("hidden_size (4096) must be divisible by num_attention_heads (30)"), std::string::npos) << e;
  EXPECT_NE(e.find("dir/config.json"), std::string::npos) << e;
}

TEST(Config, KvHeadsMustDivideHeads) {
  auto c = model::llama2_7b();
  c.num_kv_heads = 5;
  std::string e = error_of([&] { c.validate(); });
  EXPECT_NE(e.find("num_attention_heads (32) must be divisible by num_key_value_heads (5)"), std::string::npos) << e;
}

TEST(Config, UnknownActivationIsRejected) {
  auto j = llama2_7b_json();
  j["hidden_act"] = "gelu";
  std::string e = error_of([&] { model::config_from_hf_json(j, "config.json"); });
  EXPECT_NE(e.find("hidden_act is 'gelu'"), std::string::npos) << e;
}

TEST(Config, AllProblemsAreReportedTogether) {
  auto j = llama2_7b_json();
  j.erase("hidden_size");
  j["vocab_size"] = "big";
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  j["attention_bias"] = true;
  std::string e = error_of([&] { model::config_from_hf_json(j, "config.json"); });
  EXPECT_NE(e.find("missing field 'hidden_size'"), std::string::npos) << e;
  EXPECT_NE(e.find("field 'vocab_size' has the wrong type"), std::string::npos) << e;
  EXPECT_NE(e.find("rope_scaling.rope_type is 'linear'"), std::string::npos) << e;
  EXPECT_NE(e.find("attention_bias is true"), std::string::npos) << e;
}

TEST(Config, OtherModelTypesAndBadValues) {
  auto j = llama2_7b_json();
  j["model_type"] = "mistral";
  EXPECT_NE(error_of([&] { model::config_from_hf_json(j, "c"); }).find("model_type is 'mistral'"), std::string::npos);
  j = llama2_7b_json();
  j["rms_norm_eps"] = -1;
  EXPECT_NE(error_of([&] { model::config_from_hf_json(j, "c"); }).find("rms_norm_eps must be > 0"), std::string::npos);
  j = llama2_7b_json();
  j["eos_token_id"] = 40000;
  EXPECT_NE(error_of([&] { model::config_from_hf_json(j, "c"); }).find("eos_token_id (40000) is outside"), std::string::npos);
  EXPECT_NE(error_of([&] { model::config_from_hf_json(nlohmann::json::array(), "c"); }).find("JSON object"), std::string::npos);
  j = llama2_7b_json();
  j["rope_parameters"] = {{"rope_type", 5}, {"rope_theta", 10000.0}};  // nlohmann's value() threw type_error here
  EXPECT_NE(error_of([&] { model::config_from_hf_json(j, "c"); }).find("rope_parameters.rope_type must be a string"),
            std::string::npos);
}

}  // namespace
}  // namespace chatmill
