// llama2.c import: the real stories260K checkpoint, converted to HF layout, against a float64 reference
// computed in Meta's interleaved-rotary layout (tests/model/llama2c_reference.py).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "common/test_env.h"
#include "model/hf_checkpoint.h"
#include "model/llama2c.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

fs::path stories() { return testing::shared_data() / "models" / "stories260K" / "stories260K.bin"; }

TEST(Llama2c, Stories260KLogitsMatchMetaLayoutReference) {
  if (!fs::exists(stories())) GTEST_SKIP() << stories() << " is not there (../shared/data)";
  auto ref = testing::read_all(testing::testdata() / "ref" / "stories260K.safetensors");
  model::Model m = model::load_llama2c(stories());
  EXPECT_EQ(m.config.hidden_size, 64);
  EXPECT_EQ(m.config.num_kv_heads, 4);
  EXPECT_TRUE(m.config.tie_word_embeddings);
  at::Tensor logits = model::forward_logits(m, ref["tokens"]);
  const double diff = testing::max_abs_diff(logits, ref["logits"]);
  std::cout << "stories260K: max |chatmill - reference| = " << diff << "\n";
  EXPECT_LE(diff, 1e-4);

  // Through an HF folder and back: the same logits.
  auto dir = testing::scratch("llama2c_export") / "stories260K";
  model::save_hf_model(m, dir);
  EXPECT_LE(testing::max_abs_diff(model::forward_logits(model::load_hf_model(dir), ref["tokens"]), ref["logits"]), 1e-4);
}

TEST(Llama2c, PermutationMovesInterleavedPairsToHalves) {
  // One head, D = 4: Meta rows (r0, r1, r2, r3) rotate pairs (r0, r1), (r2, r3); HF wants (r0, r2, r1, r3).
  at::Tensor w = at::arange(8, at::kFloat).view({4, 2});
  at::Tensor p = model::permute_rotary_rows(w, 1);
  EXPECT_TRUE(at::equal(p, at::stack({w[0], w[2], w[1], w[3]})));
}

TEST(Llama2c, RejectsFilesThatDoNotMatchTheirHeader) {
  auto dir = testing::scratch("llama2c_bad");
  std::ofstream(dir / "short.bin") << "abc";
  testing::expect_error([&] { model::load_llama2c(dir / "short.bin"); }, {"short.bin", "truncated"});
  int32_t header[7] = {64, 172, 5, 8, 4, 512, 512};
  std::ofstream out(dir / "cut.bin", std::ios::binary);
  out.write(reinterpret_cast<const char*>(header), sizeof header);
  out << std::string(1000, '\0');
  out.close();
  testing::expect_error([&] { model::load_llama2c(dir / "cut.bin"); }, {"cut.bin", "implies", "legacy float32"});
}

}  // namespace
}  // namespace chatmill
