// MMLU: the prompts of hendrycks/test's evaluate.py and the predictions HF transformers makes from them
// (tests/eval/mmlu_reference.py); the CSV reader and bad rows.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "common/interrupted.h"
#include "common/test_env.h"
#include "eval/csv.h"
#include "eval/mmlu.h"
#include "model/hf_checkpoint.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

fs::path sample_mmlu() { return testing::source_dir() / "data" / "sample" / "mmlu"; }

TEST(Mmlu, PromptsAndPredictionsMatchEvaluatePyWithTransformers) {
  std::ifstream in(testing::testdata() / "ref" / "mmlu_reference.json");
  ASSERT_TRUE(in);
  auto ref = nlohmann::json::parse(in);
  auto tok = model::Tokenizer::load(testing::source_dir() / "data" / "sample" / "tokenizer.model");
  model::Model m = model::load_hf_model(testing::testdata() / "models" / "mha_untied");
  auto data = eval::load_mmlu(sample_mmlu());
  eval::MmluOptions o;
  o.batch_size = 5;      // batches that mix subjects and prompt lengths
  o.max_length = 2048;   // evaluate.py's limit; the reference keeps all 5 shots
  auto r = eval::evaluate_mmlu(m, tok, data, o);
  auto ids = eval::mmlu_answer_ids(tok);
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), ref["answer_ids"].get<std::vector<int64_t>>());
  ASSERT_EQ(r.predictions.size(), ref["predictions"].size());
  double worst = 0;
  for (size_t i = 0; i < r.predictions.size(); ++i) {
    const auto& p = r.predictions[i];
    const auto& q = ref["predictions"][i];
    ASSERT_EQ(p.subject, q["subject"]);
    ASSERT_EQ(p.index, q["index"].get<int64_t>());
    EXPECT_EQ(eval::mmlu_prompt(data.dev.at(p.subject), data.test.at(p.subject)[p.index], 5, eval::MmluVariant::Original),
              q["prompt"].get<std::string>());
    EXPECT_EQ(std::string(1, static_cast<char>('A' + p.prediction)), q["prediction"].get<std::string>()) << p.subject << " " << p.index;
    for (int k = 0; k < 4; ++k) worst = std::max(worst, std::abs(p.scores[k] - q["scores"][k].get<double>()));
  }
  std::cout << "MMLU sample: 24 predictions equal HF's; worst answer-logit diff " << worst << "\n";
  EXPECT_LE(worst, 1e-4);
  EXPECT_EQ(r.summary["questions"], 24);
  EXPECT_EQ(r.summary["categories"].size(), 4u);
}

TEST(Mmlu, ShotsDropWhileThePromptIsTooLongAndVariantsDiffer) {
  auto data = eval::load_mmlu(sample_mmlu());
  const auto& dev = data.dev.at("philosophy");
  const auto& item = data.test.at("philosophy")[1];
  const std::string original = eval::mmlu_prompt(dev, item, 5, eval::MmluVariant::Original);
  EXPECT_EQ(original.rfind("The following are multiple choice questions (with answers) about  philosophy.\n\n", 0), 0u);
  const std::string harness = eval::mmlu_prompt(dev, item, 0, eval::MmluVariant::Harness);
  EXPECT_NE(harness.find("(with answers) about philosophy.\n\n"), std::string::npos);
  EXPECT_EQ(harness.find("about  "), std::string::npos);
  EXPECT_NE(original.find("\nAnswer: B\n\n"), std::string::npos);
  EXPECT_EQ(original.substr(original.size() - 8), "\nAnswer:");
  // The row with a quoted, comma-holding question came through whole.
  EXPECT_NE(item.question.find("\"All millers are early risers; Ana is a miller; so Ana is an early riser\""), std::string::npos);

  auto tok = model::Tokenizer::load(testing::source_dir() / "data" / "sample" / "tokenizer.model");
  model::Model m = model::load_hf_model(testing::testdata() / "models" / "mha_untied");
  eval::MmluOptions o;
  o.max_length = static_cast<int64_t>(tok.encode(eval::mmlu_prompt(dev, item, 2, eval::MmluVariant::Original), true).size());
  auto r = eval::evaluate_mmlu(m, tok, data, o);
  for (const auto& p : r.predictions)
    if (p.subject == "philosophy" && p.index == 1) EXPECT_EQ(p.shots, 2);
}

TEST(Mmlu, StopsBetweenBatchesWhenAsked) {
  auto data = eval::load_mmlu(sample_mmlu());
  auto tok = model::Tokenizer::load(testing::source_dir() / "data" / "sample" / "tokenizer.model");
  model::Model m = model::load_hf_model(testing::testdata() / "models" / "mha_untied");
  eval::MmluOptions o;
  o.batch_size = 2;
  int polls = 0;
  o.stop = [&] { return ++polls > 2; };  // two batches scored, then stop
  try {
    eval::evaluate_mmlu(m, tok, data, o);
    ADD_FAILURE() << "no Interrupted";
  } catch (const Interrupted& e) {
    EXPECT_NE(std::string(e.what()).find("MMLU stopped as asked after 4 of"), std::string::npos) << e.what();
  }
  EXPECT_EQ(polls, 3);
}

TEST(Mmlu, BadInputNamesFileAndLine) {
  auto dir = testing::scratch("mmlu_bad");
  fs::create_directories(dir / "dev");
  fs::create_directories(dir / "test");
  std::ofstream(dir / "dev" / "x_dev.csv") << "q,a,b,c,d,A\n";
  std::ofstream(dir / "test" / "x_test.csv") << "q1,a,b,c,d,B\nq2,a,b,c,E\n";
  testing::expect_error([&] { eval::load_mmlu(dir); }, {"x_test.csv:2", "6 fields"});
  std::ofstream(dir / "test" / "x_test.csv") << "q1,a,b,c,d,B\nq2,a,b,c,d,E\n";
  testing::expect_error([&] { eval::load_mmlu(dir); }, {"x_test.csv:2", "answer 'E'", "q2"});
  std::ofstream(dir / "test" / "x_test.csv") << "\"q1,a,b,c,d,B\n";
  testing::expect_error([&] { eval::load_mmlu(dir); }, {"x_test.csv:1", "never closed"});
  std::ofstream(dir / "test" / "x_test.csv") << "q1,a,b,c,d,B\n";
  std::ofstream(dir / "test" / "y_test.csv") << "q1,a,b,c,d,B\n";
  testing::expect_error([&] { eval::load_mmlu(dir); }, {"'y'", "no dev questions"});
  testing::expect_error([&] { eval::load_mmlu(dir / "nowhere"); }, {"neither dev/ and test/"});
}

TEST(Csv, QuotesNewlinesAndErrors) {
  auto rows = eval::parse_csv("a,\"b,c\",\"d \"\"e\"\"\"\r\n\"multi\nline\",x\n\nlast", "t");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].fields, (std::vector<std::string>{"a", "b,c", "d \"e\""}));
  EXPECT_EQ(rows[1].fields, (std::vector<std::string>{"multi\nline", "x"}));
  EXPECT_EQ(rows[1].line, 2);
  EXPECT_EQ(rows[2].line, 5);
  testing::expect_error([] { eval::parse_csv("a\"b\n", "t"); }, {"t:1", "quote inside an unquoted field"});
  testing::expect_error([] { eval::parse_csv("\"ab\"c\n", "t"); }, {"t:1", "text after a closing quote"});
}

}  // namespace
}  // namespace chatmill
