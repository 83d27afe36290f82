// StreamingText: decoded a few ids at a time, its text adds up to SentencePiece's decode of the whole
// sequence (the 310 reference strings of the real Llama-2 tokenizer: unicode, emoji, whitespace runs, code;
// and random id sequences full of byte-fallback pieces), never rewrites what it gave, and stops before the
// earliest stop string, wherever the string falls across ids.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>

#include "common/test_env.h"
#include "model/streaming_text.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

// Feeds `ids` one by one; checks that each step only appends; returns the text after flush().
std::string stream(const model::Tokenizer& tok, const std::vector<int64_t>& ids, const std::vector<std::string>& stops,
                   bool* stopped = nullptr) {
  model::StreamingText st(tok, stops);
  std::string last;
  bool stop = false;
  for (int64_t id : ids) {
    stop = st.add(id);  // a stop cuts the text before it; until then the text only grows
    if (!stop) EXPECT_EQ(st.text().compare(0, last.size(), last), 0) << "the text was rewritten";
    last = st.text();
    if (stop) break;
  }
  if (!stop) stop = st.flush();
  if (stopped) *stopped = stop;
  return st.text();
}

void expect_adds_up(const model::Tokenizer& tok, const std::vector<int64_t>& ids) {
  EXPECT_EQ(stream(tok, ids, {}), tok.decode(ids)) << "ids: " << nlohmann::json(ids).dump();
}

TEST(StreamingText, AddsUpToTheWholeDecodeOnTheRealLlama2Tokenizer) {
  const fs::path model = testing::shared_data() / "tokenizer" / "llama2-tokenizer.model";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is not there (../shared/data)";
  std::ifstream in(testing::testdata() / "ref" / "tokenizer_cases.json");
  ASSERT_TRUE(in) << "reference cases missing: the reference_tokenizer fixture did not run";
  auto tok = model::Tokenizer::load(model);
  int n = 0;
  const auto ref = nlohmann::json::parse(in);
  for (const auto& c : ref["cases"]) {
    auto ids = c["sp_ids"].get<std::vector<int64_t>>();
    expect_adds_up(tok, ids);
    ids.erase(ids.begin());  // without bos: the first piece's leading space rule applies to a real piece
    expect_adds_up(tok, ids);
    ++n;
  }
  EXPECT_GE(n, 200);
  // Random ids, a third of them byte-fallback pieces (<0x00>..<0xFF> are ids 3..258): split characters,
  // invalid sequences, and eos in the middle.
  std::mt19937 rng(5);
  for (int t = 0; t < 300; ++t) {
    std::vector<int64_t> ids;
    for (int i = 0; i < 40; ++i) {
      const int kind = static_cast<int>(rng() % 3);
      ids.push_back(kind == 0 ? 3 + rng() % 256 : kind == 1 ? 2 + rng() % 2 : 259 + rng() % (32000 - 259));
    }
    expect_adds_up(tok, ids);
  }
}

TEST(StreamingText, AddsUpOnTheSampleTokenizer) {
  auto tok = model::Tokenizer::load(testing::source_dir() / "data" / "sample" / "tokenizer.model");
  for (const std::string s : {"Hello, world! Ça va? 你好 🙂 emoji\n\n  spaced   out\tcode: x = f(1);", "  leading", ""})
    expect_adds_up(tok, tok.encode(s, true));
  std::mt19937 rng(6);
  for (int t = 0; t < 200; ++t) {
    std::vector<int64_t> ids;
    for (int i = 0; i < 30; ++i) ids.push_back(static_cast<int64_t>(rng() % tok.vocab_size()));
    expect_adds_up(tok, ids);
  }
}

TEST(StreamingText, StopsBeforeTheEarliestStopStringWhereverItFalls) {
  auto tok = model::Tokenizer::load(testing::source_dir() / "data" / "sample" / "tokenizer.model");
  const std::string text = "The answer is 42. USER: more text ### end";
  const auto ids = tok.encode(text, false);
  bool stopped = false;
  EXPECT_EQ(stream(tok, ids, {"###", "USER:"}, &stopped), "The answer is 42. ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(stream(tok, ids, {"42. U"}, &stopped), "The answer is ");  // across several ids
  EXPECT_TRUE(stopped);
  EXPECT_EQ(stream(tok, ids, {"end"}, &stopped), "The answer is 42. USER: more text ### ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(stream(tok, ids, {"absent", ""}, &stopped), tok.decode(ids));
  EXPECT_FALSE(stopped);
  // Ids after the stop are ignored.
  const std::vector<std::string> stops = {"is"};
  model::StreamingText st2(tok, stops);
  for (int64_t id : ids) st2.add(id);
  EXPECT_TRUE(st2.stopped());
  EXPECT_EQ(st2.text(), "The answer ");
  // A stop string that matches while a character is unfinished (its replacement character) stops there, as a
  // whole decode at that token would.
  const std::vector<std::string> fffd = {"\xEF\xBF\xBD"};
  model::StreamingText st3(tok, fffd);
  for (int64_t id : tok.encode("ok", false)) EXPECT_FALSE(st3.add(id));
  EXPECT_TRUE(st3.add(3 + 0xE2));  // the first of the 3 bytes of "€": a replacement character for now
  EXPECT_EQ(st3.text(), "ok");
  // Without that stop string the same bytes wait, then make the character.
  model::StreamingText st4(tok, stops);
  for (int64_t id : tok.encode("ok", false)) st4.add(id);
  EXPECT_FALSE(st4.add(3 + 0xE2));
  EXPECT_FALSE(st4.add(3 + 0x82));
  EXPECT_EQ(st4.text(), "ok");
  EXPECT_FALSE(st4.add(3 + 0xAC));
  EXPECT_EQ(st4.text(), "ok\xE2\x82\xAC");
}

}  // namespace
}  // namespace chatmill
