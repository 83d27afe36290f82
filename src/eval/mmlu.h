// MMLU k-shot evaluation as hendrycks/test's evaluate.py runs it: for each test question, the first k dev
// questions of its subject with their answers, then the question ending at "Answer:"; k drops while the prompt
// is longer than the context; the prediction is the letter whose token scores highest next.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "model/transformer.h"

namespace chatmill::eval {

struct MmluItem {
  std::string subject;
  int64_t index = 0;  // 0-based row in its file
  std::string question;
  std::array<std::string, 4> choices;
  int answer = 0;     // 0..3 = A..D
};

struct MmluData {
  std::map<std::string, std::vector<MmluItem>> dev, test;  // by subject, in file order
  std::vector<std::filesystem::path> files;                // for the results' hashes
};

// DIR/dev/<subject>_dev.csv + DIR/test/<subject>_test.csv (the original layout), or DIR/dev.jsonl +
// DIR/test.jsonl with {"subject", "question", "choices": [4 strings], "answer": 0..3 or "A".."D"} per line
// (HF cais/mmlu exported; scripts/mmlu_parquet_to_jsonl.py makes them from its parquet files). Malformed rows
// are errors naming file and line.
MmluData load_mmlu(const std::filesystem::path& dir);

// original: "about  abstract algebra." (evaluate.py's subject formatting puts two spaces); harness: one space.
enum class MmluVariant { Original, Harness };
MmluVariant parse_mmlu_variant(const std::string& s);

std::string mmlu_prompt(const std::vector<MmluItem>& dev, const MmluItem& item, int shots, MmluVariant variant);

struct MmluOptions {
  int shots = 5;
  MmluVariant variant = MmluVariant::Original;
  int64_t max_length = 0;  // tokens; 0 = the model's max_position_embeddings
  int64_t batch_size = 8;
  std::function<bool()> stop;  // optional, polled before each batch: true throws chatmill::Interrupted
};

struct MmluPrediction {
  std::string subject;
  int64_t index = 0;
  int prediction = 0, answer = 0, shots = 0;
  std::array<float, 4> scores{};  // logits of the four answer tokens
};

struct MmluResults {
  std::vector<MmluPrediction> predictions;
  nlohmann::ordered_json summary;  // micro, macro, per subject and category, settings
};

// The token scored for each letter: the last id of tokenizer.encode(letter) (evaluate.py's
// tokenizer("A").input_ids[-1]); for Llama that is the piece "▁A".
std::array<int64_t, 4> mmlu_answer_ids(const model::Tokenizer& tok);

MmluResults evaluate_mmlu(const model::Model& m, const model::Tokenizer& tok, const MmluData& data, const MmluOptions& o);

// results.json, and predictions.jsonl beside it ({subject, index, prediction, answer, correct, shots, scores}).
void write_mmlu_results(const MmluResults& r, const std::filesystem::path& out_json);

}  // namespace chatmill::eval
