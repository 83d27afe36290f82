// chatmill eval: MMLU, and the registration of the other benchmarks and of sweeps.
#include <iostream>

#include "cli/commands.h"
#include "cli/eval_commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "eval/provenance.h"
#include "eval/suite.h"
#include "model/hf_checkpoint.h"

namespace chatmill::cli {

namespace {

struct MmluArgs {
  std::string model, tokenizer, out = "mmlu/results.json", dtype = "float32", device = "cpu";
  eval::MmluBench b;
  int threads = 0;
};

void run_mmlu(const MmluArgs& a) {
  set_threads(a.threads);
  model::Model m = model::load_hf_model(a.model, {model::parse_dtype(a.dtype), parse_device(a.device)});
  auto tok = model::resolve_tokenizer(a.model, a.tokenizer.empty() ? std::nullopt : std::optional<std::filesystem::path>(a.tokenizer));
  const auto r = eval::run_mmlu(m, tok, a.b, a.out,
                                {a.model, model::model_folder_name(a.model), "(none: MMLU scores raw prompts)", eval::model_hash(a.model)});
  std::cout << "MMLU " << a.b.shots << "-shot: micro " << r["micro_accuracy"].get<double>() << ", macro "
            << r["macro_accuracy"].get<double>() << " over " << r["questions"].get<int64_t>() << " questions; wrote " << a.out
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
  m->add_option("--data", mmlu->b.data, "MMLU folder: dev/ + test/ CSVs, or dev.jsonl + test.jsonl")->required();
  m->add_option("--tokenizer", mmlu->tokenizer, "default: MODEL/tokenizer.model");
  m->add_option("--shots", mmlu->b.shots)->capture_default_str();
  m->add_option("--variant", mmlu->b.variant, "original (two spaces after \"about\") | harness (one)")->capture_default_str();
  m->add_option("--max-length", mmlu->b.max_length, "context in tokens (0: the model's)");
  m->add_option("--batch-size", mmlu->b.batch_size)->capture_default_str();
  m->add_option("--out", mmlu->out, "results JSON; predictions JSONL beside it")->capture_default_str();
  m->add_option("--dtype", mmlu->dtype)->capture_default_str();
  m->add_option("--device", mmlu->device)->capture_default_str();
  m->add_option("--threads", mmlu->threads);
  m->callback([mmlu] { run_mmlu(*mmlu); });

  add_eval_chat_commands(eval);
}

}  // namespace chatmill::cli
