// chatmill eval CONFIG.yaml: every checkpoint (paths or globs) x the config's benchmarks, one results table.
//   checkpoints: [checkpoints/runs/x/checkpoints/step-*/model, /models/vicuna-7b]
//   output_dir: checkpoints/eval/x
//   dtype: float32 | bfloat16, device: cpu | cuda, tokenizer: (default: each folder's tokenizer.model)
//   eval: {template, batch_size, mmlu: {...}, mt_bench: {...}, moderation: {...}, jailbreak: {...}}
#include <glob.h>

#include <fstream>
#include <iostream>
#include <set>

#include "cli/eval_commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "eval/chat_spec.h"
#include "eval/report.h"
#include "eval/suite.h"
#include "model/hf_checkpoint.h"

namespace chatmill::cli {

namespace {

namespace fs = std::filesystem;

// Paths as given, globs expanded (sorted); a pattern that matches nothing is an error.
std::vector<fs::path> expand(const std::vector<std::string>& patterns, const std::string& file) {
  std::vector<fs::path> out;
  for (const auto& p : patterns) {
    if (p.find_first_of("*?[") == std::string::npos) {
      CHATMILL_CHECK(fs::is_directory(p), file, ": checkpoint '", p, "' is not a folder");
      out.emplace_back(p);
      continue;
    }
    glob_t g{};
    const int rc = ::glob(p.c_str(), 0, nullptr, &g);
    std::vector<fs::path> hits;
    if (rc == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) hits.emplace_back(g.gl_pathv[i]);
    globfree(&g);
    CHATMILL_CHECK(!hits.empty(), file, ": checkpoint pattern '", p, "' matches no folder");
    out.insert(out.end(), hits.begin(), hits.end());
  }
  return out;
}

// "step-000040" for ".../step-000040/model"; made unique with a suffix.
std::string label_of(const fs::path& p, std::set<std::string>& used) {
  const std::string l = model::model_folder_name(p);
  std::string u = l;
  for (int k = 2; !used.insert(u).second; ++k) u = l + "-" + std::to_string(k);
  return u;
}

}  // namespace

void run_eval_sweep(const std::string& file, const std::vector<std::string>& overrides) {
  eval::SweepConfig c = eval::load_sweep_config(file, overrides);
  set_threads(c.threads);
  const auto dirs = expand(c.checkpoints, file);
  const fs::path out(c.output_dir);
  fs::create_directories(out);
  std::ofstream(out / "sweep_config.json") << nlohmann::ordered_json({{"checkpoints", c.checkpoints}, {"dtype", c.dtype},
                                                                      {"device", c.device}, {"eval", eval::eval_suite_json(c.suite)}})
                                                  .dump(2)
                                           << "\n";
  std::vector<eval::ReportRow> rows;
  std::set<std::string> used;
  for (const auto& dir : dirs) {
    const std::string label = label_of(dir, used);
    std::cout << "== " << label << " (" << dir.string() << ")\n" << std::flush;
    model::Model m = model::load_hf_model(dir, {model::parse_dtype(c.dtype), parse_device(c.device)});
    auto tok = model::resolve_tokenizer(dir, c.tokenizer.empty() ? std::nullopt : std::optional<fs::path>(c.tokenizer));
    auto results = eval::run_eval_suite({m, tok, label, dir}, c.suite, out / label);
    rows.push_back({label, dir.string(), results});
    eval::write_report(rows, out, c.title);  // after every checkpoint: a stopped sweep keeps its table
    for (const auto& [col, v] : eval::headline(results))
      std::cout << "  " << col << ": " << (v.is_null() ? "-" : v.dump()) << "\n";
  }
  std::cout << "report: " << (out / "report.html").string() << " (and report.md, report.json)\n";
}

}  // namespace chatmill::cli
