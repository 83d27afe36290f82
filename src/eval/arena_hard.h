// Arena-Hard prompt rating (paper §4.4): raters (chat models) score each prompt 1..10 with a rubric prompt (a
// data file with {prompt}); a prompt is kept when every rater gives at least the threshold. Validation: a strong
// and a weak model answer the top-N and bottom-N prompts by mean score, and a judge compares them pairwise in
// both orders (MT-Bench's pair-v2 prompt): win/tie/loss rates of the strong model on each group.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/chat_model.h"
#include "eval/mt_bench.h"

namespace chatmill::eval {

struct ArenaPrompt {
  std::string id, text;
};

// JSON Lines {"prompt_id", "prompt"} (the data builder's arena_hard_candidates.jsonl).
std::vector<ArenaPrompt> load_arena_prompts(const std::filesystem::path& file);

struct PromptRating {
  ArenaPrompt prompt;
  std::vector<double> scores;  // one per rater; -1 when the rating could not be read
  double mean() const;         // over the readable scores; -1 when none
};

// Every prompt rated by every rater (cached by prompt, rater and rubric, so reruns ask nothing twice).
std::vector<PromptRating> rate_prompts(const std::vector<ChatModel*>& raters, const std::vector<ArenaPrompt>& prompts,
                                       const std::string& rubric, JudgmentCache& cache, int64_t max_tokens = 512);

// The prompts every rater scored >= threshold, in input order.
std::vector<PromptRating> select_agreed(const std::vector<PromptRating>& ratings, double threshold);

struct TopBottomOptions {
  int64_t top_n = 50, bottom_n = 50;
  double top_above = 8, bottom_below = 2;  // mean score strictly above / below (the paper's > 8 and < 2)
  int64_t max_tokens = 1024;               // per answer, greedy
};

// Answers (in out_dir/answers/) and pairwise judgments of the strong vs the weak model on both groups.
nlohmann::ordered_json validate_top_bottom(const std::vector<PromptRating>& ratings, ChatModel& strong, ChatModel& weak,
                                           ChatModel& judge, const std::map<std::string, JudgePrompt>& judge_prompts,
                                           JudgmentCache& cache, const std::filesystem::path& out_dir,
                                           const TopBottomOptions& o);

}  // namespace chatmill::eval
