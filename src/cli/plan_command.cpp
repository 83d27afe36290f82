// chatmill plan CONFIG.yaml [--world-size N] [--gpu-memory-gb G]: memory per rank, before launching.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/error.h"
#include "data/token_store.h"
#include "model/hf_checkpoint.h"
#include "model/tokenizer.h"
#include "train/plan.h"

namespace chatmill::cli {

namespace {

struct PlanArgs {
  std::string config;
  std::vector<std::string> overrides;
  int world = 1;
  double gib = 80;
  int64_t row_length = 0;
  bool json = false;
};

void run_plan(const PlanArgs& a) {
  auto cfg = train::TrainConfig::load(a.config, a.overrides);
  model::LlamaConfig m;
  if (!cfg.model.from.empty()) {
    CHATMILL_CHECK(std::filesystem::exists(std::filesystem::path(cfg.model.from) / "config.json"), "model.from ", cfg.model.from,
                   " has no config.json; to plan before downloading it, add the overrides: model.from= model.preset=7b");
    m = model::load_hf_config(std::filesystem::path(cfg.model.from) / "config.json");
  } else {
    m = model::preset_by_name(cfg.model.preset);
    if (!cfg.model.tokenizer.empty()) m.vocab_size = model::Tokenizer::load(cfg.model.tokenizer).vocab_size();
  }
  int64_t T = a.row_length;
  if (T <= 0) {
    CHATMILL_CHECK(std::filesystem::exists(cfg.data.store), "the store ", cfg.data.store,
                   " does not exist yet; give its row length with --row-length");
    T = data::TokenStore::open(cfg.data.store).meta().row_length;
  }
  const auto plan = train::plan_memory(m, cfg, a.world, T);
  if (a.json)
    std::cout << nlohmann::json{{"params_bytes", plan.params}, {"grads_bytes", plan.grads},
                                {"optimizer_bytes", plan.optimizer}, {"activations_bytes", plan.activations},
                                {"buffers_bytes", plan.buffers}, {"total_bytes", plan.total()}}
                     .dump()
              << "\n";
  else std::cout << train::format_plan(plan, m, cfg, a.world, a.gib);
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand("plan", "Memory per rank of a training recipe, and whether it fits");
  cmd->add_option("config", args->config, "YAML recipe")->required();
  cmd->add_option("overrides", args->overrides, "key.sub=value overrides");
  cmd->add_option("--world-size", args->world, "ranks (GPUs)")->capture_default_str();
  cmd->add_option("--gpu-memory-gb", args->gib, "memory of one device, GiB")->capture_default_str();
  cmd->add_option("--row-length", args->row_length, "tokens per row (default: the store's)");
  cmd->add_flag("--json", args->json, "print the numbers as JSON");
  cmd->callback([args] { run_plan(*args); });
}

}  // namespace chatmill::cli
