// MT-Bench's files (FastChat's llm_judge formats): questions, reference answers, judge prompts, model answers;
// judge-prompt filling and the parsing of judgments.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace chatmill::eval {

struct MtQuestion {
  int64_t id = 0;
  std::string category;
  std::vector<std::string> turns;  // two
};

struct JudgePrompt {
  std::string name, type, system_prompt, prompt_template, category, output_format;
};

struct ModelAnswer {
  int64_t question_id = 0;
  std::string answer_id, model_id;
  std::vector<std::string> turns;
  double tstamp = 0;
};

// Errors name file, line and field.
std::vector<MtQuestion> load_mt_questions(const std::filesystem::path& file);
std::map<std::string, JudgePrompt> load_judge_prompts(const std::filesystem::path& file);
// {question_id, answer_id, model_id, choices: [{index, turns}], tstamp} per line, by question id.
std::map<int64_t, ModelAnswer> load_model_answers(const std::filesystem::path& file);
void append_model_answer(const std::filesystem::path& file, const ModelAnswer& a);

// The categories whose questions are judged against reference answers (FastChat's NEED_REF_CATS).
bool needs_reference(const std::string& category);
// Generation temperature by category (FastChat's temperature_config): 0 = greedy.
double mt_bench_temperature(const std::string& category);

// Replaces every {field} of the template; a placeholder without a value is an error naming it and `where`.
std::string fill_template(const std::string& tmpl, const std::map<std::string, std::string>& fields, const std::string& where);

// Single grading: the first "[[n]]", else the first "[n]"; -1 when neither (the judgment is dropped).
double parse_rating(const std::string& judgment);
// Pairwise: 'A', 'B', 'C' (tie) from "[[A]]" / "[[B]]" / "[[C]]"; '?' when none.
char parse_verdict(const std::string& judgment);

}  // namespace chatmill::eval
