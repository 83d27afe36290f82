// chatmill eval: benchmarks on a model folder (mmlu, mt-bench).
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "eval/mmlu.h"
#include "eval/mt_bench.h"
#include "eval/provenance.h"
#include "model/hf_checkpoint.h"

namespace chatmill::cli {

namespace {

struct MmluArgs {
  std::string model, data, tokenizer, out = "mmlu/results.json", variant = "original", dtype = "float32", device = "cpu";
  int shots = 5;
  int64_t max_length = 0, batch_size = 8;
  int threads = 0;
};

void run_mmlu(const MmluArgs& a) {
  set_threads(a.threads);
  model::Model m = model::load_hf_model(a.model, {model::parse_dtype(a.dtype), parse_device(a.device)});
  auto tok = model::resolve_tokenizer(a.model, a.tokenizer.empty() ? std::nullopt : std::optional<std::filesystem::path>(a.tokenizer));
  eval::MmluData data = eval::load_mmlu(a.data);
  eval::MmluOptions o;
  o.shots = a.shots;
  o.variant = eval::parse_mmlu_variant(a.variant);
  o.max_length = a.max_length;
  o.batch_size = a.batch_size;
  auto r = eval::evaluate_mmlu(m, tok, data, o);
  r.summary["provenance"] = eval::provenance(a.model, data.files);
  eval::write_mmlu_results(r, a.out);
  std::cout << "MMLU " << a.shots << "-shot: micro " << r.summary["micro_accuracy"].get<double>() << ", macro "
            << r.summary["macro_accuracy"].get<double>() << " over " << r.predictions.size() << " questions; wrote " << a.out
            << "\n";
}

struct MtBenchArgs {
  std::string model, tokenizer, template_name = "vicuna_v1.1", model_id, questions, judge_prompts, reference;
  std::string out = "mt_bench", compare, dtype = "float32", device = "cpu";
  int64_t max_new_tokens = 1024, batch_size = 8, judge_max_tokens = 2048;
  uint64_t seed = 0;
  eval::HttpJudgeOptions http;
  std::string judge_local, judge_template = "vicuna_v1.1";
  int threads = 0;
};

void run_mt_bench(const MtBenchArgs& a) {
  set_threads(a.threads);
  namespace fs = std::filesystem;
  CHATMILL_CHECK(a.http.base_url.empty() != a.judge_local.empty(), "give one judge: --judge-url (with --judge-model) or --judge-local DIR");
  eval::JudgeInputs in;
  in.questions = eval::load_mt_questions(a.questions);
  in.prompts = eval::load_judge_prompts(a.judge_prompts);
  if (!a.reference.empty()) in.references = eval::load_references(a.reference);
  in.judge_max_tokens = a.judge_max_tokens;
  const std::string model_id = a.model_id.empty() ? fs::path(a.model).filename().string() : a.model_id;
  const fs::path out(a.out);
  const fs::path answers_file = out / "answers" / (model_id + ".jsonl");

  // 1. Answers (resumable: questions already answered are kept).
  {
    model::Model m = model::load_hf_model(a.model, {model::parse_dtype(a.dtype), parse_device(a.device)});
    auto tok = model::resolve_tokenizer(a.model, a.tokenizer.empty() ? std::nullopt : std::optional<fs::path>(a.tokenizer));
    eval::AnswerOptions o;
    o.tmpl = data::ChatTemplate::by_name(a.template_name);
    o.model_id = model_id;
    o.max_new_tokens = a.max_new_tokens;
    o.batch_size = a.batch_size;
    o.seed = a.seed;
    const int64_t made = eval::generate_mt_answers(m, tok, in.questions, o, answers_file);
    std::cout << "answers: " << made << " generated, " << in.questions.size() - made << " already in " << answers_file << "\n";
  }
  auto answers = eval::load_model_answers(answers_file);
  eval::check_answers_cover(in.questions, answers, answers_file.string());

  // 2. The judge.
  std::optional<model::Model> judge_model;
  std::optional<model::Tokenizer> judge_tok;
  std::unique_ptr<eval::Judge> judge;
  if (!a.judge_local.empty()) {
    judge_model.emplace(model::load_hf_model(a.judge_local, {model::parse_dtype(a.dtype), parse_device(a.device)}));
    judge_tok.emplace(model::resolve_tokenizer(a.judge_local, std::nullopt));
    judge = eval::make_local_judge(*judge_model, *judge_tok, data::ChatTemplate::by_name(a.judge_template),
                                   "local:" + fs::path(a.judge_local).filename().string(), a.batch_size);
  } else {
    judge = eval::make_http_judge(a.http);
  }
  eval::JudgmentCache cache(out / "judgments_cache.jsonl");
  const fs::path judgments = out / "judgments.jsonl";
  fs::remove(judgments);  // this run's judgments; the cache keeps every run's

  // 3. Judge: single grading, or pairwise against another model's answers.
  nlohmann::ordered_json res;
  if (a.compare.empty()) {
    res = eval::judge_single(in, answers, *judge, cache, judgments);
  } else {
    auto other = eval::load_model_answers(a.compare);
    eval::check_answers_cover(in.questions, other, a.compare);
    res = eval::judge_pairwise(in, answers, other, *judge, cache, judgments);
  }
  std::vector<fs::path> files = {a.questions, a.judge_prompts};
  if (!a.reference.empty()) files.push_back(a.reference);
  res["provenance"] = eval::provenance(a.model, files);
  res["settings"] = {{"template", a.template_name}, {"max_new_tokens", a.max_new_tokens}, {"seed", a.seed},
                     {"judge_temperature", 0.0}, {"judge_max_tokens", a.judge_max_tokens}};
  std::ofstream(out / "results.json") << res.dump(2) << "\n";
  std::cout << res.dump(2) << "\nwrote " << (out / "results.json").string() << "\n";
}

}  // namespace

void add_eval_command(CLI::App& app) {
  CLI::App* eval = app.add_subcommand("eval", "Evaluate models: MMLU, ...");
  eval->require_subcommand(1);
  auto mmlu = std::make_shared<MmluArgs>();
  CLI::App* m = eval->add_subcommand("mmlu", "MMLU k-shot (hendrycks/test protocol)");
  m->add_option("--model", mmlu->model, "HF model folder")->required();
  m->add_option("--data", mmlu->data, "MMLU folder: dev/ + test/ CSVs, or dev.jsonl + test.jsonl")->required();
  m->add_option("--tokenizer", mmlu->tokenizer, "default: MODEL/tokenizer.model");
  m->add_option("--shots", mmlu->shots)->capture_default_str();
  m->add_option("--variant", mmlu->variant, "original (two spaces after \"about\") | harness (one)")->capture_default_str();
  m->add_option("--max-length", mmlu->max_length, "context in tokens (0: the model's)");
  m->add_option("--batch-size", mmlu->batch_size)->capture_default_str();
  m->add_option("--out", mmlu->out, "results JSON; predictions JSONL beside it")->capture_default_str();
  m->add_option("--dtype", mmlu->dtype)->capture_default_str();
  m->add_option("--device", mmlu->device)->capture_default_str();
  m->add_option("--threads", mmlu->threads);
  m->callback([mmlu] { run_mmlu(*mmlu); });

  auto mt = std::make_shared<MtBenchArgs>();
  CLI::App* t = eval->add_subcommand("mt-bench", "MT-Bench answers and LLM-judge grading (single, or pairwise with --compare)");
  t->add_option("--model", mt->model, "HF model folder under test")->required();
  t->add_option("--tokenizer", mt->tokenizer, "default: MODEL/tokenizer.model");
  t->add_option("--template", mt->template_name, "the model's chat template: vicuna_v1.1 | llama-2")->capture_default_str();
  t->add_option("--model-id", mt->model_id, "name in the answer file (default: the folder's name)");
  t->add_option("--questions", mt->questions, "question.jsonl")->required();
  t->add_option("--judge-prompts", mt->judge_prompts, "judge_prompts.jsonl")->required();
  t->add_option("--reference", mt->reference, "reference answers (math, reasoning, coding)");
  t->add_option("--compare", mt->compare, "another model's answer file: judge pairwise, both orders");
  t->add_option("--out", mt->out, "folder: answers/, judgments.jsonl, judgments_cache.jsonl, results.json")->capture_default_str();
  t->add_option("--max-new-tokens", mt->max_new_tokens)->capture_default_str();
  t->add_option("--batch-size", mt->batch_size)->capture_default_str();
  t->add_option("--seed", mt->seed)->capture_default_str();
  t->add_option("--judge-url", mt->http.base_url, "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1");
  t->add_option("--judge-model", mt->http.model, "the judge's model name at that endpoint");
  t->add_option("--judge-api-key-env", mt->http.api_key_env, "environment variable holding the API key");
  t->add_option("--judge-timeout", mt->http.timeout_s, "seconds per request")->capture_default_str();
  t->add_option("--judge-retries", mt->http.retries)->capture_default_str();
  t->add_option("--judge-backoff", mt->http.backoff_s, "seconds before the first retry; doubles each time")->capture_default_str();
  t->add_option("--judge-concurrency", mt->http.concurrency)->capture_default_str();
  t->add_option("--judge-max-tokens", mt->judge_max_tokens)->capture_default_str();
  t->add_option("--judge-local", mt->judge_local, "or a local HF model folder as the judge");
  t->add_option("--judge-template", mt->judge_template, "the local judge's chat template")->capture_default_str();
  t->add_option("--dtype", mt->dtype)->capture_default_str();
  t->add_option("--device", mt->device)->capture_default_str();
  t->add_option("--threads", mt->threads);
  t->callback([mt] { run_mt_bench(*mt); });
}

}  // namespace chatmill::cli
