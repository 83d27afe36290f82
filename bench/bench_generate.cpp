// Generation throughput of chatmill: time to first token (prefill) and decode tokens/s for a batch of
// random prompts, greedy, eos ignored. bench/run_cpu.py and bench/run_gpu.py run it beside HF transformers.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "common/error.h"
#include "op_profile.h"
#include "infer/engine.h"
#include "model/generate.h"
#include "model/hf_checkpoint.h"

using namespace chatmill;

namespace {

struct Args {
  std::string model_dir, preset, dtype = "float32", device = "cpu", out;
  int64_t batch = 1, prompt_len = 128, new_tokens = 128;
  int threads = 0, repeats = 3, warmup = 1;
  bool cuda_graph = false;
  bool engine = false;  // the serving engine (continuous batching) instead of model::generate
  std::string step = "eager";  // the engine's decode step: eager or fused
  bool no_skinny = false;      // fused step: projections through at::linear (cuBLAS) instead of the skinny GEMM
  bool no_pdl = false;         // fused step: kernels without programmatic dependent launch
  bool no_fold = false;        // fused step: norms, SwiGLU, rotary and attention's combine as kernels of their own
  bool l2_prefetch = false;    // fused step: the skinny GEMM with its L2 prefetch before the wait
  bool persistent = false;     // fused step: all layers in one cooperative kernel (model/persistent_decode.h)
  bool o_prefetch = false;     // persistent step: L2 prefetch of the o projection during attention
  bool no_tile_gemm = false;   // fused step: 3-16 rows through cuBLAS instead of the tensor-core tile GEMM
  int64_t tile_min_rows = 1;   // the fewest rows the tile GEMM takes (3: the skinny GEMM alone at 1 and 2)
  bool head_tile_gemm = false; // fused step: the LM head through the tile GEMM too
  bool tile_fold = false;      // tile GEMM step: the norms in its loads, the residual adds in its epilogues
  bool o_stage = false;        // folded step: the o projection through the staged GEMV
  bool no_early_kv = false;    // fused step: attention loads its cache columns after the wait, not before
  bool autotune = false;       // engine, fused step: per bucket, the fastest verified step variant
  bool no_overlap = false;     // engine: read each step's tokens before queuing the next (EngineOptions::overlap)
  std::string profile;         // profile one more run after the timed ones, write its table here
};

// Random weights straight on the device (values do not matter for speed; a 7B model never touches the CPU).
model::Model random_model(const model::LlamaConfig& cfg, at::ScalarType dtype, at::Device dev) {
  model::Weights w;
  auto opts = at::TensorOptions().dtype(dtype).device(dev);
  for (auto& p : model::named_parameters(cfg, w))
    *p.slot = p.shape.size() == 1 ? at::ones(p.shape, opts) : at::randn(p.shape, opts).mul_(0.02);
  return model::Model(cfg, std::move(w));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The row's engine name: what runs and, for the engine's fused step, each switch that differs from the default.
std::string engine_label(const Args& a) {
  std::string s = a.engine ? "chatmill-engine" : "chatmill";
  if (a.engine && a.step == "fused") {
    s += a.no_skinny ? "+fused(cublas)" : "+fused";
    const std::pair<bool, const char*> parts[] = {
        {a.no_pdl, "(no PDL)"},          {a.no_fold, "(no fold)"},
        {a.l2_prefetch, "(L2 prefetch)"}, {a.persistent, "(persistent)"},
        {a.persistent && a.o_prefetch, "(o prefetch)"},
        {a.no_tile_gemm, "(no tile GEMM)"},
        {!a.no_tile_gemm && a.tile_min_rows != 1, "(tile GEMM from more rows)"},
        {!a.no_tile_gemm && a.tile_fold, "(tile fold)"}, {a.o_stage, "(o staged)"},
        {!a.no_tile_gemm && a.head_tile_gemm, "(tile LM head)"}, {a.no_early_kv, "(no early kv)"},
        {a.autotune, "(autotune)"}};
    for (const auto& [on, part] : parts)
      if (on) s += part;
  }
  if (a.engine && a.no_overlap) s += "(no overlap)";
  return s + (a.cuda_graph ? "+cudagraph" : "");
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"chatmill generation benchmark"};
  app.add_option("--model", a.model_dir, "HF model folder");
  app.add_option("--preset", a.preset, "or a preset with random weights made on the device (7b, tiny, ...)");
  app.add_option("--dtype", a.dtype);
  app.add_option("--device", a.device);
  app.add_option("--batch", a.batch);
  app.add_option("--prompt-len", a.prompt_len);
  app.add_option("--new-tokens", a.new_tokens);
  app.add_option("--threads", a.threads);
  app.add_option("--repeats", a.repeats);
  app.add_option("--warmup", a.warmup);
  app.add_flag("--cuda-graph", a.cuda_graph);
  app.add_flag("--engine", a.engine, "run through infer::Engine (all requests submitted at once)");
  app.add_option("--step", a.step, "the engine's decode step: eager or fused (model/fused_decode.h)");
  app.add_flag("--no-skinny-gemm", a.no_skinny, "fused step: projections through at::linear instead of fused::linear");
  app.add_flag("--no-pdl", a.no_pdl, "fused step: kernels without programmatic dependent launch");
  app.add_flag("--no-fold", a.no_fold, "fused step: no folding of norms, SwiGLU, rotary and attention's combine "
               "into neighbouring kernels (FusedStepOptions::fold)");
  app.add_flag("--l2-prefetch", a.l2_prefetch, "fused step: the skinny GEMM with its L2 prefetch of the first rows "
               "(FusedStepOptions::l2_prefetch)");
  app.add_flag("--persistent", a.persistent, "fused step: all layers in one cooperative kernel where it applies "
               "(FusedStepOptions::persistent; up to 2 rows)");
  app.add_flag("--o-prefetch", a.o_prefetch, "persistent step: with the L2 prefetch of the o projection's "
               "rows during attention (FusedStepOptions::persistent_o_prefetch)");
  app.add_flag("--no-tile-gemm", a.no_tile_gemm, "fused step: no tensor-core tile GEMM (FusedStepOptions::tile_gemm): "
               "3 to 16 rows through cuBLAS, and at 1 and 2 rows o and down through the skinny GEMM");
  app.add_flag("--head-tile-gemm", a.head_tile_gemm, "fused step: the LM head through the tile GEMM too where it serves "
               "the rows (FusedStepOptions::head_tile_gemm; the default until the fifteenth session)");
  app.add_flag("--tile-fold", a.tile_fold, "tile GEMM step: each norm in the loads of the projection after it, the "
               "residual adds in the o and down projections' epilogues (FusedStepOptions::tile_fold)");
  app.add_flag("--no-early-kv", a.no_early_kv, "fused step: attention loads the cache's earlier columns after its "
               "wait for the q/k/v kernel, not before (FusedStepOptions::early_kv off)");
  app.add_flag("--o-stage", a.o_stage, "folded step (1 and 2 rows): the o projection through the staged GEMV, its "
               "weights' first 8 KB a warp copied into shared memory during attention (FusedStepOptions::o_stage)");
  app.add_flag("--autotune", a.autotune, "engine, fused step: per batch bucket, time every step "
               "variant that applies and keep the fastest that matches the configured step (EngineOptions::autotune); "
               "the row's \"step_choices\" lists the timings");
  app.add_flag("--no-overlap", a.no_overlap, "engine: read each step's tokens before queuing the next, instead of "
               "queuing greedy steps ahead (EngineOptions::overlap)");
  app.add_option("--tile-min-rows", a.tile_min_rows, "fused step: the fewest rows the tile GEMM takes (default 1; 3: "
                 "the skinny GEMM alone at 1 and 2 rows; FusedStepOptions::tile_min_rows)");
  app.add_option("--profile", a.profile,
                 "profile one more run and write a per-kernel table here (the engine's CPU work runs in its own "
                 "thread, which the CPU table leaves out; GPU kernels are all there)");
  app.add_option("--out", a.out, "append the result as one JSON line");
  CLI11_PARSE(app, argc, argv);
  try {
    if (a.threads > 0) at::set_num_threads(a.threads);
    const at::Device dev(a.device == "cuda" ? "cuda:0" : a.device);
    const at::ScalarType dtype = model::parse_dtype(a.dtype);
    CHATMILL_CHECK(a.model_dir.empty() != a.preset.empty(), "give --model or --preset");
    CHATMILL_CHECK(!a.autotune || (a.engine && a.step == "fused"),
                   "--autotune times the engine's fused step: add --engine --step fused");
    CHATMILL_CHECK(!a.autotune || a.warmup >= 1, "--autotune tunes in the first run: give --warmup 1 or more, so that "
                   "the timed runs do not include it");
    model::Model m = a.preset.empty() ? model::load_hf_model(a.model_dir, {dtype, dev})
                                      : random_model(model::preset_by_name(a.preset), dtype, dev);

    auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
    std::vector<model::GenerationRequest> reqs;
    for (int64_t b = 0; b < a.batch; ++b) {
      model::GenerationRequest r;
      at::Tensor ids = at::randint(3, m.config.vocab_size, {a.prompt_len}, gen, at::kLong);
      r.prompt.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + a.prompt_len);
      r.max_new_tokens = a.new_tokens;
      r.stop_on_eos = false;
      reqs.push_back(std::move(r));
    }
    model::GenerateOptions opts;
    opts.static_decode = opts.cuda_graph = a.cuda_graph;
    std::vector<double> ttft, decode_tps, total_tps;
    std::unique_ptr<infer::Engine> engine;
    if (a.engine) {
      infer::EngineOptions eo{a.batch, a.prompt_len + a.new_tokens, a.cuda_graph, infer::parse_step_kind(a.step)};
      model::FusedStepOptions& f = eo.fused;
      f.skinny_gemm = !a.no_skinny;
      f.programmatic_launch = !a.no_pdl;
      f.fold = !a.no_fold;
      f.l2_prefetch = a.l2_prefetch;
      f.persistent = a.persistent;
      f.persistent_o_prefetch = a.o_prefetch;
      f.tile_gemm = !a.no_tile_gemm;
      f.tile_min_rows = a.tile_min_rows;
      f.tile_fold = a.tile_fold;
      f.o_stage = a.o_stage;
      f.early_kv = !a.no_early_kv;
      f.head_tile_gemm = a.head_tile_gemm;
      eo.autotune = a.autotune;
      eo.overlap = !a.no_overlap;
      engine = std::make_unique<infer::Engine>(m, nullptr, eo);
    }
    const int profiled = a.profile.empty() ? 0 : 1;
    std::unique_ptr<bench::OpProfile> prof;
    for (int i = 0; engine && i < a.warmup + a.repeats + profiled; ++i) {
      if (i == a.warmup + a.repeats) prof = std::make_unique<bench::OpProfile>(dev.is_cuda());
      // Time to first token = until every request has its first token; decode = the rest.
      std::vector<infer::EngineRequest> ers;
      for (const auto& r : reqs) ers.push_back({r.prompt, r.sampling, 0, r.max_new_tokens, {}, false});
      const auto t0 = std::chrono::steady_clock::now();
      // All at once: the engine admits them as one batch, as generate() takes them.
      std::vector<std::shared_ptr<infer::RequestHandle>> hs = engine->submit_all(ers);
      double first_all = 0;
      int64_t generated = 0;
      for (auto& h : hs) {
        infer::EngineEvent e;
        while (!(h->next(e, std::chrono::milliseconds(1000)) && e.finished)) {
        }
        CHATMILL_CHECK(e.error.empty(), "generation failed: ", e.error);
        first_all = std::max(first_all, e.first_token_seconds);
        generated += e.completion_tokens;
      }
      const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (prof) {
        prof->finish(a.profile, 1);
        break;
      }
      if (i < a.warmup) continue;
      ttft.push_back(first_all);
      decode_tps.push_back((generated - a.batch) / (total - first_all));
      total_tps.push_back(generated / total);
    }
    for (int i = 0; !engine && i < a.warmup + a.repeats + profiled; ++i) {
      if (i == a.warmup + a.repeats) prof = std::make_unique<bench::OpProfile>(dev.is_cuda());
      model::GenerationStats s;
      opts.stats = &s;
      model::generate(m, reqs, opts);
      if (prof) {
        prof->finish(a.profile, 1);
        break;
      }
      if (i < a.warmup) continue;
      ttft.push_back(s.prefill_seconds);
      decode_tps.push_back((s.generated_tokens - a.batch) / s.decode_seconds);
      total_tps.push_back(s.generated_tokens / (s.prefill_seconds + s.decode_seconds));
    }
    nlohmann::json out = {{"engine", engine_label(a)},
                          {"model", a.preset.empty() ? a.model_dir : a.preset},
                          {"params", m.config.num_parameters()},
                          {"dtype", a.dtype},
                          {"device", a.device},
                          {"threads", at::get_num_threads()},
                          {"batch", a.batch},
                          {"prompt_len", a.prompt_len},
                          {"new_tokens", a.new_tokens},
                          {"ttft_s", median(ttft)},
                          {"prefill_tokens_per_s", a.batch * a.prompt_len / median(ttft)},
                          {"decode_tokens_per_s", median(decode_tps)},
                          {"total_tokens_per_s", median(total_tps)},
                          {"repeats", a.repeats}};
    if (engine) {  // over all runs, warm-up included
      const infer::EngineStats st = engine->stats();
      out["engine_steps"] = st.steps;
      out["engine_steps_ahead"] = st.steps_ahead;
    }
    if (engine && a.autotune) {
      out["step_choices"] = nlohmann::json::array();
      for (const auto& c : engine->step_choices()) out["step_choices"].push_back(infer::describe(c));
    }
    std::cout << out.dump() << "\n";
    if (!a.out.empty()) std::ofstream(a.out, std::ios::app) << out.dump() << "\n";
  } catch (const Error& e) {
    std::cerr << "bench_generate: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
