// MT-Bench: two-turn answers from the model under test (turn 2 sees its own turn-1 answer), then an LLM judge:
// single-answer grading (1..10, with reference answers for math, reasoning and coding) or pairwise comparison
// in both orders. Judgments are cached by (question, turn, answer hash, judge, prompt) so reruns never pay twice.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/chat_model.h"
#include "eval/mt_bench_data.h"

namespace chatmill::eval {

struct AnswerOptions {
  std::string model_id = "model";
  int64_t max_new_tokens = 1024;
  double temperature = -1;  // >= 0: used for every question instead of FastChat's per-category table
  int64_t chunk = 16;  // questions answered (every turn) before their answers are appended to the file
  uint64_t seed = 0;
};

// Generates the answers missing from `answers_file` (FastChat's answer format) with the model under test:
// turn t is asked with the model's own earlier answers in the conversation, at the category's temperature.
// Answers are appended chunk by chunk, so an interrupted run keeps what it made. Returns how many it generated.
int64_t generate_mt_answers(ChatModel& model, const std::vector<MtQuestion>& questions, const AnswerOptions& o,
                            const std::filesystem::path& answers_file);

// Judgments already paid for: JSON Lines, appended as they come.
class JudgmentCache {
 public:
  explicit JudgmentCache(std::filesystem::path file);
  const nlohmann::json* find(const std::string& key) const;
  void add(const std::string& key, nlohmann::json record);
  int64_t size() const { return static_cast<int64_t>(entries_.size()); }

 private:
  std::filesystem::path file_;
  std::map<std::string, nlohmann::json> entries_;
};

struct JudgeInputs {
  std::vector<MtQuestion> questions;
  std::map<int64_t, std::vector<std::string>> references;  // question id -> reference turns
  std::map<std::string, JudgePrompt> prompts;
  int64_t judge_max_tokens = 2048;  // FastChat's; judged at temperature 0
};

// Reference answers in the answer format (FastChat's reference_answer/*.jsonl).
std::map<int64_t, std::vector<std::string>> load_references(const std::filesystem::path& file);

// Single-answer grading of every question and turn. Returns the summary (score = mean of the valid ratings,
// per turn, per category, invalid count) and appends each judgment to `judgments_file`. New judgments are
// cached as they arrive; if the judge fails, the error is thrown after those are saved.
nlohmann::ordered_json judge_single(const JudgeInputs& in, const std::map<int64_t, ModelAnswer>& answers, ChatModel& judge,
                                    JudgmentCache& cache, const std::filesystem::path& judgments_file);

// Pairwise: each question and turn judged twice, A-B and B-A; a verdict that flips with the order is a tie.
nlohmann::ordered_json judge_pairwise(const JudgeInputs& in, const std::map<int64_t, ModelAnswer>& a,
                                      const std::map<int64_t, ModelAnswer>& b, ChatModel& judge, JudgmentCache& cache,
                                      const std::filesystem::path& judgments_file);

// Every question answered (two turns), and no answer for a question not in the file; errors name them.
void check_answers_cover(const std::vector<MtQuestion>& qs, const std::map<int64_t, ModelAnswer>& answers,
                         const std::string& source);

}  // namespace chatmill::eval
