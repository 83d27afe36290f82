// chatmill convert: HF folder or llama2.c checkpoint -> HF folder (dtype, sharding).
#include <ATen/ATen.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "model/hf_checkpoint.h"
#include "model/llama2c.h"

namespace chatmill::cli {

namespace {

struct ConvertArgs {
  std::string model_dir;
  std::string llama2c;
  std::string out;
  std::string dtype;
  std::string max_shard = "5GB";
  std::string tokenizer;
  bool overwrite = false;
};

void run_convert(const ConvertArgs& a) {
  CHATMILL_CHECK(a.model_dir.empty() != a.llama2c.empty(), "give either --model DIR or --llama2c FILE");
  model::SaveOptions save;
  save.max_shard_bytes = parse_size(a.max_shard);
  save.overwrite = a.overwrite;
  if (!a.tokenizer.empty()) save.tokenizer_model = a.tokenizer;

  std::optional<model::Model> m;
  if (!a.model_dir.empty()) {
    // Keep the source dtype unless asked otherwise: read config.json's dtype, default float32.
    model::LoadOptions load;
    if (!a.dtype.empty()) load.dtype = model::parse_dtype(a.dtype);
    m = model::load_hf_model(a.model_dir, load);
    const auto folder_tok = std::filesystem::path(a.model_dir) / "tokenizer.model";
    if (!save.tokenizer_model && std::filesystem::exists(folder_tok)) save.tokenizer_model = folder_tok;
  } else {
    m = model::load_llama2c(a.llama2c);
  }
  save.dtype = a.dtype.empty() ? m->dtype() : model::parse_dtype(a.dtype);
  model::save_hf_model(*m, a.out, save);
  std::cout << "wrote " << a.out << " (" << m->config.num_parameters() << " parameters, "
            << model::dtype_name(save.dtype) << ")\n";
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand("convert", "Write a Hugging Face Llama folder from a checkpoint");
  cmd->add_option("--model", args->model_dir, "Source HF folder");
  cmd->add_option("--llama2c", args->llama2c, "Source llama2.c legacy checkpoint (.bin)");
  cmd->add_option("--out", args->out, "Output folder")->required();
  cmd->add_option("--dtype", args->dtype, "float32 | bfloat16 | float16 (default: keep)");
  cmd->add_option("--max-shard-size", args->max_shard, "Largest shard, e.g. 5GB, 500MB")->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.model to copy along");
  cmd->add_flag("--overwrite", args->overwrite, "Replace the output folder if it exists");
  cmd->callback([args] { run_convert(*args); });
}

}  // namespace chatmill::cli
