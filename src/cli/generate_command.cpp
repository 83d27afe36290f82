// chatmill generate: load a model folder and complete prompts.
#include <ATen/ATen.h>

#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "model/generate.h"
#include "model/hf_checkpoint.h"

namespace chatmill::cli {

namespace {

struct GenerateArgs {
  std::string model_dir;
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_ids;
  std::string tokenizer;
  int64_t max_new_tokens = 128;
  double temperature = 0.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 0;
  std::vector<std::string> stops;
  bool print_ids = false;
  bool no_bos = false;
  bool ignore_eos = false;
  std::string dtype = "float32";
  std::string device = "cpu";
  int threads = 0;
  bool cuda_graph = false;
};

void run_generate(const GenerateArgs& a) {
  set_threads(a.threads);
  CHATMILL_CHECK(a.prompts.empty() != a.prompt_ids.empty(), "give either --prompt or --prompt-ids (not both)");
  const std::filesystem::path dir(a.model_dir);
  model::Model m = model::load_hf_model(dir, {model::parse_dtype(a.dtype), parse_device(a.device)});

  // --prompt-ids needs no tokenizer; text prompts, text output and stop strings do.
  std::optional<model::Tokenizer> tok;
  const bool has_folder_tokenizer = std::filesystem::exists(dir / "tokenizer.model");
  if (!a.tokenizer.empty() || !a.prompts.empty() || (has_folder_tokenizer && !a.print_ids) || !a.stops.empty())
    tok = model::resolve_tokenizer(dir, a.tokenizer.empty() ? std::nullopt
                                                            : std::optional<std::filesystem::path>(a.tokenizer));
  if (tok)
    CHATMILL_CHECK(tok->vocab_size() <= m.config.vocab_size, "tokenizer ", tok->path(), " has ", tok->vocab_size(),
                   " pieces but the model's vocabulary is ", m.config.vocab_size, "; they do not belong together");

  std::vector<model::GenerationRequest> requests;
  auto add = [&](std::vector<int64_t> prompt) {
    model::GenerationRequest r;
    r.prompt = std::move(prompt);
    r.sampling = {a.temperature, a.top_k, a.top_p};
    r.seed = a.seed;
    r.max_new_tokens = a.max_new_tokens;
    r.stop_strings = a.stops;
    r.stop_on_eos = !a.ignore_eos;
    requests.push_back(std::move(r));
  };
  for (const auto& p : a.prompts) add(tok->encode(p, !a.no_bos));
  for (const auto& p : a.prompt_ids) add(parse_ids(p));

  model::GenerateOptions options;
  options.tokenizer = tok ? &*tok : nullptr;
  options.static_decode = options.cuda_graph = a.cuda_graph;
  auto results = model::generate(m, requests, options);
  for (const auto& r : results) {
    if (a.print_ids || !tok) {
      for (size_t i = 0; i < r.tokens.size(); ++i) std::cout << (i ? " " : "") << r.tokens[i];
      std::cout << "\n";
    } else {
      std::cout << r.text << "\n";
      if (results.size() > 1) std::cout << "---\n";
    }
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Complete prompts with a model folder (HF Llama format)");
  cmd->add_option("--model", args->model_dir, "Model folder: config.json + safetensors")->required();
  cmd->add_option("--prompt", args->prompts, "Prompt text (repeat for a batch)");
  cmd->add_option("--prompt-ids", args->prompt_ids, "Prompt as token ids, \"1 2 3\" (repeat for a batch)");
  cmd->add_option("--tokenizer", args->tokenizer, "SentencePiece model (default: MODEL/tokenizer.model)");
  cmd->add_option("--max-new-tokens", args->max_new_tokens, "Tokens to generate at most")->capture_default_str();
  cmd->add_option("--temperature", args->temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling mass (1 = off)")->capture_default_str();
  cmd->add_option("--top-k", args->top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Sampling seed (per prompt)")->capture_default_str();
  cmd->add_option("--stop", args->stops, "Stop when the output contains this string (repeatable)");
  cmd->add_flag("--print-ids", args->print_ids, "Print only the generated token ids, one line per prompt");
  cmd->add_flag("--no-bos", args->no_bos, "Do not prepend the bos id to text prompts");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Keep generating past eos");
  cmd->add_option("--dtype", args->dtype, "float32 | bfloat16 | float16")->capture_default_str();
  cmd->add_option("--device", args->device, "cpu | cuda | cuda:N")->capture_default_str();
  cmd->add_option("--threads", args->threads, "CPU threads (0 = LibTorch's default)");
  cmd->add_flag("--cuda-graph", args->cuda_graph, "Replay the decode step as a CUDA graph (CUDA builds)");
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace chatmill::cli
