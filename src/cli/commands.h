// Each subcommand registers its options and its action on the top-level CLI11 app.
#pragma once
#include <CLI/CLI.hpp>

namespace chatmill::cli {

void add_generate_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_init_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_serve_command(CLI::App& app);

}  // namespace chatmill::cli
