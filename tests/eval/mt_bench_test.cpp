// MT-Bench: FastChat's file formats and broken files, judge-prompt filling (the real prompts from ../shared too),
// score and verdict parsing, two-turn answers (turn 2 sees the model's own turn 1; batched = alone; resumable),
// the judgment cache, and a local judge end to end. The HTTP judge runs against a real server on loopback in
// tests/eval/check_mt_bench_http.py.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "common/sample_model.h"
#include "common/test_env.h"
#include "data/encode.h"
#include "eval/mt_bench.h"
#include "model/generate.h"
#include "model/hf_checkpoint.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

fs::path sample() { return testing::source_dir() / "data" / "sample" / "mt_bench"; }

void write(const fs::path& f, const std::string& text) { std::ofstream(f) << text; }


TEST(MtBench, ParsesRatingsExactlyAsFastChat) {
  EXPECT_EQ(eval::parse_rating("Good answer. Rating: [[8]]"), 8);
  EXPECT_EQ(eval::parse_rating("Rating: [[7.5]] and later [[3]]"), 7.5);  // the first [[n]]
  EXPECT_EQ(eval::parse_rating("[4] before, [[9]] after"), 9);            // [[n]] wins over an earlier [n]
  EXPECT_EQ(eval::parse_rating("only single brackets: [6]"), 6);
  EXPECT_EQ(eval::parse_rating("Rating: 8/10"), -1);
  EXPECT_EQ(eval::parse_rating("[[rating]]"), -1);
  EXPECT_EQ(eval::parse_rating(""), -1);
  EXPECT_EQ(eval::parse_verdict("so [[A]]"), 'A');
  EXPECT_EQ(eval::parse_verdict("[[B]]"), 'B');
  EXPECT_EQ(eval::parse_verdict("a tie: [[C]]"), 'C');
  EXPECT_EQ(eval::parse_verdict("A is better"), '?');
}

TEST(MtBench, FillsTemplatesAndNamesMissingFields) {
  EXPECT_EQ(eval::fill_template("Q: {question}\nA: {answer}", {{"question", "why?"}, {"answer", "because {x}"}}, "here"),
            "Q: why?\nA: because {x}");  // values are not filled again
  EXPECT_EQ(eval::fill_template("def f(): return {'a': 1} {question}", {{"question", "q"}}, "here"),
            "def f(): return {'a': 1} q");  // literal braces stay
  testing::expect_error([] { eval::fill_template("{question} {ref_answer_1}", {{"question", "q"}}, "question 7, prompt p"); },
                        {"question 7, prompt p", "{ref_answer_1}"});
}

TEST(MtBench, LoadsTheSampleFiles) {
  auto qs = eval::load_mt_questions(sample() / "question.jsonl");
  ASSERT_EQ(qs.size(), 8u);
  for (const auto& q : qs) EXPECT_EQ(q.turns.size(), 2u);
  auto prompts = eval::load_judge_prompts(sample() / "judge_prompts.jsonl");
  for (const char* name : {"single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn", "pair-v2",
                           "pair-v2-multi-turn", "pair-math-v1", "pair-math-v1-multi-turn"})
    EXPECT_TRUE(prompts.count(name)) << name;
  auto refs = eval::load_references(sample() / "reference_answer" / "sample-reference.jsonl");
  for (const auto& q : qs) EXPECT_EQ(refs.count(q.id) > 0, eval::needs_reference(q.category)) << q.id;
  EXPECT_EQ(eval::mt_bench_temperature("writing"), 0.7);
  EXPECT_EQ(eval::mt_bench_temperature("math"), 0.0);
  EXPECT_EQ(eval::mt_bench_temperature("stem"), 0.1);
  EXPECT_EQ(eval::mt_bench_temperature("arena-hard-200"), 0.7);
}

TEST(MtBench, RealFastChatPromptsLoadAndFill) {
  const fs::path dir = testing::shared_data() / "mt_bench";
  if (!fs::exists(dir / "question.jsonl")) GTEST_SKIP() << "no ../shared/data/mt_bench";
  auto qs = eval::load_mt_questions(dir / "question.jsonl");
  ASSERT_EQ(qs.size(), 80u);
  EXPECT_EQ(qs.front().id, 81);
  EXPECT_EQ(qs.back().id, 160);
  auto refs = eval::load_references(dir / "reference_answer" / "gpt-4.jsonl");
  for (const auto& q : qs)
    if (eval::needs_reference(q.category)) EXPECT_TRUE(refs.count(q.id)) << q.id;
  eval::JudgeInputs in{qs, refs, eval::load_judge_prompts(dir / "judge_prompts.jsonl")};
  ASSERT_EQ(in.prompts.size(), 8u);
  // Judge every question with a judge that records the prompts: every template fills, every field is used.
  struct Recorder : eval::ChatModel {
    std::vector<eval::ChatRequest> seen;
    std::string name() const override { return "recorder"; }
    std::vector<eval::ChatReply> complete(const std::vector<eval::ChatRequest>& r) override {
      seen.insert(seen.end(), r.begin(), r.end());
      return std::vector<eval::ChatReply>(r.size(), {"Rating: [[5]]", ""});
    }
  } judge;
  std::map<int64_t, eval::ModelAnswer> answers;
  for (const auto& q : qs) answers[q.id] = {q.id, "a", "m", {"FIRST-" + std::to_string(q.id), "SECOND-" + std::to_string(q.id)}, 0};
  eval::JudgmentCache cache(testing::scratch("mt_real") / "cache.jsonl");
  auto res = eval::judge_single(in, answers, judge, cache, testing::scratch("mt_real_j") / "j.jsonl");
  ASSERT_EQ(judge.seen.size(), 160u);
  EXPECT_EQ(res["score"], 5.0);
  for (size_t i = 0; i < judge.seen.size(); ++i) {
    const auto& q = qs[i / 2];
    const std::string& user = judge.seen[i].user;
    EXPECT_NE(user.find("FIRST-" + std::to_string(q.id)), std::string::npos);
    EXPECT_EQ(user.find("SECOND-") != std::string::npos, i % 2 == 1);
    EXPECT_EQ(user.find('{' + std::string("answer")), std::string::npos);  // nothing left unfilled
    if (eval::needs_reference(q.category)) EXPECT_NE(user.find(refs.at(q.id)[0]), std::string::npos);
    EXPECT_FALSE(judge.seen[i].system.empty());
  }
}

TEST(MtBench, BrokenFilesNameFileLineAndField) {
  auto dir = testing::scratch("mt_broken");
  write(dir / "q1.jsonl", "{\"question_id\": 1, \"category\": \"math\", \"turns\": [\"a\", \"b\"]}\n{\"question_id\": 2, \"turns\": [\"a\"]}\n");
  testing::expect_error([&] { eval::load_mt_questions(dir / "q1.jsonl"); }, {"q1.jsonl:2", "category"});
  write(dir / "q2.jsonl", "{\"question_id\": 1, \"category\": \"math\", \"turns\": [\"a\", \"b\"]\n");
  testing::expect_error([&] { eval::load_mt_questions(dir / "q2.jsonl"); }, {"q2.jsonl:1", "malformed JSON"});
  write(dir / "q3.jsonl", "{\"question_id\": \"x\", \"category\": \"math\", \"turns\": [\"a\"]}\n");
  testing::expect_error([&] { eval::load_mt_questions(dir / "q3.jsonl"); }, {"q3.jsonl:1", "question_id"});
  write(dir / "q4.jsonl", "{\"question_id\": 4, \"category\": \"math\", \"turns\": [\"a\", 5]}\n");
  testing::expect_error([&] { eval::load_mt_questions(dir / "q4.jsonl"); }, {"q4.jsonl:1", "question 4", "turn"});
  write(dir / "empty.jsonl", "\n");
  testing::expect_error([&] { eval::load_mt_questions(dir / "empty.jsonl"); }, {"empty.jsonl", "empty"});
  testing::expect_error([&] { eval::load_mt_questions(dir / "absent.jsonl"); }, {"absent.jsonl"});
  write(dir / "p.jsonl", "{\"name\": \"single-v1\", \"type\": \"single\", \"system_prompt\": \"s\"}\n");
  testing::expect_error([&] { eval::load_judge_prompts(dir / "p.jsonl"); }, {"p.jsonl:1", "prompt_template"});
  write(dir / "a.jsonl", "{\"question_id\": 3, \"model_id\": \"m\", \"choices\": []}\n");
  testing::expect_error([&] { eval::load_model_answers(dir / "a.jsonl"); }, {"a.jsonl:1", "question 3", "choices"});
  // Optional fields of the wrong type (nlohmann's value() threw its own type_error for these).
  write(dir / "a2.jsonl", "{\"question_id\": 3, \"answer_id\": 7, \"choices\": [{\"turns\": [\"x\"]}]}\n");
  testing::expect_error([&] { eval::load_model_answers(dir / "a2.jsonl"); }, {"a2.jsonl:1", "answer_id"});
  write(dir / "a3.jsonl", "{\"question_id\": 3, \"tstamp\": \"now\", \"choices\": [{\"turns\": [\"x\"]}]}\n");
  testing::expect_error([&] { eval::load_model_answers(dir / "a3.jsonl"); }, {"a3.jsonl:1", "tstamp"});

  // Answers for other questions, or missing ones, are refused with the question named.
  auto qs = eval::load_mt_questions(sample() / "question.jsonl");
  std::map<int64_t, eval::ModelAnswer> answers;
  for (const auto& q : qs) answers[q.id] = {q.id, "a", "m", {"x", "y"}, 0};
  answers[99] = {99, "a", "m", {"x", "y"}, 0};
  testing::expect_error([&] { eval::check_answers_cover(qs, answers, "other.jsonl"); }, {"other.jsonl", "question 99"});
  answers.erase(99);
  answers.erase(5);
  testing::expect_error([&] { eval::check_answers_cover(qs, answers, "other.jsonl"); }, {"other.jsonl", "question 5"});
  answers[5] = {5, "a", "m", {"x"}, 0};
  testing::expect_error([&] { eval::check_answers_cover(qs, answers, "other.jsonl"); }, {"question 5", "1 answered turns of 2"});

  // A math question without a reference answer cannot be judged.
  answers[5] = {5, "a", "m", {"x", "y"}, 0};
  eval::JudgeInputs in{qs, {}, eval::load_judge_prompts(sample() / "judge_prompts.jsonl")};
  struct Never : eval::ChatModel {
    std::string name() const override { return "never"; }
    std::vector<eval::ChatReply> complete(const std::vector<eval::ChatRequest>&) override { return {}; }
  } never;
  eval::JudgmentCache cache(dir / "cache.jsonl");
  testing::expect_error([&] { eval::judge_single(in, answers, never, cache, dir / "j.jsonl"); },
                        {"question 3", "reference answer"});
}

TEST(MtBench, SecondTurnSeesTheOwnFirstAnswerBatchedEqualsAloneAndResumes) {
  testing::SampleModel t(0.2, 11);
  auto qs = eval::load_mt_questions(sample() / "question.jsonl");
  // Greedy categories only, so that the comparison is exact: reasoning, math, coding, extraction.
  std::vector<eval::MtQuestion> greedy;
  for (const auto& q : qs)
    if (eval::mt_bench_temperature(q.category) == 0.0) greedy.push_back(q);
  ASSERT_EQ(greedy.size(), 4u);
  eval::AnswerOptions o;
  o.max_new_tokens = 12;
  o.model_id = "tiny";
  const auto tmpl = data::ChatTemplate::by_name("vicuna_v1.1");
  auto batched_chat = eval::make_local_chat(t.m, t.tok, tmpl, "tiny", 4);
  auto alone_chat = eval::make_local_chat(t.m, t.tok, tmpl, "tiny", 1);
  auto dir = testing::scratch("mt_answers");
  EXPECT_EQ(eval::generate_mt_answers(*batched_chat, greedy, o, dir / "batched.jsonl"), 4);
  o.chunk = 3;  // chunks that do not divide the questions
  EXPECT_EQ(eval::generate_mt_answers(*alone_chat, greedy, o, dir / "alone.jsonl"), 4);
  auto batched = eval::load_model_answers(dir / "batched.jsonl");
  auto alone = eval::load_model_answers(dir / "alone.jsonl");
  ASSERT_EQ(batched.size(), 4u);
  for (const auto& q : greedy) EXPECT_EQ(batched.at(q.id).turns, alone.at(q.id).turns) << q.id;

  // Turn 2 is the greedy continuation of [q1, own a1, q2] in the template, computed here independently.
  const auto& q = greedy[0];
  const auto& a = batched.at(q.id);
  data::Conversation c;
  c.messages = {{data::Role::User, q.turns[0]}, {data::Role::Assistant, a.turns[0]}, {data::Role::User, q.turns[1]}};
  data::SegmentEncoder enc(t.tok);
  auto e = enc.encode(tmpl.prompt_segments(c));
  model::GenerationRequest r;
  r.prompt.assign(e.ids.begin(), e.ids.end());
  r.max_new_tokens = 12;
  r.sampling.temperature = 0;
  model::GenerateOptions go;
  go.tokenizer = &t.tok;
  EXPECT_EQ(model::generate(t.m, {r}, go)[0].text, a.turns[1]);

  // Resume: a file holding two answers gets only the other two; the kept lines are untouched.
  std::ifstream in(dir / "batched.jsonl");
  std::string l1, l2;
  std::getline(in, l1);
  std::getline(in, l2);
  write(dir / "partial.jsonl", l1 + "\n" + l2 + "\n");
  EXPECT_EQ(eval::generate_mt_answers(*batched_chat, greedy, o, dir / "partial.jsonl"), 2);
  auto resumed = eval::load_model_answers(dir / "partial.jsonl");
  ASSERT_EQ(resumed.size(), 4u);
  for (const auto& g : greedy) EXPECT_EQ(resumed.at(g.id).turns, batched.at(g.id).turns);
  EXPECT_EQ(eval::generate_mt_answers(*batched_chat, greedy, o, dir / "partial.jsonl"), 0);
}

TEST(MtBench, CacheSurvivesATornLineAndLocalJudgeIsTheModelsGreedyAnswer) {
  auto dir = testing::scratch("mt_cache");
  {
    eval::JudgmentCache c(dir / "cache.jsonl");
    c.add("k1", {{"score", 3.0}});
    c.add("k2", {{"score", 4.0}});
  }
  std::ofstream(dir / "cache.jsonl", std::ios::app) << "{\"key\": \"k3\", \"sco";  // a run killed mid-write
  eval::JudgmentCache again(dir / "cache.jsonl");
  EXPECT_EQ(again.size(), 2);
  ASSERT_NE(again.find("k2"), nullptr);
  EXPECT_EQ(again.find("k2")->at("score"), 4.0);
  EXPECT_EQ(again.find("k3"), nullptr);
  // Records a hand edit damaged are asked again, not trusted: a number key, no score or verdict.
  std::ofstream(dir / "cache.jsonl", std::ios::app) << "\n{\"key\": 5, \"score\": 1}\n{\"key\": \"k4\"}\n"
                                                    << "{\"key\": \"k5\", \"score\": \"high\"}\n";
  eval::JudgmentCache damaged(dir / "cache.jsonl");
  EXPECT_EQ(damaged.size(), 2);
  EXPECT_EQ(damaged.find("k4"), nullptr);

  testing::SampleModel t(0.2, 11);
  auto tmpl = data::ChatTemplate::by_name("vicuna_v1.1");
  auto judge = eval::make_local_chat(t.m, t.tok, tmpl, "local:tiny", 2);
  std::vector<eval::ChatRequest> reqs(3);
  reqs[0].system = "You are a judge.";
  reqs[0].user = "Rate this.";
  reqs[1].user = "Rate that, please.";
  reqs[2].system = "System.";
  reqs[2].history = {{"An earlier question.", "An earlier answer."}};
  reqs[2].user = "Third.";
  for (auto& r : reqs) r.max_tokens = 10;
  auto replies = judge->complete(reqs);
  ASSERT_EQ(replies.size(), 3u);
  data::SegmentEncoder enc(t.tok);
  for (size_t i = 0; i < reqs.size(); ++i) {
    data::Conversation c;
    c.system = reqs[i].system;
    for (const auto& [u, a] : reqs[i].history) {
      c.messages.push_back({data::Role::User, u});
      c.messages.push_back({data::Role::Assistant, a});
    }
    c.messages.push_back({data::Role::User, reqs[i].user});
    auto e = enc.encode(tmpl.prompt_segments(c));
    model::GenerationRequest r;
    r.prompt.assign(e.ids.begin(), e.ids.end());
    r.max_new_tokens = 10;
    r.sampling.temperature = 0;
    model::GenerateOptions go;
    go.tokenizer = &t.tok;
    EXPECT_EQ(replies[i].text, model::generate(t.m, {r}, go)[0].text) << i;
    EXPECT_TRUE(replies[i].error.empty());
  }
}

// Single and pairwise aggregation with a scripted judge whose replies are known: the score is the mean of the
// valid ratings, unparseable ones are dropped and counted, a verdict that flips with the order is a tie, and a
// second run asks the judge nothing.
TEST(MtBench, AggregatesAndCachesWithAScriptedJudge) {
  auto qs = eval::load_mt_questions(sample() / "question.jsonl");
  eval::JudgeInputs in{qs, eval::load_references(sample() / "reference_answer" / "sample-reference.jsonl"),
                       eval::load_judge_prompts(sample() / "judge_prompts.jsonl")};
  std::map<int64_t, eval::ModelAnswer> a, b;
  for (const auto& q : qs) {
    a[q.id] = {q.id, "x", "model-a", {"alpha-1", "alpha-2"}, 0};
    b[q.id] = {q.id, "y", "model-b", {"beta-1", "beta-2"}, 0};
  }
  struct Scripted : eval::ChatModel {
    int64_t calls = 0;
    std::string name() const override { return "scripted"; }
    std::vector<eval::ChatReply> complete(const std::vector<eval::ChatRequest>& r) override {
      std::vector<eval::ChatReply> out;
      for (const auto& x : r) {
        ++calls;
        if (x.user.find("[Assistant A]") != std::string::npos || x.user.find("Assistant A's") != std::string::npos) {
          // Turn 1: prefers model b's answer wherever it stands; always says A on turn 2 (position bias).
          const bool turn2 = x.user.find("Assistant A's") != std::string::npos;
          const size_t pa = x.user.find("beta-1"), pb = x.user.find("alpha-1");
          out.push_back({turn2 ? "[[A]]" : (pa < pb ? "[[A]]" : "[[B]]"), ""});
        } else {
          const bool turn2 = x.user.find("alpha-2") != std::string::npos;
          out.push_back({turn2 ? "no rating here" : "Rating: [[6]]", ""});
        }
      }
      return out;
    }
  } judge;
  auto dir = testing::scratch("mt_scripted");
  eval::JudgmentCache cache(dir / "cache.jsonl");
  auto single = eval::judge_single(in, a, judge, cache, dir / "single.jsonl");
  EXPECT_EQ(single["score"], 6.0);
  EXPECT_EQ(single["turn_1"], 6.0);
  EXPECT_TRUE(single["turn_2"].is_null());
  EXPECT_EQ(single["invalid"], 8);
  EXPECT_EQ(single["judgments"], 16);
  EXPECT_EQ(single["per_category"]["math"], 6.0);
  EXPECT_EQ(judge.calls, 16);
  auto pair = eval::judge_pairwise(in, a, b, judge, cache, dir / "pair.jsonl");
  EXPECT_EQ(judge.calls, 16 + 32);
  EXPECT_EQ(pair["games"], 16);
  EXPECT_EQ(pair["loss"], 8);          // turn 1: b wins in both orders
  EXPECT_EQ(pair["tie"], 8);           // turn 2: "A" in both orders = inconsistent = tie
  EXPECT_EQ(pair["inconsistent"], 8);
  EXPECT_EQ(pair["win"], 0);
  // Rerun: everything from the cache, the same results.
  eval::JudgmentCache reread(dir / "cache.jsonl");
  EXPECT_EQ(eval::judge_single(in, a, judge, reread, dir / "single2.jsonl")["score"], 6.0);
  EXPECT_EQ(eval::judge_pairwise(in, a, b, judge, reread, dir / "pair2.jsonl")["loss"], 8);
  EXPECT_EQ(judge.calls, 48);
}

}  // namespace
}  // namespace chatmill
