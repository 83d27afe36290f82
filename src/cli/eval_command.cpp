// chatmill eval: MMLU, and the registration of the other benchmarks and of sweeps.
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/eval_commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "eval/mmlu.h"
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

}  // namespace

void add_eval_command(CLI::App& app) {
  CLI::App* eval = app.add_subcommand(
      "eval", "Evaluate models: `chatmill eval CONFIG.yaml [key=value ...]` runs checkpoints x benchmarks and writes "
              "a report; the subcommands run one benchmark");
  auto sweep = std::make_shared<std::vector<std::string>>();
  eval->add_option("config", *sweep, "sweep config (YAML), then key.sub=value overrides");
  eval->require_subcommand(0, 1);
  eval->callback([eval, sweep] {
    if (!eval->get_subcommands().empty()) return;
    CHATMILL_CHECK(!sweep->empty(), "chatmill eval needs a config file (chatmill eval CONFIG.yaml) or a subcommand: ",
                   "mmlu, mt-bench, moderation, jailbreak, arena-hard");
    run_eval_sweep(sweep->front(), std::vector<std::string>(sweep->begin() + 1, sweep->end()));
  });
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

  add_eval_chat_commands(eval);
}

}  // namespace chatmill::cli
