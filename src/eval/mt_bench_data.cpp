#include "eval/mt_bench_data.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "eval/jsonl.h"

namespace chatmill::eval {

namespace fs = std::filesystem;

namespace {

}  // namespace

std::vector<MtQuestion> load_mt_questions(const fs::path& file) {
  std::vector<MtQuestion> out;
  for_each_json_line(file, [&](const nlohmann::json& j, const std::string& where) {
    MtQuestion q;
    CHATMILL_CHECK(j.contains("question_id") && j["question_id"].is_number_integer(), where,
                   ": field 'question_id' is missing or not an integer");
    q.id = j["question_id"];
    q.category = json_string(j, "category", where + " (question " + std::to_string(q.id) + ")");
    CHATMILL_CHECK(j.contains("turns") && j["turns"].is_array() && !j["turns"].empty(), where, " (question ", q.id,
                   "): field 'turns' is missing or empty");
    for (const auto& t : j["turns"]) {
      CHATMILL_CHECK(t.is_string(), where, " (question ", q.id, "): every turn must be a string");
      q.turns.push_back(t);
    }
    out.push_back(std::move(q));
  });
  CHATMILL_CHECK(!out.empty(), "question file ", file, " is empty");
  return out;
}

std::map<std::string, JudgePrompt> load_judge_prompts(const fs::path& file) {
  std::map<std::string, JudgePrompt> out;
  for_each_json_line(file, [&](const nlohmann::json& j, const std::string& where) {
    JudgePrompt p{json_string(j, "name", where), json_string(j, "type", where), json_string(j, "system_prompt", where),
                  json_string(j, "prompt_template", where), json_string(j, "category", where),
                  json_string(j, "output_format", where)};
    out[p.name] = p;
  });
  return out;
}

std::map<int64_t, ModelAnswer> load_model_answers(const fs::path& file) {
  std::map<int64_t, ModelAnswer> out;
  if (!fs::exists(file)) return out;
  for_each_json_line(file, [&](const nlohmann::json& j, const std::string& where) {
    ModelAnswer a;
    CHATMILL_CHECK(j.contains("question_id") && j["question_id"].is_number_integer(), where,
                   ": field 'question_id' is missing or not an integer");
    a.question_id = j["question_id"];
    for (const char* key : {"answer_id", "model_id"})
      CHATMILL_CHECK(!j.contains(key) || j[key].is_string(), where, ": field '", key,
                     "' must be a string");
    CHATMILL_CHECK(!j.contains("tstamp") || j["tstamp"].is_number(), where,
                   ": field 'tstamp' must be a number");
    a.answer_id = j.value("answer_id", "");
    a.model_id = j.value("model_id", "");
    CHATMILL_CHECK(j.contains("choices") && j["choices"].is_array() && !j["choices"].empty() &&
                       j["choices"][0].contains("turns") && j["choices"][0]["turns"].is_array(),
                   where, " (question ", a.question_id, "): needs choices[0].turns");
    for (const auto& t : j["choices"][0]["turns"]) {
      CHATMILL_CHECK(t.is_string(), where, " (question ", a.question_id, "): every turn must be a string");
      a.turns.push_back(t);
    }
    a.tstamp = j.value("tstamp", 0.0);
    out[a.question_id] = std::move(a);  // a later line for the same question wins
  });
  return out;
}

void append_model_answer(const fs::path& file, const ModelAnswer& a) {
  if (file.has_parent_path()) fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::app);
  CHATMILL_CHECK(out, "cannot write ", file);
  nlohmann::ordered_json j = {{"question_id", a.question_id},
                              {"answer_id", a.answer_id},
                              {"model_id", a.model_id},
                              {"choices", {{{"index", 0}, {"turns", a.turns}}}},
                              {"tstamp", a.tstamp}};
  out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  out.flush();
}

bool needs_reference(const std::string& c) {
  return c == "math" || c == "reasoning" || c == "coding" || c == "arena-hard-200";
}

double mt_bench_temperature(const std::string& c) {
  if (c == "writing" || c == "roleplay") return 0.7;
  if (c == "extraction" || c == "math" || c == "coding" || c == "reasoning") return 0.0;
  if (c == "stem" || c == "humanities") return 0.1;
  return 0.7;
}

std::string fill_template(const std::string& tmpl, const std::map<std::string, std::string>& fields, const std::string& where) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    const size_t open = tmpl.find('{', i);
    if (open == std::string::npos) {
      out += tmpl.substr(i);
      break;
    }
    const size_t close = tmpl.find('}', open);
    const std::string key = close == std::string::npos ? "" : tmpl.substr(open + 1, close - open - 1);
    const bool is_field = !key.empty() && key.find_first_not_of("abcdefghijklmnopqrstuvwxyz_0123456789") == std::string::npos;
    if (!is_field) {  // literal braces (code in a template) stay as they are
      out += tmpl.substr(i, open + 1 - i);
      i = open + 1;
      continue;
    }
    auto it = fields.find(key);
    CHATMILL_CHECK(it != fields.end(), where, ": the judge prompt needs {", key, "}, which this question does not provide");
    out += tmpl.substr(i, open - i) + it->second;
    i = close + 1;
  }
  return out;
}

double parse_rating(const std::string& judgment) {
  static const std::regex two(R"(\[\[(\d+\.?\d*)\]\])"), one(R"(\[(\d+\.?\d*)\])");
  std::smatch m;
  if (!std::regex_search(judgment, m, two) && !std::regex_search(judgment, m, one)) return -1;
  // strtod, not stod: a judge's "[[1e999]]"-like digit run is out of range, which stod throws for.
  const double r = std::strtod(m[1].str().c_str(), nullptr);
  return std::isfinite(r) ? r : -1;
}

char parse_verdict(const std::string& judgment) {
  if (judgment.find("[[A]]") != std::string::npos) return 'A';
  if (judgment.find("[[B]]") != std::string::npos) return 'B';
  if (judgment.find("[[C]]") != std::string::npos) return 'C';
  return '?';
}

}  // namespace chatmill::eval
