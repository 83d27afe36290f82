// The `chatmill eval` subcommands, registered by add_eval_command.
#pragma once
#include <CLI/CLI.hpp>

namespace chatmill::cli {

void add_eval_chat_commands(CLI::App* eval);  // mt-bench, moderation, jailbreak, arena-hard
// `chatmill eval CONFIG.yaml`: checkpoints x benchmarks, and the report.
void run_eval_sweep(const std::string& config, const std::vector<std::string>& overrides);

}  // namespace chatmill::cli
