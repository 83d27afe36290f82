#include "model/config.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace chatmill::model {

int64_t LlamaConfig::num_parameters() const {
  const int64_t C = hidden_size, F = intermediate_size, D = head_dim();
  const int64_t attn = C * num_heads * D + 2 * C * num_kv_heads * D + num_heads * D * C;
  const int64_t mlp = 3 * C * F;
  const int64_t per_layer = attn + mlp + 2 * C;
  const int64_t embed = vocab_size * C * (tie_word_embeddings ? 1 : 2);
  return num_layers * per_layer + embed + C;
}

void LlamaConfig::validate() const {
  std::vector<std::string> errors;
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) errors.push_back(detail::concat(name, " must be positive, got ", v));
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_layers);
  positive("num_attention_heads", num_heads);
  positive("num_key_value_heads", num_kv_heads);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_heads > 0 && hidden_size % num_heads != 0)
    errors.push_back(detail::concat("hidden_size (", hidden_size, ") must be divisible by num_attention_heads (",
                                    num_heads, "); pick a head count that divides it"));
  if (num_heads > 0 && num_kv_heads > 0 && num_heads % num_kv_heads != 0)
    errors.push_back(detail::concat("num_attention_heads (", num_heads, ") must be divisible by num_key_value_heads (",
                                    num_kv_heads, ")"));
  if (num_heads > 0 && hidden_size % num_heads == 0 && head_dim() % 2 != 0)
    errors.push_back(detail::concat("head_dim (hidden_size / num_attention_heads = ", head_dim(),
                                    ") must be even for rotary embeddings"));
  if (!(rms_norm_eps > 0)) errors.push_back(detail::concat("rms_norm_eps must be > 0, got ", rms_norm_eps));
  if (!(rope_theta > 0)) errors.push_back(detail::concat("rope_theta must be > 0, got ", rope_theta));
  if (bos_token_id < 0 || bos_token_id >= vocab_size)
    errors.push_back(detail::concat("bos_token_id (", bos_token_id, ") is outside the vocabulary [0, ", vocab_size, ")"));
  for (int64_t e : eos_token_ids)
    if (e < 0 || e >= vocab_size)
      errors.push_back(detail::concat("eos_token_id (", e, ") is outside the vocabulary [0, ", vocab_size, ")"));
  if (errors.empty()) return;
  std::string msg = "invalid Llama config:";
  for (auto& e : errors) msg += "\n  - " + e;
  throw Error(msg);
}

LlamaConfig llama2_7b() { return LlamaConfig{}; }

LlamaConfig llama2_13b() {
  LlamaConfig c;
  c.hidden_size = 5120;
  c.intermediate_size = 13824;
  c.num_layers = 40;
  c.num_heads = 40;
  c.num_kv_heads = 40;
  return c;
}

LlamaConfig llama2_70b() {
  LlamaConfig c;
  c.hidden_size = 8192;
  c.intermediate_size = 28672;
  c.num_layers = 80;
  c.num_heads = 64;
  c.num_kv_heads = 8;
  return c;
}

LlamaConfig llama2_debug() {
  LlamaConfig c;
  c.vocab_size = 512;
  c.hidden_size = 64;
  c.intermediate_size = 172;
  c.num_layers = 4;
  c.num_heads = 8;
  c.num_kv_heads = 4;
  c.max_position_embeddings = 512;
  return c;
}

LlamaConfig llama2_tiny() {
  LlamaConfig c;  // stories15M's shape, untied, with the Llama-2 vocabulary
  c.hidden_size = 288;
  c.intermediate_size = 768;
  c.num_layers = 6;
  c.num_heads = 6;
  c.num_kv_heads = 6;
  c.max_position_embeddings = 1024;
  return c;
}

LlamaConfig preset_by_name(const std::string& name) {
  if (name == "7b" || name == "llama2-7b") return llama2_7b();
  if (name == "13b" || name == "llama2-13b") return llama2_13b();
  if (name == "70b" || name == "llama2-70b") return llama2_70b();
  if (name == "debug") return llama2_debug();
  if (name == "tiny") return llama2_tiny();
  CHATMILL_FAIL("unknown model preset '", name, "'; choose one of: 7b, 13b, 70b, debug, tiny");
}

namespace {

// Reads one field with a type check; errors are collected so a user sees them all at once.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}

  template <typename T>
  void get(const char* key, T& out, bool required) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (required) errors_.push_back(detail::concat("missing field '", key, "'"));
      return;
    }
    try {
      if constexpr (std::is_same_v<T, int64_t>) {
        if (!it->is_number_integer()) throw std::invalid_argument("not an integer");
      } else if constexpr (std::is_same_v<T, double>) {
        if (!it->is_number()) throw std::invalid_argument("not a number");
      } else if constexpr (std::is_same_v<T, bool>) {
        if (!it->is_boolean()) throw std::invalid_argument("not a boolean");
      } else if constexpr (std::is_same_v<T, std::string>) {
        if (!it->is_string()) throw std::invalid_argument("not a string");
      }
      out = it->get<T>();
    } catch (const std::exception&) {
      errors_.push_back(detail::concat("field '", key, "' has the wrong type: ", it->dump()));
    }
  }
  void error(std::string e) { errors_.push_back(std::move(e)); }
  void finish() const {
    if (errors_.empty()) return;
    std::string msg = detail::concat("bad model config ", source_, ":");
    for (auto& e : errors_) msg += "\n  - " + e;
    throw Error(msg);
  }

 private:
  const nlohmann::json& j_;
  std::string source_;
  std::vector<std::string> errors_;
};

}  // namespace

LlamaConfig config_from_hf_json(const nlohmann::json& j, const std::string& source) {
  CHATMILL_CHECK(j.is_object(), "bad model config ", source, ": expected a JSON object");
  LlamaConfig c;
  FieldReader r(j, source);
  std::string model_type = "llama";
  r.get("model_type", model_type, false);
  if (model_type != "llama")
    r.error(detail::concat("model_type is '", model_type, "'; chatmill runs Llama models (model_type \"llama\")"));
  r.get("vocab_size", c.vocab_size, true);
  r.get("hidden_size", c.hidden_size, true);
  r.get("intermediate_size", c.intermediate_size, true);
  r.get("num_hidden_layers", c.num_layers, true);
  r.get("num_attention_heads", c.num_heads, true);
  c.num_kv_heads = c.num_heads;  // HF default when the field is absent (Llama-2 7B/13B)
  r.get("num_key_value_heads", c.num_kv_heads, false);
  r.get("max_position_embeddings", c.max_position_embeddings, false);
  r.get("rms_norm_eps", c.rms_norm_eps, true);
  r.get("tie_word_embeddings", c.tie_word_embeddings, false);
  r.get("bos_token_id", c.bos_token_id, false);

  // transformers < 5 writes rope_theta at the top; 5.x writes rope_parameters {rope_theta, rope_type}.
  r.get("rope_theta", c.rope_theta, false);
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_object()) {
      r.error(detail::concat("field '", key, "' must be an object, got ", it->dump()));
      continue;
    }
    std::string type = "default";
    for (const char* name : {"type", "rope_type"}) {  // rope_type (transformers 4.45+) wins over the older type
      if (!it->contains(name) || (*it)[name].is_null()) continue;
      if ((*it)[name].is_string()) type = (*it)[name];
      else r.error(detail::concat(key, ".", name, " must be a string, got ", (*it)[name].dump()));
    }
    if (type != "default")
      r.error(detail::concat(key, ".rope_type is '", type,
                             "'; only unscaled rotary embeddings (\"default\", as in Llama-2) are supported"));
    if (it->contains("rope_theta")) {
      if ((*it)["rope_theta"].is_number()) c.rope_theta = (*it)["rope_theta"].get<double>();
      else r.error(detail::concat(key, ".rope_theta must be a number"));
    }
  }

  std::string act = "silu";
  r.get("hidden_act", act, false);
  if (act != "silu")
    r.error(detail::concat("hidden_act is '", act, "'; Llama uses \"silu\" (SwiGLU), the only one supported"));
  if (auto it = j.find("head_dim"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) {
      r.error("field 'head_dim' must be an integer");
    } else if (c.num_heads > 0 && it->get<int64_t>() * c.num_heads != c.hidden_size) {
      r.error(detail::concat("head_dim (", it->get<int64_t>(), ") * num_attention_heads (", c.num_heads,
                             ") != hidden_size (", c.hidden_size, "); only head_dim = hidden_size / heads is supported"));
    }
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    bool b = false;
    r.get(key, b, false);
    if (b) r.error(detail::concat(key, " is true; Llama-2 has no biases and chatmill does not support them"));
  }
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      c.eos_token_ids = {it->get<int64_t>()};
    } else if (it->is_array() && !it->empty() &&
               std::all_of(it->begin(), it->end(), [](const auto& v) { return v.is_number_integer(); })) {
      c.eos_token_ids = it->get<std::vector<int64_t>>();
    } else {
      r.error(detail::concat("field 'eos_token_id' must be an integer or a list of integers, got ", it->dump()));
    }
  }
  if (auto it = j.find("pad_token_id"); it != j.end() && !it->is_null()) {
    if (it->is_number_integer()) c.pad_token_id = it->get<int64_t>();
    else r.error("field 'pad_token_id' must be an integer or null");
  }
  r.finish();
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(detail::concat(e.what(), "\n  (in ", source, ")"));
  }
  return c;
}

LlamaConfig load_hf_config(const std::filesystem::path& config_json) {
  std::ifstream in(config_json);
  CHATMILL_CHECK(in, "cannot read ", config_json, ": a Hugging Face model folder needs a config.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    CHATMILL_FAIL("malformed JSON in ", config_json, ": ", e.what());
  }
  return config_from_hf_json(j, config_json.string());
}

nlohmann::json config_to_hf_json(const LlamaConfig& c, const std::string& dtype) {
  nlohmann::json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else j["eos_token_id"] = c.eos_token_ids;
  j["pad_token_id"] = c.pad_token_id ? nlohmann::json(*c.pad_token_id) : nlohmann::json(nullptr);
  j["head_dim"] = c.head_dim();
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["initializer_range"] = 0.02;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["mlp_bias"] = false;
  j["num_attention_heads"] = c.num_heads;
  j["num_hidden_layers"] = c.num_layers;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["pretraining_tp"] = 1;
  j["rms_norm_eps"] = c.rms_norm_eps;
  // Both spellings, so transformers 4.x (rope_theta) and 5.x (rope_parameters) read the same value.
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["rope_parameters"] = {{"rope_theta", c.rope_theta}, {"rope_type", "default"}};
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = dtype;
  j["dtype"] = dtype;
  j["use_cache"] = true;
  j["vocab_size"] = c.vocab_size;
  return j;
}

}  // namespace chatmill::model
