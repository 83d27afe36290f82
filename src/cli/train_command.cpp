// chatmill train CONFIG.yaml [key.sub=value ...]: fine-tuning, on one process or as one rank of many.
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/stop_signals.h"
#include "train/trainer.h"

namespace chatmill::cli {

namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  int threads = 0;
};

void run_train(const TrainArgs& a) {
  set_threads(a.threads);
  auto cfg = train::TrainConfig::load(a.config, a.overrides);
  // The launcher's variables are read here, once, and passed down.
  auto env = train::dist_env_from_environment();
  const StopSignals signals;
  // A peer rank that died leaves a closed socket: Gloo writes to it with writev, and the default SIGPIPE would
  // end this rank silently (no message, seen once in train_cli's dead-rank check). Ignored, as Python (torchrun)
  // ignores it, the write fails with EPIPE and the collective's clear error names the failure.
  std::signal(SIGPIPE, SIG_IGN);
  auto s = train::run_training(cfg, env, [&] { return signals.received() != 0; });
  if (env.rank == 0)
    std::cout << "trained " << s.steps - s.first_step << " steps (" << s.steps << " in all); loss " << s.first_loss
              << " -> " << s.last_loss << (s.skipped_steps ? "; skipped " + std::to_string(s.skipped_steps) + " non-finite steps" : "")
              << "\nmodel: " << (s.final_checkpoint / "model").string() << std::endl;
  // Stopped by a signal (any rank's): the shell's code for it, so that schedulers and scripts see an unfinished run.
  if (s.stopped) std::exit(128 + (signals.received() ? signals.received() : SIGTERM));
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Fine-tune a Llama model from a YAML recipe (see configs/train/)");
  cmd->add_option("config", args->config, "YAML recipe")->required();
  cmd->add_option("overrides", args->overrides, "key.sub=value overrides, e.g. optimizer.lr=1e-4 checkpoint.resume=true");
  cmd->add_option("--threads", args->threads, "CPU threads (0 = LibTorch's default)");
  cmd->callback([args] { run_train(*args); });
}

}  // namespace chatmill::cli
