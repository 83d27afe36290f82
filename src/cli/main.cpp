// chatmill: one binary, one subcommand per job.
#include <iostream>

#include "cli/commands.h"
#include "common/error.h"

int main(int argc, char** argv) {
  CLI::App app{"chatmill: chat logs to fine-tuned, evaluated Llama models"};
  app.require_subcommand(1);
  chatmill::cli::add_generate_command(app);
  chatmill::cli::add_convert_command(app);
  chatmill::cli::add_init_command(app);
  chatmill::cli::add_data_command(app);
  chatmill::cli::add_train_command(app);
  chatmill::cli::add_plan_command(app);
  chatmill::cli::add_eval_command(app);
  chatmill::cli::add_serve_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const chatmill::Error& e) {
    std::cerr << "chatmill: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "chatmill: internal error: " << e.what_without_backtrace() << "\n";
    return 3;
  } catch (const std::exception& e) {  // a library's own exception that no check turned into an Error
    std::cerr << "chatmill: internal error: " << e.what() << "\n";
    return 3;
  }
  return 0;
}
