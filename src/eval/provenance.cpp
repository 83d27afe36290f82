#include "eval/provenance.h"

#include <algorithm>

#include "common/sha256.h"
#include "model/hf_checkpoint.h"

namespace chatmill::eval {

namespace fs = std::filesystem;

std::string model_hash(const fs::path& dir) {
  if (dir.empty() || !fs::is_directory(dir)) return "in-memory";
  auto files = model::checkpoint_files(dir);
  std::sort(files.begin(), files.end());
  std::string all;
  for (const auto& f : files) all += sha256_file(f);
  return sha256_string(all);
}

nlohmann::ordered_json provenance(const fs::path& model_dir, const std::vector<fs::path>& files,
                                  const std::string& model_sha256) {
  nlohmann::ordered_json f = nlohmann::ordered_json::array();
  for (const auto& p : files) f.push_back({{"path", p.string()}, {"sha256", sha256_file(p)}});
  return {{"model", model_dir.string()}, {"model_sha256", model_sha256.empty() ? model_hash(model_dir) : model_sha256}, {"files", f}};
}

}  // namespace chatmill::eval
