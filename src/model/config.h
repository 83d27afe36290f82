// Llama-2 architecture hyper-parameters, as in a Hugging Face config.json.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace chatmill::model {

enum class Activation { SiLU };

struct LlamaConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;        // C
  int64_t intermediate_size = 11008; // F
  int64_t num_layers = 32;           // L
  int64_t num_heads = 32;            // H
  int64_t num_kv_heads = 32;         // Hkv (< H: grouped-query attention)
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  Activation hidden_act = Activation::SiLU;
  int64_t bos_token_id = 1;
  std::vector<int64_t> eos_token_ids = {2};
  std::optional<int64_t> pad_token_id;

  // Derived, valid after validate().
  int64_t head_dim() const { return hidden_size / num_heads; }  // D
  int64_t kv_groups() const { return num_heads / num_kv_heads; }
  int64_t num_parameters() const;

  // Throws chatmill::Error listing every problem, each naming the field, its value and the fix.
  void validate() const;
};

// Presets (the sizes of Meta's released models, and a tiny one for tests and demos).
LlamaConfig llama2_7b();
LlamaConfig llama2_13b();
LlamaConfig llama2_70b();
LlamaConfig llama2_debug();  // ~250K parameters, GQA
LlamaConfig llama2_tiny();   // ~20M parameters, Llama-2 vocabulary: benchmarks
// Looks a preset up by its command-line name ("7b", "13b", "70b", "debug", "tiny").
LlamaConfig preset_by_name(const std::string& name);

// Reads config.json of a Hugging Face Llama folder; `source` names the file in errors.
LlamaConfig config_from_hf_json(const nlohmann::json& j, const std::string& source);
LlamaConfig load_hf_config(const std::filesystem::path& config_json);
// The config.json transformers writes for LlamaForCausalLM; `dtype` is "float32", "bfloat16" or "float16".
nlohmann::json config_to_hf_json(const LlamaConfig& cfg, const std::string& dtype);

}  // namespace chatmill::model
