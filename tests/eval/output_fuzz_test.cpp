// What models and judges write is arbitrary text: the parsers of moderation verdicts and MT-Bench ratings and
// verdicts return "unparsed" on any of it, never throw (a huge number in "[[...]]" made stoi/stod throw and
// ended the whole evaluation).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/moderation.h"
#include "eval/mt_bench_data.h"

namespace chatmill {
namespace {

TEST(ModelOutputFuzz, ParsersNeverThrow) {
  const std::vector<std::string> pieces = {"[[", "]]", "[", "]", "1", "9", "0", ".", " ", "\n", "hate", "None",
                                           "violence/graphic", "A", "B", "C", "tie", "Rating:", "99999999999999999999",
                                           std::string(400, '9'), "e", "-", "\xc3\xa9", "\xff"};
  std::mt19937_64 rng(9);
  for (int i = 0; i < 5000; ++i) {
    std::string text;
    for (int k = static_cast<int>(rng() % 12); k >= 0; --k) text += pieces[rng() % pieces.size()];
    try {
      const double r = eval::parse_rating(text);
      EXPECT_TRUE(r == -1 || (r >= 0 && std::isfinite(r))) << text;
      const char v = eval::parse_verdict(text);
      EXPECT_TRUE(v == 'A' || v == 'B' || v == 'C' || v == '?') << text << " -> " << int(v);
      (void)eval::parse_moderation_output(text);
    } catch (const std::exception& e) {
      FAIL() << "threw on " << text << ": " << e.what();
    }
  }
  EXPECT_EQ(eval::parse_rating("Rating: [[" + std::string(400, '9') + "]]"), -1);
  EXPECT_EQ(eval::parse_rating("Rating: [[7.5]]"), 7.5);
  // Not a category number: the name decides.
  EXPECT_EQ(eval::parse_moderation_output("[[99999999999999. hate]]").categories,
            eval::parse_moderation_output("[[hate]]").categories);
  EXPECT_FALSE(eval::parse_moderation_output("[[hate]]").categories.empty());
}

}  // namespace
}  // namespace chatmill
