// Random damage to the shipped YAML configs (training recipe, subset build, eval sweep): each mutant loads or
// fails with a chatmill::Error naming the file; never a yaml-cpp or JSON exception that aborts the CLI.
#include <gtest/gtest.h>


#include "common/error.h"
#include "common/fuzz.h"
#include "common/test_env.h"
#include "common/text.h"
#include "data/subsets/build.h"
#include "eval/suite.h"
#include "train/config.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

const std::string kYamlBytes = ":-[]{},#&*!|>'\"%@` \n\t0123456789.eE?abxyz\\";

void fuzz(const std::string& name, const fs::path& source, const std::function<void(const fs::path&)>& load,
          int rounds) {
  const std::string good = read_text_file(testing::source_dir() / source, "fuzz seed file");
  ASSERT_FALSE(good.empty()) << source;
  const fs::path file = testing::scratch("config_fuzz_" + name) / source.filename();
  std::mt19937_64 rng(std::hash<std::string>{}(name));
  testing::FuzzTally t;
  for (int i = 0; i < testing::fuzz_rounds(rounds) && !t.foreign; ++i) {
    const std::string bad = testing::mutate(good, kYamlBytes, 3, rng);
    testing::try_mutant(bad, file, i, t, [&] { load(file); });
    if (t.foreign) ADD_FAILURE() << name << ", the file:\n" << bad;
  }
  EXPECT_GT(t.rejected, rounds / 10) << name;
}

TEST(ConfigFuzz, TrainRecipe) {
  fuzz("train", "configs/train/sample_tiny.yaml", [](const fs::path& f) { train::TrainConfig::load(f); }, 1500);
}

TEST(ConfigFuzz, SubsetBuild) {
  fuzz("subsets", "configs/data/sample_subsets.yaml", [](const fs::path& f) { data::parse_build_config(f, {}); }, 1500);
}

TEST(ConfigFuzz, EvalSweep) {
  fuzz("eval", "configs/eval/sample.yaml", [](const fs::path& f) { eval::load_sweep_config(f.string()); }, 1500);
}

}  // namespace
}  // namespace chatmill
