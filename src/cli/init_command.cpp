// chatmill init: a freshly initialised model folder from a preset (tests, demos, benchmarks).
#include <ATen/ATen.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "model/hf_checkpoint.h"
#include "model/tokenizer.h"

namespace chatmill::cli {

namespace {

struct InitArgs {
  std::string preset = "debug";
  std::string out;
  uint64_t seed = 0;
  double std = 0.02;
  std::string dtype = "float32";
  std::string tokenizer;
  bool overwrite = false;
};

void run_init(const InitArgs& a) {
  model::LlamaConfig cfg = model::preset_by_name(a.preset);
  model::SaveOptions save;
  save.dtype = model::parse_dtype(a.dtype);
  save.overwrite = a.overwrite;
  if (!a.tokenizer.empty()) {
    model::Tokenizer tok = model::Tokenizer::load(a.tokenizer);
    cfg.vocab_size = tok.vocab_size();  // the embedding matches the tokenizer it ships with
    cfg.bos_token_id = tok.bos_id();
    cfg.eos_token_ids = {tok.eos_id()};
    save.tokenizer_model = a.tokenizer;
  }
  cfg.validate();
  model::Model m(cfg, model::init_weights(cfg, a.std, a.seed, save.dtype, at::kCPU));
  model::save_hf_model(m, a.out, save);
  std::cout << "wrote " << a.out << " (preset " << a.preset << ", " << cfg.num_parameters() << " parameters, seed "
            << a.seed << ")\n";
}

}  // namespace

void add_init_command(CLI::App& app) {
  auto args = std::make_shared<InitArgs>();
  CLI::App* cmd = app.add_subcommand("init", "Write a randomly initialised model folder from a preset");
  cmd->add_option("--preset", args->preset, "debug | tiny | 7b | 13b | 70b")->capture_default_str();
  cmd->add_option("--out", args->out, "Output folder")->required();
  cmd->add_option("--seed", args->seed, "Initialisation seed")->capture_default_str();
  cmd->add_option("--std", args->std, "Std of the normal init of matrices (HF: 0.02)")->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "float32 | bfloat16 | float16")->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.model to ship (sets the vocabulary size)");
  cmd->add_flag("--overwrite", args->overwrite, "Replace the output folder if it exists");
  cmd->callback([args] { run_init(*args); });
}

}  // namespace chatmill::cli
