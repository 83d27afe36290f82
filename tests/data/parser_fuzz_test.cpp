// Random damage to valid inputs of the text parsers that face the outside world: an LMSYS-Chat-1M record and an
// OpenAI request body. Every mutant is accepted or rejected through the parser's own error channel; none
// throws, crashes, or is accepted with a field the validation promises (roles alternate, ids non-empty).
#include <gtest/gtest.h>

#include <fstream>

#include "common/fuzz.h"
#include "common/test_env.h"
#include "data/lmsys_reader.h"
#include "serve/openai_api.h"

namespace chatmill {
namespace {

const std::string kJsonBytes = "{}[],:\"0123456789-eE.+ \\utrfaln_\x01\xc3\xff";

TEST(ParserFuzz, LmsysRecords) {
  std::ifstream in(testing::source_dir() / "data" / "sample" / "lmsys_chat_sample.jsonl");
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l) && lines.size() < 8;) lines.push_back(l);
  ASSERT_FALSE(lines.empty());
  std::mt19937_64 rng(7);
  int ok = 0, bad = 0;
  for (int i = 0; i < testing::fuzz_rounds(4000); ++i) {
    std::string line = testing::mutate(lines[i % lines.size()], kJsonBytes, 4, rng);
    data::Conversation c;
    data::RecordError err;
    bool accepted = false;
    try {
      accepted = data::parse_lmsys_line(line, c, err);
    } catch (const std::exception& e) {
      FAIL() << "mutant " << i << " threw instead of returning an error: " << e.what();
    }
    if (!accepted) {
      EXPECT_FALSE(err.reason.empty() || err.message.empty()) << "mutant " << i << " rejected without a reason";
      ++bad;
      continue;
    }
    ++ok;
    EXPECT_FALSE(c.messages.empty()) << "mutant " << i;
    for (size_t m = 0; m < c.messages.size(); ++m)
      EXPECT_EQ(c.messages[m].role, m % 2 == 0 ? data::Role::User : data::Role::Assistant) << "mutant " << i;
  }
  EXPECT_GT(bad, 2000);
  EXPECT_GT(ok, 0);
}

TEST(ParserFuzz, OpenAiRequests) {
  const std::vector<std::pair<std::string, bool>> good = {
      {R"({"model": "tiny", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},)"
       R"( {"role": "assistant", "content": "Hello"}, {"role": "user", "content": [{"type": "text", "text": "More"}]}],)"
       R"( "max_tokens": 12, "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["\n\n", "END"], "stream": true,)"
       R"( "stream_options": {"include_usage": true}})", true},
      {R"({"model": "tiny", "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0, "stop": "x", "n": 1})", false},
      {R"({"model": "tiny", "prompt": [1, 15043, 29892], "max_tokens": 3, "top_k": 40})", false},
  };
  std::mt19937_64 rng(11);
  int ok = 0, bad = 0;
  for (int i = 0; i < testing::fuzz_rounds(6000); ++i) {
    const auto& [body, chat] = good[i % good.size()];
    const std::string mutant = testing::mutate(body, kJsonBytes, 4, rng);
    serve::ParsedRequest p;
    std::optional<serve::ApiError> e;
    try {
      e = serve::parse_request(mutant, chat, p);
    } catch (const std::exception& ex) {
      FAIL() << "mutant " << i << " threw instead of returning an API error: " << ex.what() << "\n" << mutant;
    }
    if (e) {
      EXPECT_TRUE(e->status == 400 || e->status == 404) << mutant;
      EXPECT_FALSE(e->message.empty()) << mutant;
      ++bad;
      continue;
    }
    ++ok;
    EXPECT_FALSE(p.model.empty()) << mutant;
    EXPECT_TRUE(!p.max_tokens || *p.max_tokens >= 0) << mutant;
    if (chat) EXPECT_FALSE(p.conversation.messages.empty()) << mutant;
  }
  EXPECT_GT(bad, 2000);
  EXPECT_GT(ok, 0);
  // Fields of another type, which byte edits rarely make: each a 400, none an exception.
  for (const char* body : {R"({"model": "m", "messages": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]})",
                           R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream_options": 1})",
                           R"({"model": "m", "messages": [{"role": "user", "content": "x"}],)"
                           R"( "stream_options": {"include_usage": "yes"}})"}) {
    serve::ParsedRequest p;
    const auto e = serve::parse_request(body, true, p);
    EXPECT_TRUE(e && e->status == 400) << body;
  }
}

}  // namespace
}  // namespace chatmill
