// Hugging Face Llama folders: config.json + model.safetensors, or sharded
// model-0000i-of-0000n.safetensors + model.safetensors.index.json, plus tokenizer.model.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace chatmill::model {

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  bool stored_dtype = false;  // keep each tensor's dtype as the file has it (dtype is then ignored)
};

// Loads config and weights. Every file header is validated and every tensor name and shape checked against
// the config before any weight is read, so a bad folder raises chatmill::Error naming the file and tensor
// and never yields a half-loaded model. Files are memory-mapped and each tensor's pages are released once
// copied, so peak memory stays near one copy of the weights.
Model load_hf_model(const std::filesystem::path& dir, const LoadOptions& opts = {});

// Loads weights for `cfg` from a list of safetensors files (used by load_hf_model and by tests).
Weights load_weights(const LlamaConfig& cfg, const std::vector<std::filesystem::path>& files, const LoadOptions& opts);

// A model folder's name for people and APIs: the folder's own name, or for a checkpoint's ".../step-N/model"
// the step's ("step-N").
std::string model_folder_name(const std::filesystem::path& dir);

// The safetensors files of a folder, from its index when sharded.
std::vector<std::filesystem::path> checkpoint_files(const std::filesystem::path& dir);

struct SaveOptions {
  at::ScalarType dtype = at::kFloat;
  uint64_t max_shard_bytes = 5ull * 1000 * 1000 * 1000;  // transformers' default shard size
  std::optional<std::filesystem::path> tokenizer_model;  // copied as tokenizer.model
  bool overwrite = false;
};

// Writes a folder that transformers.AutoModelForCausalLM.from_pretrained loads unchanged. The folder is
// built under a temporary name and renamed into place.
void save_hf_model(const Model& m, const std::filesystem::path& dir, const SaveOptions& opts = {});

at::ScalarType parse_dtype(const std::string& name);  // "float32"/"fp32", "bfloat16"/"bf16", "float16"/"fp16"
std::string dtype_name(at::ScalarType t);             // the HF config spelling

}  // namespace chatmill::model
