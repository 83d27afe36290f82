// Arena-Hard rating (several raters, agreement threshold, cache) and the top/bottom validation; the eval suite's
// YAML (errors with file and line) and run on a model in memory; the sweep report's files.
#include <gtest/gtest.h>

#include <fstream>

#include "common/sample_model.h"
#include "common/scripted_chat.h"
#include "common/test_env.h"
#include "eval/arena_hard.h"
#include "eval/report.h"
#include "eval/suite.h"
#include "model/hf_checkpoint.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& f) {
  std::ifstream in(f);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A rater that scores by a number written in the prompt ("difficulty N"), shifted by `bias`.
std::function<std::string(const eval::ChatRequest&)> rater(int bias) {
  return [bias](const eval::ChatRequest& r) {
    const size_t at = r.user.find("difficulty ");
    if (at == std::string::npos) return std::string("no idea");
    const int d = std::stoi(r.user.substr(at + 11));
    return "Reasoning. [[" + std::to_string(std::max(1, std::min(10, d + bias))) + "]]";
  };
}

TEST(ArenaHard, RatersMustAgreeAndRatingsAreCached) {
  std::vector<eval::ArenaPrompt> prompts = {{"p1", "difficulty 10: prove it"}, {"p2", "difficulty 9: plan it"},
                                            {"p3", "difficulty 1: hello"}, {"p4", "no number here"},
                                            {"p5", "difficulty 2: thanks"}};
  testing::ScriptedChat a("rater-a", rater(0)), b("rater-b", rater(-1));
  auto dir = testing::scratch("arena_rate");
  eval::JudgmentCache cache(dir / "cache.jsonl");
  const std::string rubric = "Rate this prompt: {prompt}";
  auto ratings = eval::rate_prompts({&a, &b}, prompts, rubric, cache);
  ASSERT_EQ(ratings.size(), 5u);
  EXPECT_EQ(ratings[0].scores, (std::vector<double>{10, 9}));
  EXPECT_EQ(ratings[1].scores, (std::vector<double>{9, 8}));
  EXPECT_EQ(ratings[3].scores, (std::vector<double>{-1, -1}));
  EXPECT_EQ(ratings[3].mean(), -1);
  EXPECT_EQ(a.seen[0].user, "Rate this prompt: difficulty 10: prove it");
  auto kept = eval::select_agreed(ratings, 9);
  ASSERT_EQ(kept.size(), 1u);  // p2: rater b gives 8
  EXPECT_EQ(kept[0].prompt.id, "p1");
  EXPECT_EQ(eval::select_agreed(ratings, 8).size(), 2u);
  // Rerun: nothing asked again; a changed rubric is a new rating.
  eval::JudgmentCache again(dir / "cache.jsonl");
  eval::rate_prompts({&a, &b}, prompts, rubric, again);
  EXPECT_EQ(a.seen.size(), 5u);
  eval::rate_prompts({&a}, prompts, rubric + " (v2)", again);
  EXPECT_EQ(a.seen.size(), 10u);
}

TEST(ArenaHard, TopBottomValidationJudgesStrongVsWeakBothOrders) {
  std::vector<eval::ArenaPrompt> prompts;
  for (int d : {10, 9, 9, 5, 1, 1, 2})
    prompts.push_back({"p" + std::to_string(prompts.size()), "difficulty " + std::to_string(d) + " task " + std::to_string(prompts.size())});
  testing::ScriptedChat r1("r1", rater(0));
  auto dir = testing::scratch("arena_validate");
  eval::JudgmentCache cache(dir / "cache.jsonl");
  auto ratings = eval::rate_prompts({&r1}, prompts, "{prompt}", cache);
  testing::ScriptedChat strong("strong", [](const eval::ChatRequest& r) { return "STRONG answer to " + r.user; });
  testing::ScriptedChat weak("weak", [](const eval::ChatRequest& r) { return "weak answer to " + r.user; });
  // The judge prefers STRONG on hard prompts, and calls a tie on easy ones.
  testing::ScriptedChat judge("judge", [](const eval::ChatRequest& r) {
    const bool hard = r.user.find("difficulty 1 ") == std::string::npos && r.user.find("difficulty 2 ") == std::string::npos;
    if (!hard) return std::string("[[C]]");
    const size_t s = r.user.find("STRONG"), w = r.user.find("weak answer");
    return std::string(s < w ? "[[A]]" : "[[B]]");
  });
  auto prompts_file = testing::source_dir() / "data" / "sample" / "mt_bench" / "judge_prompts.jsonl";
  eval::TopBottomOptions o;
  o.top_n = 2;
  o.bottom_n = 5;
  auto res = eval::validate_top_bottom(ratings, strong, weak, judge, eval::load_judge_prompts(prompts_file), cache, dir, o);
  EXPECT_EQ(res["top"]["prompts"], 2);  // scores > 8: 10, 9, 9 -> the top 2
  EXPECT_EQ(res["top"]["prompt_ids"], nlohmann::ordered_json({"p0", "p1"}));
  EXPECT_EQ(res["top"]["strong_win_rate"], 1.0);
  EXPECT_EQ(res["bottom"]["prompts"], 2);  // scores < 2: the two 1s (2 is not below 2)
  EXPECT_EQ(res["bottom"]["tie_rate"], 1.0);
  EXPECT_EQ(judge.seen.size(), 8u);  // 4 prompts x 2 orders
  EXPECT_EQ(strong.seen.size(), 4u);
  EXPECT_TRUE(strong.seen[0].temperature < 1e-4);  // greedy answers
}

TEST(EvalSuite, YamlErrorsNameFileLineAndKey) {
  auto dir = testing::scratch("suite_yaml");
  std::ofstream(dir / "s.yaml") << "eval:\n  template: vicuna_v1.1\n  mmlu:\n    shots: 5\n  mt_bench:\n    questions: q.jsonl\n"
                                   "    judge_prompts: p.jsonl\n    judge: x\n    colour: red\n  batch_size: 0\n";
  auto errors = std::make_shared<ConfigErrors>();
  YamlObject root(load_yaml(dir / "s.yaml"), "", (dir / "s.yaml").string(), errors);
  YamlObject e = root.object("eval");
  auto s = eval::read_eval_suite(e);
  const std::string msg = testing::error_of([&] { errors->throw_if_any("s.yaml"); });
  EXPECT_NE(msg.find("eval.mmlu.data"), std::string::npos) << msg;
  EXPECT_NE(msg.find("colour"), std::string::npos) << msg;
  EXPECT_NE(msg.find("s.yaml:9"), std::string::npos) << msg;
  EXPECT_NE(msg.find("batch_size"), std::string::npos) << msg;
}

// MT-Bench on the shipped sample files.
eval::MtBenchBench sample_mt_bench(const std::string& judge, int64_t max_new_tokens) {
  const fs::path sample = testing::source_dir() / "data" / "sample" / "mt_bench";
  eval::MtBenchBench mt;
  mt.questions = (sample / "question.jsonl").string();
  mt.judge_prompts = (sample / "judge_prompts.jsonl").string();
  mt.reference = (sample / "reference_answer" / "sample-reference.jsonl").string();
  mt.judge = judge;
  mt.max_new_tokens = max_new_tokens;
  return mt;
}

TEST(EvalSuite, StopsWhenAskedBetweenBenchmarksAndDuringGeneration) {
  testing::SampleModel t(0.2, 3);
  const fs::path sample = testing::source_dir() / "data" / "sample";
  eval::EvalSuite s;
  s.batch_size = 4;
  s.mmlu = eval::MmluBench{(sample / "mmlu").string(), 2, "original", 0, 8};
  s.mt_bench = sample_mt_bench("self", 400);  // long answers: the stop lands while they are generated
  auto dir = testing::scratch("suite_stop");
  // Polls: before MMLU, its 3 batches of 8, before MT-Bench, then during the answers' generation.
  for (int stop_at : {1, 4, 7}) {
    int polls = 0;
    const std::string msg = testing::error_of(
        [&] { eval::run_eval_suite({t.m, t.tok, "tiny", {}, [&] { return ++polls >= stop_at; }}, s, dir / "out"); });
    EXPECT_NE(msg.find("stopped as asked"), std::string::npos) << stop_at << ": " << msg;
    EXPECT_EQ(polls, stop_at) << "each poll's answer is acted on at once";
    if (stop_at == 1) EXPECT_NE(msg.find("before MMLU"), std::string::npos) << msg;
    if (stop_at == 4) EXPECT_NE(msg.find("MMLU stopped as asked after 16 of 24"), std::string::npos) << msg;
    if (stop_at == 7) EXPECT_NE(msg.find("generation stopped as asked"), std::string::npos) << msg;
  }
  // A judge that is another model (here a local folder; an HTTP endpoint goes the same way): the stop, asked once
  // the answers are written, lands in the judging.
  model::SaveOptions so;
  so.tokenizer_model = testing::source_dir() / "data" / "sample" / "tokenizer.model";
  model::save_hf_model(t.m, dir / "judge", so);
  s.mmlu.reset();
  s.mt_bench = sample_mt_bench("local=" + (dir / "judge").string(), 8);
  s.mt_bench->judge_max_tokens = 8;
  const fs::path answers = dir / "out2" / "mt_bench" / "answers" / "tiny.jsonl";
  const std::string msg = testing::error_of(
      [&] { eval::run_eval_suite({t.m, t.tok, "tiny", {}, [&] { return fs::exists(answers); }}, s, dir / "out2"); });
  EXPECT_NE(msg.find("local:judge stopped as asked after 0 of"), std::string::npos) << msg;
}

TEST(EvalSuite, RunsOnAModelInMemoryAndReports) {
  auto tok = model::Tokenizer::load(testing::source_dir() / "data" / "sample" / "tokenizer.model");
  model::LlamaConfig cfg = model::llama2_debug();
  cfg.vocab_size = tok.vocab_size();
  model::Model m(cfg, model::init_weights(cfg, 0.2, 3, at::kFloat, at::kCPU));
  const fs::path sample = testing::source_dir() / "data" / "sample";
  // The judge is itself a local model folder: write one.
  auto dir = testing::scratch("suite_run");
  model::SaveOptions so;
  so.tokenizer_model = sample / "tokenizer.model";
  model::save_hf_model(m, dir / "judge", so);

  eval::EvalSuite s;
  s.batch_size = 4;
  s.mmlu = eval::MmluBench{(sample / "mmlu").string(), 2, "original", 0, 8};
  s.mt_bench = sample_mt_bench("local=" + (dir / "judge").string() + ",batch_size=8", 8);
  s.mt_bench->judge_max_tokens = 8;
  eval::ModerationBench mod;
  mod.set = (sample / "moderation_eval.jsonl").string();
  mod.prompt = (testing::source_dir() / "data" / "prompts" / "moderation_v1.txt").string();
  mod.shots_file = (sample / "moderation_shots.jsonl").string();
  mod.shots = {0, 1};
  mod.max_tokens = 8;
  s.moderation = mod;
  auto res = eval::run_eval_suite({m, tok, "tiny", {}}, s, dir / "out");
  EXPECT_EQ(res["mmlu"]["questions"], 24);
  EXPECT_EQ(res["mmlu"]["provenance"]["model_sha256"], "in-memory");
  EXPECT_EQ(res["mt_bench"]["judgments"], 16);
  EXPECT_EQ(res["mt_bench"]["settings"]["judge"], "local:judge");
  EXPECT_EQ(res["moderation"]["1-shot"]["items"], 12);
  EXPECT_TRUE(fs::exists(dir / "out" / "mt_bench" / "answers" / "tiny.jsonl"));
  EXPECT_TRUE(fs::exists(dir / "out" / "moderation" / "0-shot" / "predictions.jsonl"));
  EXPECT_TRUE(fs::exists(dir / "out" / "mmlu" / "results_predictions.jsonl"));

  eval::write_report({{"step-<1>", "/x", res}, {"other", "/y", nlohmann::ordered_json::object()}}, dir / "report", "T & C");
  const std::string md = read(dir / "report" / "report.md");
  char micro[32];
  std::snprintf(micro, sizeof micro, "%.3f", res["mmlu"]["micro_accuracy"].get<double>());
  EXPECT_NE(md.find("| step-<1> | " + std::string(micro) + " |"), std::string::npos) << md;
  EXPECT_NE(md.find("| other | – |"), std::string::npos) << md;  // missing benchmarks are dashes
  const std::string html = read(dir / "report" / "report.html");
  EXPECT_NE(html.find("<title>T &amp; C</title>"), std::string::npos);
  EXPECT_NE(html.find("step-&lt;1&gt;"), std::string::npos);  // escaped
  EXPECT_NE(html.find("MMLU accuracy by category"), std::string::npos);
  EXPECT_NE(html.find("Moderation F1 by category (1-shot)"), std::string::npos);
  auto j = nlohmann::json::parse(read(dir / "report" / "report.json"));
  EXPECT_EQ(j["rows"][0]["results"]["mmlu"]["micro_accuracy"].get<double>(), res["mmlu"]["micro_accuracy"].get<double>());
}

}  // namespace
}  // namespace chatmill
