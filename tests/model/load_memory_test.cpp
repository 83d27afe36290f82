// Loading must not need two copies of the weights: peak RSS while loading a ~1 GB checkpoint stays under
// 1.3x its size (files are memory-mapped and each tensor's pages are dropped once copied).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "common/test_env.h"
#include "model/hf_checkpoint.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

// A field of /proc/self/status in bytes ("VmRSS", "VmHWM").
uint64_t proc_status_bytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
  return 0;
}

// Resets VmHWM to the current RSS (Linux >= 4.0).
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.close();
  return static_cast<bool>(out);
}

TEST(LoadMemory, PeakRssStaysUnder1_3xCheckpointSize) {
  model::LlamaConfig cfg;  // ~268M parameters: 1.07 GB in float32
  cfg.hidden_size = 1024;
  cfg.intermediate_size = 2816;
  cfg.num_layers = 16;
  cfg.num_heads = 16;
  cfg.num_kv_heads = 16;
  auto dir = testing::scratch("load_memory") / "model";
  {
    model::Weights w;
    for (auto& p : model::named_parameters(cfg, w)) *p.slot = at::full(p.shape, 0.5f);
    model::save_hf_model(model::Model(cfg, std::move(w)), dir, {at::kFloat, 400ull << 20, std::nullopt, false});
  }
  uint64_t file_bytes = 0;
  for (const auto& f : model::checkpoint_files(dir)) file_bytes += fs::file_size(f);
  ASSERT_GT(file_bytes, 1000ull << 20);
  ASSERT_GT(model::checkpoint_files(dir).size(), 1u);  // sharded, as big checkpoints are

  ASSERT_TRUE(reset_peak_rss()) << "cannot reset VmHWM through /proc/self/clear_refs";
  const uint64_t before = proc_status_bytes("VmRSS");
  model::Model m = model::load_hf_model(dir);
  const uint64_t peak = proc_status_bytes("VmHWM");
  const uint64_t after = proc_status_bytes("VmRSS");
  const double peak_ratio = static_cast<double>(peak - before) / file_bytes;
  const double held_ratio = static_cast<double>(after - before) / file_bytes;
  std::cout << "checkpoint " << file_bytes / 1e9 << " GB; RSS growth at peak " << (peak - before) / 1e9
            << " GB (" << peak_ratio << "x), after load " << (after - before) / 1e9 << " GB (" << held_ratio << "x)\n";
  EXPECT_LT(peak_ratio, 1.3);
  EXPECT_GT(held_ratio, 0.95);  // the weights really are in memory: the measurement saw the load
  EXPECT_EQ(m.weights.layers[15].down_proj.sum().item<double>(), 0.5 * 1024 * 2816);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace chatmill
