// Random damage to a token store (flipped bits, mostly in the metadata at the front; sometimes a truncation):
// every mutant opens and reads, or fails with a chatmill::Error naming the file. Stores of the HDF5 1.6 layout
// with variable-length strings made HDF5 1.10 divide by zero or crash in its global heap within ~2000 mutants;
// the 1.8 layout's checksums, fixed-length strings and Fletcher-32 chunks turn that damage into errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "common/fuzz.h"
#include "common/test_env.h"
#include "common/text.h"
#include "data/tokenize.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

TEST(TokenStoreFuzz, DamagedStoresOpenOrFailCleanly) {
  const fs::path dir = testing::scratch("store_fuzz");
  data::TokenizeConfig cfg;
  cfg.inputs = {(testing::source_dir() / "data" / "sample" / "lmsys_chat_sample.jsonl").string()};
  cfg.tokenizer = (testing::source_dir() / "data" / "sample" / "tokenizer.model").string();
  cfg.max_length = 256;
  cfg.packing = "packed";
  cfg.output = (dir / "good.h5").string();
  data::tokenize_dataset(cfg);
  const std::string good = read_text_file(cfg.output, "fuzz seed file");
  std::mt19937_64 rng(5);
  testing::FuzzTally t;
  const fs::path path = dir / "bad.h5";
  for (int i = 0; i < testing::fuzz_rounds(300) && !t.foreign; ++i) {
    std::string bad = good;
    const size_t span = rng() % 2 ? std::min<size_t>(4096, bad.size()) : bad.size();
    for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k)
      bad[rng() % span] ^= static_cast<char>(1 << (rng() % 8));
    if (rng() % 8 == 0) bad.resize(rng() % bad.size());
    testing::try_mutant(bad, path, i, t, [&] {
      auto s = data::TokenStore::open(path);
      std::vector<int64_t> all(s.num_rows());
      for (int64_t r = 0; r < s.num_rows(); ++r) all[r] = r;
      if (!all.empty()) s.rows(all);
      for (int64_t k = 0; k < std::min<int64_t>(s.num_samples(), 40); ++k) s.sample(k);
    });
  }
  EXPECT_GT(t.rejected, 200);
  EXPECT_GT(t.opened, 0);  // flips in unused bytes
}

}  // namespace
}  // namespace chatmill
