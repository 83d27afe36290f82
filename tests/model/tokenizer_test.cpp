// The Llama-2 tokenizer against sentencepiece (Python) and transformers (tests/model/tokenizer_reference.py).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>

#include "common/error.h"
#include "common/test_env.h"
#include "model/tokenizer.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

fs::path llama2_tokenizer() { return testing::shared_data() / "tokenizer" / "llama2-tokenizer.model"; }

TEST(Tokenizer, MatchesSentencepieceAndTransformersOnTheRealLlama2Tokenizer) {
  if (!fs::exists(llama2_tokenizer())) GTEST_SKIP() << llama2_tokenizer() << " is not there (../shared/data)";
  std::ifstream in(testing::testdata() / "ref" / "tokenizer_cases.json");
  ASSERT_TRUE(in) << "reference cases missing: the reference_tokenizer fixture did not run";
  auto j = nlohmann::json::parse(in);
  auto tok = model::Tokenizer::load(llama2_tokenizer());
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.vocab_size(), 32000);
  int compared_hf = 0, n = 0;
  for (const auto& c : j["cases"]) {
    const std::string text = c["text"];
    auto ids = tok.encode(text, /*add_bos=*/true);
    EXPECT_EQ(ids, c["sp_ids"].get<std::vector<int64_t>>()) << "text: " << nlohmann::json(text).dump();
    if (!c["hf_ids"].is_null()) {
      EXPECT_EQ(ids, c["hf_ids"].get<std::vector<int64_t>>()) << "text: " << nlohmann::json(text).dump();
      ++compared_hf;
    }
    EXPECT_EQ(tok.decode(ids), c["sp_decoded"].get<std::string>()) << "text: " << nlohmann::json(text).dump();
    ++n;
  }
  EXPECT_GE(n, 200);
  EXPECT_GE(compared_hf, 200);
}

TEST(Tokenizer, SpecialTokensAreIdsNeverText) {
  if (!fs::exists(llama2_tokenizer())) GTEST_SKIP() << llama2_tokenizer() << " is not there (../shared/data)";
  auto tok = model::Tokenizer::load(llama2_tokenizer());
  auto ids = tok.encode("<s>", false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.bos_id()), 0);  // "<s>" as text is "<", "s", ">"
  EXPECT_EQ(tok.encode("hi", false).front(), tok.encode("hi", true)[1]);
  EXPECT_EQ(tok.decode({tok.bos_id(), 6324, tok.eos_id()}), "Hi");
}

TEST(Tokenizer, ShippedSampleTokenizerRoundTrips) {
  auto tok = model::Tokenizer::load(testing::source_dir() / "data" / "sample" / "tokenizer.model");
  EXPECT_EQ(tok.vocab_size(), 512);
  for (std::string s : {"Once upon a time", "émoji 😀 and 日本", "  spaces\n\tand tabs", "x = 12345"})
    EXPECT_EQ(tok.decode(tok.encode(s, true)), s);
}

// The word cache must give SentencePiece's own ids: random texts mixing words, runs of spaces, newlines,
// tabs and unicode, encoded twice (cold and warm cache) and compared with whole-text encoding.
void check_word_cache(const model::Tokenizer& tok) {
  ASSERT_TRUE(tok.word_cache_enabled()) << tok.path();
  const std::vector<std::string> atoms = {"the", "mill", "River", "x=1;", "12345", "3.14", "日本語", "😀", "é", "naïve",
                                          "don't", "(a)", "--", "\n", "\t", "\r\n", ".", ",", "ASSISTANT:", "[INST]"};
  const std::vector<std::string> gaps = {" ", " ", " ", "  ", "   ", "", "\n", " \n ", "\t", "    "};
  std::mt19937 rng(5);
  for (int round = 0; round < 2; ++round) {
    std::mt19937 r(11);
    for (int i = 0; i < 3000; ++i) {
      std::string text = (r() % 4 == 0) ? gaps[r() % gaps.size()] : "";  // texts also end in every gap
      const int words = 1 + r() % 12;
      for (int w = 0; w < words; ++w) text += atoms[r() % atoms.size()] + gaps[r() % gaps.size()];
      ASSERT_EQ(tok.encode(text, false), tok.encode_uncached(text, false)) << nlohmann::json(text).dump();
    }
  }
  EXPECT_EQ(tok.encode("", true), std::vector<int64_t>{tok.bos_id()});
}

TEST(Tokenizer, WordCacheGivesSentencepiecesIds) {
  check_word_cache(model::Tokenizer::load(testing::source_dir() / "data" / "sample" / "tokenizer.model"));
  if (fs::exists(llama2_tokenizer())) check_word_cache(model::Tokenizer::load(llama2_tokenizer()));
}

TEST(Tokenizer, ClearErrors) {
  auto dir = testing::scratch("tokenizer_errors");
  testing::expect_error([&] { model::Tokenizer::load(dir / "missing.model"); }, {"missing.model", "does not exist"});
  std::ofstream(dir / "garbage.model") << "this is not a protobuf";
  testing::expect_error([&] { model::Tokenizer::load(dir / "garbage.model"); }, {"garbage.model", "as a SentencePiece model"});
  testing::expect_error([&] { model::resolve_tokenizer(dir, std::nullopt); }, {"no tokenizer.model", "--tokenizer"});
  auto tok = model::Tokenizer::load(testing::source_dir() / "data" / "sample" / "tokenizer.model");
  EXPECT_THROW(tok.decode({5, 99999}), Error);
}

}  // namespace
}  // namespace chatmill
