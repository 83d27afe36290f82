// chatmill data: stats, show-mask, tokenize, topics, build (one function per subcommand below).
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "common/parallel.h"
#include "common/yaml_config.h"
#include "data/conversation_source.h"
#include "data/show_mask.h"
#include "data/stats.h"
#include "data/subsets/build.h"
#include "data/tokenize.h"
#include "eval/topics.h"
#include "model/hf_checkpoint.h"

namespace chatmill::cli {

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> paths(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

void write_file(const fs::path& path, const std::string& text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path);
  CHATMILL_CHECK(out, "cannot write ", path);
  out << text;
}

// ---- data stats -------------------------------------------------------------------------------
struct StatsArgs {
  std::vector<std::string> inputs;
  std::string tokenizer, out = "stats.json", on_bad = "skip";
  int threads = 0;
  size_t top = 20;
};

void run_stats(const StatsArgs& a) {
  set_threads(a.threads);
  auto tok = model::Tokenizer::load(tokenizer_or_default(a.tokenizer));
  data::DatasetStats stats;
  data::ReadReport report;
  std::vector<std::vector<int64_t>> counts;
  data::read_conversation_batches(paths(a.inputs), data::parse_on_bad_record(a.on_bad), report, 4096,
                                  [&](std::vector<data::Conversation>& batch) {
    counts.assign(batch.size(), {});
    parallel_for(static_cast<int64_t>(batch.size()), a.threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        for (const auto& m : batch[i].messages) counts[i].push_back(static_cast<int64_t>(tok.encode(m.content, false).size()));
    });
    for (size_t i = 0; i < batch.size(); ++i) stats.add(batch[i], counts[i]);
  });
  const fs::path out(a.out);
  write_file(out, stats.to_json(report).dump(2) + "\n");
  const fs::path stem = out.parent_path() / out.stem();
  write_file(stem.string() + ".md", stats.markdown(report, tok.path().filename().string()));
  write_file(stem.string() + "_models.svg", data::bar_chart_svg("Conversations per model", stats.models, a.top));
  write_file(stem.string() + "_languages.svg", data::bar_chart_svg("Conversations per language", stats.languages, a.top));
  std::cout << report.summary() << "\nwrote " << out.string() << ", " << stem.string() << ".md, " << stem.string()
            << "_models.svg, " << stem.string() << "_languages.svg\n";
}

// ---- data show-mask ---------------------------------------------------------------------------
struct ShowMaskArgs {
  std::vector<std::string> inputs;
  std::string tokenizer, template_name = "vicuna_v1.1", id;
  int64_t index = 0, max_length = 4096;
  bool plain = false, table = false;
};

void run_show_mask(const ShowMaskArgs& a) {
  auto tok = model::Tokenizer::load(tokenizer_or_default(a.tokenizer));
  data::SegmentEncoder enc(tok);
  auto tmpl = data::ChatTemplate::by_name(a.template_name);
  data::ReadReport report;
  int64_t seen = 0;
  bool found = false;
  data::read_conversations(paths(a.inputs), data::OnBadRecord::Skip, report, [&](data::Conversation&& c) {
    if (found || (a.id.empty() ? seen++ != a.index : c.id != a.id)) return;
    found = true;
    std::string why;
    auto s = enc.encode_training(tmpl, c, a.max_length, &why);
    CHATMILL_CHECK(s, "conversation ", c.id, " gives no training sample (", why, ")");
    int64_t trained = 0;
    for (int32_t l : s->labels) trained += l != data::kIgnoreLabel;
    std::cout << "conversation " << c.id << " (" << c.model << "), template " << data::template_name(tmpl.kind) << ": "
              << s->ids.size() << " tokens, " << trained << " trained" << (s->truncated ? ", truncated" : "") << "\n\n";
    const bool ansi = !a.plain && ::isatty(STDOUT_FILENO);
    std::cout << data::show_mask(*s, tok, ansi ? data::Highlight::Ansi : data::Highlight::Brackets) << "\n";
    if (a.table) std::cout << "\n" << data::show_mask_table(*s, tok);
  });
  CHATMILL_CHECK(found, "no conversation ", a.id.empty() ? "at index " + std::to_string(a.index) : "with id " + a.id,
                 " in the input (", report.records, " records read)");
}

// ---- data tokenize ----------------------------------------------------------------------------
struct TokenizeArgs {
  std::string config;
  std::vector<std::string> overrides;
  int threads = 0;
};

void run_tokenize(const TokenizeArgs& a) {
  set_threads(a.threads);
  auto errors = std::make_shared<ConfigErrors>();
  YamlObject root(load_yaml(a.config, a.overrides), "", a.config, errors);
  auto cfg = data::TokenizeConfig::from_yaml(root);
  errors->throw_if_any(a.config);
  if (a.threads > 0) cfg.threads = a.threads;
  auto r = data::tokenize_dataset(cfg);
  std::cout << r.read.summary() << "\n";
  std::cout << "stored " << r.store.samples << " samples (" << r.truncated << " truncated) in " << r.store.rows
            << " rows: " << r.store.tokens << " tokens, " << r.store.trained_tokens << " trained, "
            << r.store.padding_tokens << " padding\n";
  for (const auto& [why, n] : r.dropped) std::cout << "dropped " << n << " conversations: " << why << "\n";
  std::cout << "wrote " << cfg.output << "\n";
}

// ---- data topics ------------------------------------------------------------------------------
struct TopicsArgs {
  std::vector<std::string> inputs;
  std::string model, tokenizer, out = "topics.json", dtype = "float32", device = "cpu";
  eval::TopicConfig cfg;
  int threads = 0;
};

void run_topics(TopicsArgs a) {
  set_threads(a.threads);
  model::Model m = model::load_hf_model(a.model, {model::parse_dtype(a.dtype), parse_device(a.device)});
  auto tok = model::resolve_tokenizer(a.model, a.tokenizer.empty() ? std::nullopt : std::optional<fs::path>(a.tokenizer));
  eval::TopicPromptSampler sampler(a.cfg);
  data::ReadReport report;
  data::read_conversations(paths(a.inputs), data::OnBadRecord::Skip, report, [&](data::Conversation&& c) { sampler.add(c); });
  auto prompts = sampler.take();
  CHATMILL_CHECK(static_cast<int64_t>(prompts.size()) >= a.cfg.k, "only ", prompts.size(), " prompts qualify (language ",
                 a.cfg.language, ", ", a.cfg.min_chars, "..", a.cfg.max_chars, " characters) for k = ", a.cfg.k);
  at::Tensor x = eval::embed_prompts(m, tok, prompts, a.cfg);
  auto km = eval::kmeans(x, a.cfg.k, a.cfg.max_iterations, a.cfg.seed);
  auto report_json = eval::topic_report(prompts, x, km, a.cfg.nearest);
  report_json["qualifying_prompts"] = sampler.seen();
  report_json["model"] = a.model;
  report_json["seed"] = a.cfg.seed;
  write_file(a.out, report_json.dump(2) + "\n");
  std::cout << report.summary() << "\n" << prompts.size() << " prompts (of " << sampler.seen() << " qualifying) in "
            << a.cfg.k << " clusters after " << km.iterations << " iterations; wrote " << a.out << "\n";
}

// ---- data build -------------------------------------------------------------------------------
void run_build(const TokenizeArgs& a) {
  auto summary = data::build_subsets(a.config, a.overrides);
  std::cout << summary.records << " conversations read, " << summary.skipped << " skipped\n";
  for (const auto& m : summary.manifests) std::cout << "wrote " << m.parent_path().string() << "/ (" << m.string() << ")\n";
}

}  // namespace

void add_data_command(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Conversation data: statistics, subsets, templates, tokenised stores");
  data->require_subcommand(1);

  auto stats = std::make_shared<StatsArgs>();
  CLI::App* s = data->add_subcommand("stats", "The paper's Tables 1, 2, 4 and distributions (JSON, markdown, SVG)");
  s->add_option("--input", stats->inputs, "LMSYS JSONL (.gz/.zst) or ShareGPT .json files")->required();
  s->add_option("--tokenizer", stats->tokenizer, "tokenizer.model (default: $CHATMILL_TOKENIZER)");
  s->add_option("--out", stats->out, "stats.json; the report and plots go beside it")->capture_default_str();
  s->add_option("--on-bad-record", stats->on_bad, "fail | skip (skipped records are counted)")->capture_default_str();
  s->add_option("--threads", stats->threads, "tokenising threads (0: one per core)");
  s->add_option("--top", stats->top, "bars in the plots")->capture_default_str();
  s->callback([stats] { run_stats(*stats); });

  auto mask = std::make_shared<ShowMaskArgs>();
  CLI::App* m = data->add_subcommand("show-mask", "Print a training sample with the trained tokens highlighted");
  m->add_option("--input", mask->inputs, "LMSYS JSONL or ShareGPT .json")->required();
  m->add_option("--tokenizer", mask->tokenizer, "tokenizer.model (default: $CHATMILL_TOKENIZER)");
  m->add_option("--template", mask->template_name, "vicuna_v1.1 | llama-2")->capture_default_str();
  m->add_option("--index", mask->index, "0-based conversation number")->capture_default_str();
  m->add_option("--id", mask->id, "or the conversation id");
  m->add_option("--max-length", mask->max_length)->capture_default_str();
  m->add_flag("--plain", mask->plain, "mark trained text with ⟦ ⟧ instead of colour");
  m->add_flag("--table", mask->table, "also list every token with its label");
  m->callback([mask] { run_show_mask(*mask); });

  auto tokenize = std::make_shared<TokenizeArgs>();
  CLI::App* t = data->add_subcommand("tokenize", "Conversations -> template -> packed HDF5 token store");
  t->add_option("config", tokenize->config, "YAML config (see configs/data/)")->required();
  t->add_option("overrides", tokenize->overrides, "key=value overrides");
  t->add_option("--threads", tokenize->threads, "encoding threads (overrides the config's threads)");
  t->callback([tokenize] { run_tokenize(*tokenize); });

  auto topics = std::make_shared<TopicsArgs>();
  CLI::App* tp = data->add_subcommand("topics", "Cluster user prompts by topic (embeddings from a model, k-means)");
  tp->add_option("--input", topics->inputs, "LMSYS JSONL or ShareGPT .json files")->required();
  tp->add_option("--model", topics->model, "HF model folder whose mean-pooled hidden states embed the prompts")->required();
  tp->add_option("--tokenizer", topics->tokenizer, "default: MODEL/tokenizer.model");
  tp->add_option("--k", topics->cfg.k, "clusters")->capture_default_str();
  tp->add_option("--nearest", topics->cfg.nearest, "prompts listed per cluster")->capture_default_str();
  tp->add_option("--max-prompts", topics->cfg.max_prompts, "seeded uniform sample beyond this")->capture_default_str();
  tp->add_option("--language", topics->cfg.language)->capture_default_str();
  tp->add_option("--min-chars", topics->cfg.min_chars)->capture_default_str();
  tp->add_option("--max-chars", topics->cfg.max_chars)->capture_default_str();
  tp->add_option("--max-tokens", topics->cfg.max_tokens, "prompt tokens embedded")->capture_default_str();
  tp->add_option("--seed", topics->cfg.seed)->capture_default_str();
  tp->add_option("--dtype", topics->dtype)->capture_default_str();
  tp->add_option("--device", topics->device)->capture_default_str();
  tp->add_option("--threads", topics->threads);
  tp->add_option("--out", topics->out)->capture_default_str();
  tp->callback([topics] { run_topics(*topics); });

  auto build = std::make_shared<TokenizeArgs>();
  CLI::App* b = data->add_subcommand("build", "Cut the paper's subsets (moderation, highquality, upvote, jailbreak, arena_hard)");
  b->add_option("config", build->config, "YAML config (see configs/data/)")->required();
  b->add_option("overrides", build->overrides, "key=value overrides");
  b->callback([build] { run_build(*build); });
}

}  // namespace chatmill::cli
