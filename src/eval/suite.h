// A set of benchmarks run on one model — after training (a train config's `eval:` section, on the weights in
// memory) or offline (`chatmill eval CONFIG` over checkpoints). Each benchmark writes its files under
// OUT/<benchmark>/ and returns its summary with provenance (model hash, file hashes, settings, judge).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/yaml_config.h"
#include "data/chat_template.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace chatmill::eval {

struct MmluBench {
  std::string data;  // folder: dev/ + test/ CSVs, or dev.jsonl + test.jsonl
  int shots = 5;
  std::string variant = "original";
  int64_t max_length = 0, batch_size = 8;
};

struct MtBenchBench {
  std::string questions, judge_prompts, reference;
  std::string judge;    // chat model spec (eval/chat_spec.h): a folder, or url=...,model=...; "self": the model
                        // under test judges itself (a smoke test of the pipeline, not a score)
  std::string compare;  // optional: another model's answer file -> pairwise
  int64_t max_new_tokens = 1024, judge_max_tokens = 2048;
  uint64_t seed = 0;
};

struct ModerationBench {
  std::string set, prompt;  // labelled JSONL; the moderation prompt file
  std::string shots_file;   // labelled JSONL with explanations; the first `shots` are the examples
  std::vector<int64_t> shots = {0};  // run once per value (the paper: 0 and 1)
  int64_t max_tokens = 256;
};

struct JailbreakBench {
  std::string set, moderation_prompt;
  std::string moderator;  // chat model spec; "self": the model under test (pipeline smoke tests only)
  int64_t max_tokens = 512;
};

struct EvalSuite {
  std::string template_name = "vicuna_v1.1";  // the model's chat template
  int64_t batch_size = 8;                     // generation batch of the model under test
  int64_t every_steps = 0;                    // train only: also every N steps (0: only at the end)
  std::optional<MmluBench> mmlu;
  std::optional<MtBenchBench> mt_bench;
  std::optional<ModerationBench> moderation;
  std::optional<JailbreakBench> jailbreak;
  bool empty() const { return !mmlu && !mt_bench && !moderation && !jailbreak; }
};

// Reads the mapping `y` (keys: template, batch_size, every_steps, mmlu, mt_bench, moderation, jailbreak);
// problems go to y's error list with file and line. Relative paths stay as written (relative to the cwd).
EvalSuite read_eval_suite(YamlObject& y);
nlohmann::ordered_json eval_suite_json(const EvalSuite& s);

struct ModelUnderTest {
  const model::Model& model;
  const model::Tokenizer& tokenizer;
  std::string name;                  // recorded with results and used as the answer files' model_id
  std::filesystem::path dir;         // the folder it was loaded from (hashed); empty: weights in memory
  // Optional, polled between benchmarks, MMLU batches and generation steps: true stops the suite with
  // chatmill::Interrupted (a stop signal during training's evaluation; the results so far are not kept).
  std::function<bool()> stop = {};
};

// `chatmill eval CONFIG`: checkpoints (paths or globs) x the suite, one report.
struct SweepConfig {
  std::vector<std::string> checkpoints;
  std::string output_dir = "eval", dtype = "float32", device = "cpu", tokenizer, title = "chatmill evaluation";
  int threads = 0;
  EvalSuite suite;
};
// Throws chatmill::Error listing every problem with file and line.
SweepConfig load_sweep_config(const std::string& file, const std::vector<std::string>& overrides = {});

// What results record about the model under test.
struct RunInfo {
  std::filesystem::path model_dir;  // hashed into the provenance; empty: weights in memory
  std::string model_name;
  std::string template_name;
  std::string model_sha256;         // model_hash(model_dir), computed once by whoever makes the RunInfo
};

class ChatModel;

// One benchmark each: files under `dir`, the summary (with provenance and settings) returned.
// MMLU writes `out_json` and the predictions beside it.
nlohmann::ordered_json run_mmlu(const model::Model& m, const model::Tokenizer& tok, const MmluBench& b,
                                const std::filesystem::path& out_json, const RunInfo& info,
                                const std::function<bool()>& stop = {});
// `stop` (optional): polled by a judge or moderator other than `model` between slices of its requests (`model`
// itself polls its own, make_local_chat).
nlohmann::ordered_json run_mt_bench(ChatModel& model, const MtBenchBench& b, const std::filesystem::path& dir, const RunInfo& info,
                                    const std::function<bool()>& stop = {});
nlohmann::ordered_json run_moderation(ChatModel& model, const ModerationBench& b, const std::filesystem::path& dir,
                                      const RunInfo& info);
nlohmann::ordered_json run_jailbreak(ChatModel& model, const JailbreakBench& b, const std::filesystem::path& dir,
                                     const RunInfo& info, const std::function<bool()>& stop = {});

// Runs every benchmark of `s`; OUT/<benchmark>/... and returns {"mmlu": {...}, "mt_bench": {...}, ...}.
nlohmann::ordered_json run_eval_suite(const ModelUnderTest& m, const EvalSuite& s, const std::filesystem::path& out);

}  // namespace chatmill::eval
