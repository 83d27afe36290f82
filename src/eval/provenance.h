// What every evaluation result records about what produced it: the model (path and a hash of its weights),
// the benchmark files (paths and hashes), and the settings.
#pragma once
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

namespace chatmill::eval {

// sha256 over the model folder's safetensors files (sorted by name), or "in-memory" for weights not on disk.
std::string model_hash(const std::filesystem::path& model_dir);
// `model_sha256`: the folder's hash when already computed (hashing 13 GB takes a while), else it is computed.
nlohmann::ordered_json provenance(const std::filesystem::path& model_dir, const std::vector<std::filesystem::path>& files,
                                  const std::string& model_sha256 = "");

}  // namespace chatmill::eval
