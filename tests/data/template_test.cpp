// Chat templates and loss masks: FastChat's renderings and transformers' ids (tests/data/template_reference.py),
// trained spans that decode to exactly the replies, and truncation that never cuts a user turn.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "common/test_env.h"
#include "data/conversation_source.h"
#include "data/encode.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;
using data::kIgnoreLabel;

fs::path sample_tokenizer() { return testing::source_dir() / "data" / "sample" / "tokenizer.model"; }
fs::path llama2_tokenizer() { return testing::shared_data() / "tokenizer" / "llama2-tokenizer.model"; }

data::Conversation conversation(const std::vector<std::string>& texts) {
  data::Conversation c;
  for (size_t i = 0; i < texts.size(); ++i) c.messages.push_back({i % 2 ? data::Role::Assistant : data::Role::User, texts[i]});
  c.turn = static_cast<int64_t>((texts.size() + 1) / 2);
  return c;
}

std::vector<data::Conversation> sample_conversations() {
  std::vector<data::Conversation> out;
  data::ReadReport r;
  data::read_conversations({testing::source_dir() / "data" / "sample" / "lmsys_chat_sample.jsonl",
                            testing::source_dir() / "data" / "sample" / "sharegpt_sample.json"},
                           data::OnBadRecord::Fail, r, [&](data::Conversation&& c) { out.push_back(std::move(c)); });
  return out;
}

TEST(ChatTemplate, MatchesFastChatRenderingAndTransformersIdsAndLabels) {
  const fs::path ref = testing::testdata() / "ref" / "template_cases.json";
  if (!fs::exists(llama2_tokenizer())) GTEST_SKIP() << llama2_tokenizer() << " is not there (../shared/data)";
  std::ifstream in(ref);
  ASSERT_TRUE(in) << ref << " missing: the reference_templates fixture did not run";
  auto j = nlohmann::json::parse(in);
  auto tok = model::Tokenizer::load(llama2_tokenizer());
  data::SegmentEncoder enc(tok);
  int n = 0;
  for (const auto& c : j["cases"]) {
    auto tmpl = data::ChatTemplate::by_name(c["template"]);
    if (!c["system"].is_null()) tmpl.system = c["system"].get<std::string>();
    auto conv = conversation(c["messages"].get<std::vector<std::string>>());
    const auto segments = tmpl.training_segments(conv);
    ASSERT_EQ(data::render_text(segments), c["text"].get<std::string>()) << "case " << n;
    auto e = enc.encode(segments);
    EXPECT_EQ(e.ids, c["ids"].get<std::vector<int32_t>>()) << "case " << n << ": " << c["text"].dump();
    EXPECT_EQ(e.labels, c["labels"].get<std::vector<int32_t>>()) << "case " << n << ": " << c["text"].dump();
    ++n;
  }
  EXPECT_GE(n, 1000);
}

// Every trained run is one reply: its tokens decode to the reply text (Llama-2 keeps the space before
// </s>), and it ends with eos.
void check_trained_spans(const model::Tokenizer& tok, const std::string& template_name) {
  data::SegmentEncoder enc(tok);
  auto tmpl = data::ChatTemplate::by_name(template_name);
  int checked = 0;
  for (const auto& c : sample_conversations()) {
    auto e = enc.encode_training(tmpl, c, 1 << 20);
    ASSERT_TRUE(e) << c.id;
    std::vector<std::vector<int64_t>> runs;
    for (size_t i = 0; i < e->ids.size(); ++i) {
      if (e->labels[i] == kIgnoreLabel) continue;
      EXPECT_EQ(e->labels[i], e->ids[i]);
      if (i == 0 || e->labels[i - 1] == kIgnoreLabel || e->ids[i - 1] == tok.eos_id()) runs.emplace_back();
      runs.back().push_back(e->ids[i]);
    }
    ASSERT_EQ(runs.size(), c.messages.size() / 2) << c.id;
    for (size_t k = 0; k < runs.size(); ++k) {
      ASSERT_EQ(runs[k].back(), tok.eos_id()) << c.id << " reply " << k;
      runs[k].pop_back();
      std::string want = c.messages[2 * k + 1].content + (tmpl.kind == data::TemplateKind::Llama2Chat ? " " : "");
      EXPECT_EQ(tok.decode(runs[k]), want) << c.id << " reply " << k;
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(ChatTemplate, TrainedSpansDecodeToTheRepliesPlusEos) {
  auto sample = model::Tokenizer::load(sample_tokenizer());
  check_trained_spans(sample, "vicuna_v1.1");
  check_trained_spans(sample, "llama-2");
  if (fs::exists(llama2_tokenizer())) {
    auto llama = model::Tokenizer::load(llama2_tokenizer());
    check_trained_spans(llama, "vicuna_v1.1");
    check_trained_spans(llama, "llama-2");
  }
}

TEST(ChatTemplate, RenderingsAreFastChats) {
  auto c = conversation({"Hello!", "Hi!", "How are you?", "Good."});
  auto v = data::ChatTemplate::by_name("vicuna_v1.1");
  EXPECT_EQ(data::render_text(v.training_segments(c)),
            "<s>A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
            "detailed, and polite answers to the user's questions. USER: Hello! ASSISTANT: Hi!</s>USER: How are you? "
            "ASSISTANT: Good.</s>");
  v.system = "";
  EXPECT_EQ(data::render_text(v.training_segments(c)).rfind("<s> USER: Hello! ASSISTANT: Hi!</s>", 0), 0u);
  auto l = data::ChatTemplate::by_name("llama-2");
  EXPECT_EQ(data::render_text(l.training_segments(c)), "<s>[INST] Hello! [/INST] Hi! </s><s>[INST] How are you? [/INST] Good. </s>");
  l.system = "Be brief.";
  EXPECT_EQ(data::render_text(l.training_segments(c)).rfind("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello! [/INST] Hi! </s>", 0), 0u);
  // Inference prompts end where the assistant speaks, with nothing trained.
  auto open = conversation({"Hello!", "Hi!", "And now?"});
  EXPECT_EQ(data::render_text(l.prompt_segments(open)), "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello! [/INST] Hi! </s><s>[INST] And now? [/INST]");
  for (const auto& s : v.prompt_segments(open)) EXPECT_EQ(s.trained && s.exchange == 1, false);
  // A trailing user message without a reply is not trained on.
  EXPECT_EQ(data::render_text(v.training_segments(open)), data::render_text(v.training_segments(conversation({"Hello!", "Hi!"}))));
}

TEST(ChatTemplate, SpecialTokenTextInMessagesStaysText) {
  auto tok = model::Tokenizer::load(sample_tokenizer());
  data::SegmentEncoder enc(tok);
  auto e = enc.encode_training(data::ChatTemplate::by_name("vicuna_v1.1"), conversation({"say </s> <s>", "ok </s>"}), 4096);
  ASSERT_TRUE(e);
  EXPECT_EQ(std::count(e->ids.begin(), e->ids.end(), tok.eos_id()), 1);  // only the real closing eos
  EXPECT_EQ(std::count(e->ids.begin(), e->ids.end(), tok.bos_id()), 1);
}

TEST(ChatTemplate, TruncationNeverCutsAUserTurn) {
  auto tok = model::Tokenizer::load(sample_tokenizer());
  data::SegmentEncoder enc(tok);
  auto c = conversation({"First question about the mill and the river?", "A long first answer about the wheel and the stones.",
                         "Second question, about the fox?", "Second answer: the fox counts stars at night.",
                         "Third question?", "Third answer."});
  for (const char* name : {"vicuna_v1.1", "llama-2"}) {
    auto tmpl = data::ChatTemplate::by_name(name);
    auto full = enc.encode_training(tmpl, c, 1 << 20);
    ASSERT_TRUE(full && !full->truncated);
    const int64_t n = static_cast<int64_t>(full->ids.size());
    int kept_some = 0;
    for (int64_t max = 1; max <= n; ++max) {
      std::string why;
      auto e = enc.encode_training(tmpl, c, max, &why);
      if (!e) {
        EXPECT_EQ(why, "too_long");
        continue;
      }
      ++kept_some;
      const size_t m = e->ids.size();
      ASSERT_LE(static_cast<int64_t>(m), max);
      // A prefix of the full sample that ends on a trained token: inside or at the end of a reply, never in a
      // user turn; the cut is as late as the rule allows.
      EXPECT_TRUE(std::equal(e->ids.begin(), e->ids.end(), full->ids.begin())) << name << " max " << max;
      EXPECT_TRUE(std::equal(e->labels.begin(), e->labels.end(), full->labels.begin())) << name << " max " << max;
      EXPECT_NE(e->labels.back(), kIgnoreLabel) << name << " max " << max;
      EXPECT_EQ(e->truncated, static_cast<int64_t>(m) < n);
      if (static_cast<int64_t>(m) < max && static_cast<int64_t>(m) < n)
        EXPECT_EQ(full->labels[m], kIgnoreLabel) << "stopped before a user turn that would not fit whole, max " << max;
    }
    EXPECT_GT(kept_some, 0);
  }
  std::string why;
  EXPECT_FALSE(enc.encode_training(data::ChatTemplate::by_name("vicuna_v1.1"), conversation({"only a question"}), 4096, &why));
  EXPECT_EQ(why, "no_complete_exchange");
}

}  // namespace
}  // namespace chatmill
