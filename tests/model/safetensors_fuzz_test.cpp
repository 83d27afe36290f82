// Random damage to a valid safetensors file: every mutant either opens, with every tensor inside the file, or
// fails with a chatmill::Error; never a crash, a foreign exception, or a view past the mapped bytes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "common/fuzz.h"
#include "common/test_env.h"
#include "common/text.h"
#include "model/safetensors.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

TEST(SafetensorsFuzz, DamagedFilesOpenOrFailCleanly) {
  const auto dir = testing::scratch("st_fuzz");
  model::write_safetensors(dir / "good.safetensors",
                           {{"a.weight", at::arange(12, at::kFloat).reshape({3, 4})},
                            {"b", at::ones({5}, at::kBFloat16)},
                            {"c.idx", at::arange(3, at::kLong)},
                            {"empty", at::zeros({0, 7}, at::kHalf)}});
  const std::string good = read_text_file(dir / "good.safetensors", "fuzz seed file");
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  const std::string alphabet = "{}[],:\"0123456789-eE.+ \\aFBIU_\x01\xff";
  std::mt19937_64 rng(1234);
  testing::FuzzTally t;
  const auto path = dir / "bad.safetensors";
  for (int i = 0; i < testing::fuzz_rounds(3000) && !t.foreign; ++i) {
    // The length prefix and the JSON header (the tensor bytes are any bytes).
    testing::try_mutant(testing::mutate(good, alphabet, 4, rng, 8 + header_len), path, i, t, [&] {
      auto r = model::SafetensorsReader::open(path);
      for (const auto& info : r.tensors()) {
        ASSERT_LE(info.begin, info.end) << info.name;
        const at::Tensor v = r.view(info);
        ASSERT_EQ(static_cast<uint64_t>(v.numel()) * v.element_size(), info.end - info.begin) << info.name;
        // Touch the first and last byte: a view past the mapping would fault here.
        if (v.numel() > 0) (void)v.flatten()[0].item<double>(), (void)v.flatten()[-1].item<double>();
      }
    });
  }
  EXPECT_GT(t.rejected, 1000);
  EXPECT_GT(t.opened, 0);  // some mutations are harmless (a space, a changed digit in a shape that still fits)
}

}  // namespace
}  // namespace chatmill
