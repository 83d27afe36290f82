#include "eval/mmlu.h"

#include <fstream>

#include "common/error.h"
#include "common/interrupted.h"
#include "eval/csv.h"
#include "eval/jsonl.h"
#include "eval/mmlu_subjects.h"
#include "model/score.h"

namespace chatmill::eval {

namespace fs = std::filesystem;

namespace {

const char kLetters[] = {'A', 'B', 'C', 'D'};

int letter_index(const std::string& s) {
  if (s.size() == 1 && s[0] >= 'A' && s[0] <= 'D') return s[0] - 'A';
  return -1;
}

void load_csv_split(const fs::path& dir, const std::string& split, MmluData& data,
                    std::map<std::string, std::vector<MmluItem>>& out) {
  const std::string suffix = "_" + split + ".csv";
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir / split)) {
    const std::string name = e.path().filename().string();
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const std::string name = f.filename().string();
    const std::string subject = name.substr(0, name.size() - suffix.size());
    int64_t index = 0;
    for (const auto& row : read_csv(f)) {
      CHATMILL_CHECK(row.fields.size() == 6, f.string(), ":", row.line, ": an MMLU row has 6 fields (question, A, B, C, D, ",
                     "answer), this one has ", row.fields.size());
      const int ans = letter_index(row.fields[5]);
      CHATMILL_CHECK(ans >= 0, f.string(), ":", row.line, ": answer '", row.fields[5], "' is not A, B, C or D (question: ",
                     row.fields[0].substr(0, 60), ")");
      out[subject].push_back({subject, index++, row.fields[0], {row.fields[1], row.fields[2], row.fields[3], row.fields[4]}, ans});
    }
    data.files.push_back(f);
  }
}

void load_jsonl_split(const fs::path& file, MmluData& data, std::map<std::string, std::vector<MmluItem>>& out) {
  std::map<std::string, int64_t> next_index;
  for_each_json_line(file, [&](const nlohmann::json& j, const std::string& where) {
    CHATMILL_CHECK(j.contains("subject") && j["subject"].is_string() && j.contains("question") &&
                       j["question"].is_string() && j.contains("choices") && j["choices"].is_array() &&
                       j["choices"].size() == 4 && j.contains("answer"),
                   where, ": an MMLU record needs subject, question, choices (4) and answer");
    MmluItem item;
    item.subject = j["subject"];
    item.question = j["question"];
    for (int k = 0; k < 4; ++k) {
      CHATMILL_CHECK(j["choices"][k].is_string(), where, ": choice ", k, " is not a string");
      item.choices[k] = j["choices"][k];
    }
    if (j["answer"].is_number_integer()) item.answer = j["answer"].get<int>();
    else if (j["answer"].is_string()) item.answer = letter_index(j["answer"].get<std::string>());
    else item.answer = -1;
    CHATMILL_CHECK(item.answer >= 0 && item.answer < 4, where, ": answer must be 0..3 or A..D, got ", j["answer"].dump());
    item.index = next_index[item.subject]++;
    out[item.subject].push_back(std::move(item));
  });
  data.files.push_back(file);
}

}  // namespace

MmluData load_mmlu(const fs::path& dir) {
  MmluData d;
  if (fs::is_directory(dir / "dev") && fs::is_directory(dir / "test")) {
    load_csv_split(dir, "dev", d, d.dev);
    load_csv_split(dir, "test", d, d.test);
  } else if (fs::exists(dir / "dev.jsonl") && fs::exists(dir / "test.jsonl")) {
    load_jsonl_split(dir / "dev.jsonl", d, d.dev);
    load_jsonl_split(dir / "test.jsonl", d, d.test);
  } else {
    CHATMILL_FAIL("MMLU folder ", dir, " has neither dev/ and test/ (the original CSV layout) nor dev.jsonl and test.jsonl");
  }
  CHATMILL_CHECK(!d.test.empty(), "MMLU folder ", dir, " has no test questions");
  for (const auto& [subject, items] : d.test)
    CHATMILL_CHECK(d.dev.count(subject), "MMLU subject '", subject, "' has test questions but no dev questions for its ",
                   "shots: ", fs::is_directory(dir / "dev") ? dir / "dev" / (subject + "_dev.csv") : dir / "dev.jsonl",
                   " has none");
  return d;
}

MmluVariant parse_mmlu_variant(const std::string& s) {
  if (s == "original") return MmluVariant::Original;
  if (s == "harness") return MmluVariant::Harness;
  CHATMILL_FAIL("unknown MMLU prompt variant '", s, "'; use original or harness");
}

namespace {

std::string format_example(const MmluItem& item, bool with_answer) {
  std::string s = item.question;
  for (int k = 0; k < 4; ++k) s += std::string("\n") + kLetters[k] + ". " + item.choices[k];
  s += "\nAnswer:";
  if (with_answer) s += std::string(" ") + kLetters[item.answer] + "\n\n";
  return s;
}

}  // namespace

std::string mmlu_prompt(const std::vector<MmluItem>& dev, const MmluItem& item, int shots, MmluVariant variant) {
  std::string subject;
  for (char c : item.subject) subject += c == '_' ? ' ' : c;
  // evaluate.py's format_subject prefixes every word with a space, hence two spaces after "about".
  std::string s = std::string("The following are multiple choice questions (with answers) about ") +
                  (variant == MmluVariant::Original ? " " : "") + subject + ".\n\n";
  for (int i = 0; i < shots && i < static_cast<int>(dev.size()); ++i) s += format_example(dev[i], true);
  return s + format_example(item, false);
}

std::array<int64_t, 4> mmlu_answer_ids(const model::Tokenizer& tok) {
  std::array<int64_t, 4> ids{};
  for (int k = 0; k < 4; ++k) ids[k] = tok.encode(std::string(1, kLetters[k]), false).back();
  return ids;
}

MmluResults evaluate_mmlu(const model::Model& m, const model::Tokenizer& tok, const MmluData& data, const MmluOptions& o) {
  const int64_t max_len = o.max_length > 0 ? o.max_length : m.config.max_position_embeddings;
  const auto answer_ids = mmlu_answer_ids(tok);
  MmluResults r;
  // Build every prompt first (k shrinking while too long), then score them in batches.
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& [subject, items] : data.test) {
    const auto& dev = data.dev.at(subject);
    for (const auto& item : items) {
      int k = o.shots;
      std::vector<int64_t> ids = tok.encode(mmlu_prompt(dev, item, k, o.variant), true);
      while (static_cast<int64_t>(ids.size()) > max_len && k > 0) ids = tok.encode(mmlu_prompt(dev, item, --k, o.variant), true);
      CHATMILL_CHECK(static_cast<int64_t>(ids.size()) <= max_len, "MMLU ", subject, " question ", item.index, " alone is ",
                     ids.size(), " tokens, longer than the context of ", max_len);
      prompts.push_back(std::move(ids));
      r.predictions.push_back({subject, item.index, 0, item.answer, k, {}});
    }
  }
  at::Tensor idx = at::tensor(std::vector<int64_t>(answer_ids.begin(), answer_ids.end()), at::kLong);
  for (size_t start = 0; start < prompts.size(); start += static_cast<size_t>(o.batch_size)) {
    if (o.stop && o.stop())
      throw Interrupted("MMLU stopped as asked after " + std::to_string(start) + " of " +
                        std::to_string(prompts.size()) + " questions");
    const size_t end = std::min(prompts.size(), start + static_cast<size_t>(o.batch_size));
    std::vector<std::vector<int64_t>> batch(prompts.begin() + start, prompts.begin() + end);
    at::Tensor scores = model::next_token_logits(m, batch).index_select(1, idx.to(m.device())).to(at::kCPU);  // (b, 4)
    for (size_t i = start; i < end; ++i) {
      auto& p = r.predictions[i];
      for (int k = 0; k < 4; ++k) p.scores[k] = scores[i - start][k].item<float>();
      p.prediction = static_cast<int>(std::max_element(p.scores.begin(), p.scores.end()) - p.scores.begin());
    }
  }
  // Aggregates: micro over all questions, macro over subjects, and per subject and category.
  std::map<std::string, std::pair<int64_t, int64_t>> by_subject, by_category;  // correct, total
  int64_t correct = 0;
  for (const auto& p : r.predictions) {
    const bool ok = p.prediction == p.answer;
    correct += ok;
    by_subject[p.subject].first += ok;
    by_subject[p.subject].second += 1;
    by_category[mmlu_category(p.subject)].first += ok;
    by_category[mmlu_category(p.subject)].second += 1;
  }
  nlohmann::ordered_json subjects, categories;
  double macro = 0;
  for (const auto& [s, ct] : by_subject) {
    const double acc = static_cast<double>(ct.first) / static_cast<double>(ct.second);
    subjects[s] = {{"accuracy", acc}, {"correct", ct.first}, {"total", ct.second}, {"category", mmlu_category(s)}};
    macro += acc;
  }
  for (const auto& [c, ct] : by_category)
    categories[c] = {{"accuracy", static_cast<double>(ct.first) / static_cast<double>(ct.second)}, {"total", ct.second}};
  r.summary = {{"benchmark", "mmlu"},
               {"micro_accuracy", static_cast<double>(correct) / static_cast<double>(r.predictions.size())},
               {"macro_accuracy", macro / static_cast<double>(by_subject.size())},
               {"questions", r.predictions.size()},
               {"subjects", subjects},
               {"categories", categories},
               {"settings",
                {{"shots", o.shots}, {"variant", o.variant == MmluVariant::Original ? "original" : "harness"},
                 {"max_length", max_len}, {"answer_token_ids", answer_ids},
                 {"answer_tokens", {tok.piece(answer_ids[0]), tok.piece(answer_ids[1]), tok.piece(answer_ids[2]), tok.piece(answer_ids[3])}}}}};
  return r;
}

void write_mmlu_results(const MmluResults& r, const fs::path& out_json) {
  if (out_json.has_parent_path()) fs::create_directories(out_json.parent_path());
  std::ofstream(out_json) << r.summary.dump(2) << "\n";
  fs::path preds = out_json;
  preds.replace_extension("");
  std::ofstream out(preds.string() + "_predictions.jsonl");
  for (const auto& p : r.predictions) {
    nlohmann::ordered_json j = {{"subject", p.subject}, {"index", p.index},
                                {"prediction", std::string(1, kLetters[p.prediction])},
                                {"answer", std::string(1, kLetters[p.answer])}, {"correct", p.prediction == p.answer},
                                {"shots", p.shots}, {"scores", p.scores}};
    out << j.dump() << "\n";
  }
}

}  // namespace chatmill::eval
