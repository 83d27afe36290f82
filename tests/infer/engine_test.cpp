// The continuous-batching engine: greedy tokens equal HF transformers' generate (the reference prompts), with
// every request submitted at once or joining a running batch; sampled requests equal model::generate alone;
// streamed text adds up to the final text and never shows a stop string; a short request leaves the batch
// while a long one runs on; cancellation frees the slot; bad requests are refused with clear errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <thread>

#include "common/sample_model.h"
#include "common/interrupted.h"
#include "common/test_env.h"
#include "infer/engine_check.h"
#include "infer/engine.h"
#include "model/generate.h"
#include "model/hf_checkpoint.h"
#include "model/kv_cache.h"
#include "model/persistent_decode.h"
#include "model/weights.h"

namespace chatmill {
namespace {

using namespace std::chrono_literals;
using testing::drain;
using testing::gpu_engine_config;
using testing::token_logprobs_through;
using testing::worst_logprob_gap;

nlohmann::json reference(const std::string& name) {
  std::ifstream in(testing::testdata() / "ref" / (name + "_generate.json"));
  return nlohmann::json::parse(in);
}

// The reference prompts as requests: 64 greedy tokens, eos ignored, as the reference generated them.
std::vector<infer::EngineRequest> reference_requests(const nlohmann::json& ref) {
  std::vector<infer::EngineRequest> reqs;
  for (const auto& p : ref["prompts"]) {
    infer::EngineRequest r;
    r.prompt = p.get<std::vector<int64_t>>();
    r.max_new_tokens = 64;
    r.stop_on_eos = false;
    reqs.push_back(r);
  }
  return reqs;
}

class EngineRef : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineRef, GreedyEqualsTransformersAllAtOnceAndJoiningARunningBatch) {
  const auto ref = reference(GetParam());
  model::Model m = model::load_hf_model(testing::testdata() / "models" / GetParam());  // vocab 1000: ids only
  const auto reqs = reference_requests(ref);
  const auto want = ref["generated"].get<std::vector<std::vector<int64_t>>>();
  {
    infer::Engine engine(m, nullptr, {4, 160, false});
    auto got = engine.run(reqs);
    for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(got[i].tokens, want[i]) << "request " << i << " (all at once)";
  }
  {
    // The fused one-token step (here its LibTorch reference; on CUDA its kernels, GpuEngine below).
    infer::Engine engine(m, nullptr, {4, 160, false, infer::StepKind::Fused});
    auto got = engine.run(reqs);
    for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(got[i].tokens, want[i]) << "request " << i << " (fused step)";
  }
  {
    // Two slots: the others wait in the queue and join as slots free; the first joins mid-run of nothing.
    infer::Engine engine(m, nullptr, {2, 160, false});
    auto first = engine.submit(reqs[0]);
    infer::EngineEvent e;
    ASSERT_TRUE(first->next(e, 5000ms));  // running now
    std::vector<std::shared_ptr<infer::RequestHandle>> rest;
    for (size_t i = 1; i < reqs.size(); ++i) rest.push_back(engine.submit(reqs[i]));
    auto d0 = drain(*first);
    std::vector<int64_t> t0 = e.tokens;
    t0.insert(t0.end(), d0.tokens.begin(), d0.tokens.end());
    EXPECT_EQ(t0, want[0]);
    for (size_t i = 1; i < reqs.size(); ++i) EXPECT_EQ(drain(*rest[i - 1]).tokens, want[i]) << "request " << i << " (joined)";
    EXPECT_EQ(engine.stats().completed, static_cast<int64_t>(reqs.size()));
  }
}

INSTANTIATE_TEST_SUITE_P(Models, EngineRef, ::testing::Values("mha_untied", "gqa_tied", "gqa_sharded"));


TEST(Engine, SampledRequestsEqualGenerateAloneAndStreamAddsUp) {
  testing::SampleModel t(0.2, 17);
  std::vector<infer::EngineRequest> reqs;
  const char* prompts[] = {"The mill by the river", "Once upon a time", "A short question about bread?", "Why"};
  for (int i = 0; i < 4; ++i) {
    infer::EngineRequest r;
    r.prompt = t.tok.encode(prompts[i], true);
    r.max_new_tokens = 24;
    r.sampling.temperature = i == 3 ? 0.0 : 0.8;
    r.sampling.top_p = 0.9;
    r.seed = 100 + i;
    reqs.push_back(r);
  }
  infer::Engine engine(t.m, &t.tok, {3, 128, false});
  std::vector<std::shared_ptr<infer::RequestHandle>> hs;
  for (const auto& r : reqs) hs.push_back(engine.submit(r));
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto d = drain(*hs[i]);
    model::GenerationRequest g;
    g.prompt = reqs[i].prompt;
    g.sampling = reqs[i].sampling;
    g.seed = reqs[i].seed;
    g.max_new_tokens = reqs[i].max_new_tokens;
    model::GenerateOptions go;
    go.tokenizer = &t.tok;
    auto alone = model::generate(t.m, {g}, go)[0];
    EXPECT_EQ(d.tokens, alone.tokens) << i;
    EXPECT_EQ(d.last.full_text, alone.text) << i;
    // The streamed deltas are a prefix of the whole text, whole when no character's bytes came apart.
    EXPECT_EQ(alone.text.compare(0, d.text.size(), d.text), 0) << i;
    if (alone.text.find("\xEF\xBF\xBD") == std::string::npos) EXPECT_EQ(d.text, alone.text) << i;
    EXPECT_EQ(d.last.completion_tokens, static_cast<int64_t>(alone.tokens.size()));
    EXPECT_EQ(d.last.prompt_tokens, static_cast<int64_t>(reqs[i].prompt.size()));
    EXPECT_GT(d.events, 2);  // streamed as it went
  }
}

// Log-probabilities of generated and prompt tokens equal log_softmax of a full no-cache forward over prompt +
// generated tokens (the model's logits match HF's to ~1e-6); alternatives come sorted, the greedy choice first.
TEST(Engine, LogprobsEqualTheFullForwardsLogSoftmax) {
  testing::SampleModel t(0.2, 17);
  infer::Engine engine(t.m, &t.tok, {3, 512, false});
  std::vector<infer::EngineRequest> reqs(4);
  reqs[0].prompt = t.tok.encode("The mill by the river", true);
  reqs[0].max_new_tokens = 10;
  reqs[0].sampling.temperature = 0;
  reqs[0].logprobs = 3;
  reqs[0].prompt_logprobs = true;
  reqs[1].prompt = t.tok.encode("Once upon a time", true);
  reqs[1].max_new_tokens = 8;
  reqs[1].sampling.temperature = 0.8;  // sampled: logprobs of the raw distribution, whatever was drawn
  reqs[1].seed = 5;
  reqs[1].logprobs = 0;
  reqs[2] = reqs[0];  // equal length: prefilled with request 0; scoring only
  reqs[2].max_new_tokens = 0;
  reqs[2].logprobs = 2;
  // Over 256 prompt tokens: the prompt's lm head runs in more than one chunk.
  std::string story;
  for (int i = 0; i < 40; ++i) story += "the mill turned by the river, ";
  reqs[3].prompt = t.tok.encode(story, true);
  ASSERT_GT(reqs[3].prompt.size(), 300u);
  reqs[3].max_new_tokens = 3;
  reqs[3].sampling.temperature = 0;
  reqs[3].logprobs = 1;
  reqs[3].prompt_logprobs = true;
  auto hs = engine.submit_all(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) {
    std::vector<int64_t> tokens;
    std::vector<model::TokenLogprob> gen, prompt;
    infer::EngineEvent e;
    do {
      ASSERT_TRUE(hs[i]->next(e, 5000ms)) << i;
      tokens.insert(tokens.end(), e.tokens.begin(), e.tokens.end());
      gen.insert(gen.end(), e.logprobs.begin(), e.logprobs.end());
      prompt.insert(prompt.end(), e.prompt_logprobs.begin(), e.prompt_logprobs.end());
    } while (!e.finished);
    const auto& r = reqs[i];
    const int64_t n = static_cast<int64_t>(r.prompt.size());
    ASSERT_LE(static_cast<int64_t>(tokens.size()), r.max_new_tokens) << i;
    // An end-of-sequence token ends the answer without an entry: the text has none.
    const bool eos = e.finish == model::FinishReason::Eos;
    ASSERT_EQ(gen.size() + (eos ? 1 : 0), tokens.size()) << i;
    ASSERT_EQ(static_cast<int64_t>(prompt.size()), r.prompt_logprobs ? n - 1 : 0) << i;
    std::vector<int64_t> all = r.prompt;
    all.insert(all.end(), tokens.begin(), tokens.end());
    const int64_t T = static_cast<int64_t>(all.size());
    const at::Tensor ref = at::log_softmax(
        model::forward_logits(t.m, at::tensor(all, at::kLong).view({1, T}))[0].to(at::kDouble), -1);  // (T, V)
    double worst = 0;
    auto check = [&](const model::TokenLogprob& lp, int64_t position, int64_t k) {
      EXPECT_EQ(lp.id, all[position]);
      worst = std::max(worst, std::abs(lp.logprob - ref[position - 1][lp.id].item<double>()));
      ASSERT_EQ(static_cast<int64_t>(lp.top.size()), k);
      for (int64_t j = 0; j < k; ++j) {
        worst = std::max(worst, std::abs(lp.top[j].second - ref[position - 1][lp.top[j].first].item<double>()));
        if (j > 0) EXPECT_GE(lp.top[j - 1].second, lp.top[j].second);
      }
      if (k > 0) EXPECT_GE(lp.top[0].second, lp.logprob - 1e-6);
    };
    for (int64_t p = 0; p < static_cast<int64_t>(prompt.size()); ++p) check(prompt[p], p + 1, r.logprobs);
    for (int64_t j = 0; j < static_cast<int64_t>(gen.size()); ++j) {
      check(gen[j], n + j, r.logprobs);
      if (r.sampling.greedy()) EXPECT_EQ(gen[j].top[0].first, gen[j].id);
    }
    std::printf("request %zu: worst |logprob - full forward| %.2e\n", i, worst);
    EXPECT_LT(worst, 1e-5) << "request " << i;
  }
}

TEST(Engine, EqualLengthPromptsPrefilledTogetherEqualAlone) {
  testing::SampleModel t(0.2, 17);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  std::vector<infer::EngineRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    infer::EngineRequest r;
    at::Tensor ids = at::randint(3, t.tok.vocab_size(), {20}, gen, at::kLong);
    r.prompt.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + 20);
    r.prompt[0] = t.tok.bos_id();
    r.max_new_tokens = 16;
    r.stop_on_eos = false;
    reqs.push_back(r);
  }
  infer::Engine engine(t.m, &t.tok, {8, 64, false});
  auto together = engine.run(reqs);  // admitted in one go: one prefill batch of 6
  for (size_t i = 0; i < reqs.size(); ++i) {
    model::GenerationRequest g;
    g.prompt = reqs[i].prompt;
    g.max_new_tokens = 16;
    g.stop_on_eos = false;
    EXPECT_EQ(together[i].tokens, model::generate(t.m, {g})[0].tokens) << i;
  }
}

TEST(Engine, StopStringsAreCutAndNeverStreamed) {
  testing::SampleModel t(0.2, 17);
  infer::EngineRequest r;
  r.prompt = t.tok.encode("The mill", true);
  r.max_new_tokens = 40;
  infer::Engine engine(t.m, &t.tok, {2, 128, false});
  const std::string full = engine.run({r})[0].text;
  ASSERT_GT(full.size(), 6u);
  // Stop at a piece of the greedy text that starts after its third byte.
  const std::string stop = full.substr(3, 3);
  r.stop_strings = {"never-there", stop};
  auto h = engine.submit(r);
  std::string streamed;
  infer::EngineEvent e;
  while (h->next(e, 5000ms)) {
    streamed += e.text;
    EXPECT_EQ(streamed.find(stop), std::string::npos) << "the stop string was streamed";
    if (e.finished) break;
  }
  EXPECT_EQ(streamed, full.substr(0, full.find(stop)));
  EXPECT_EQ(e.finish, model::FinishReason::StopString);
}

TEST(Engine, ShortRequestsLeaveWhileLongOnesRunAndCancelFreesTheSlot) {
  testing::SampleModel t(0.2, 17);
  infer::Engine engine(t.m, &t.tok, {2, 256, false});
  infer::EngineRequest longr, shortr;
  longr.prompt = shortr.prompt = t.tok.encode("Hello", true);
  longr.stop_on_eos = shortr.stop_on_eos = false;
  longr.max_new_tokens = 200;
  shortr.max_new_tokens = 3;
  auto hl = engine.submit(longr);
  auto hs = engine.submit(shortr);
  auto ds = drain(*hs);
  EXPECT_EQ(ds.tokens.size(), 3u);
  EXPECT_EQ(ds.last.finish, model::FinishReason::Length);
  // The short one is done; its slot takes the next request while the long one still runs.
  auto hs2 = engine.submit(shortr);
  EXPECT_EQ(drain(*hs2).tokens.size(), 3u);
  EXPECT_EQ(engine.stats().completed, 2);
  hl->cancel();
  auto dl = drain(*hl);
  EXPECT_TRUE(dl.last.cancelled);
  EXPECT_LT(dl.tokens.size(), 200u);
  const auto s = engine.stats();
  EXPECT_EQ(s.cancelled, 1);
  EXPECT_EQ(s.active, 0);
}

TEST(Engine, RunStopsWhenAskedAndTheEngineServesOn) {
  testing::SampleModel t(0.2, 17);
  infer::Engine engine(t.m, &t.tok, {2, 256, false});
  infer::EngineRequest r;
  r.prompt = t.tok.encode("Hello", true);
  r.stop_on_eos = false;
  r.max_new_tokens = 200;
  const std::vector<infer::EngineRequest> reqs(4, r);
  // Asked to stop on the third poll: the run gives up long before 4 x 200 tokens, its requests cancelled.
  int polls = 0;
  testing::expect_error([&] { engine.run(reqs, [&] { return ++polls >= 3; }); }, {"stopped as asked", "of 4 requests"});
  try {
    engine.run(reqs, [&] { return ++polls >= 3; });
  } catch (const Interrupted&) {  // the type callers catch (a plain chatmill::Error is a real failure)
  }
  for (int i = 0; i < 200 && engine.stats().active + engine.stats().queued > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(engine.stats().active + engine.stats().queued, 0) << "the cancelled requests left their slots";
  EXPECT_LT(engine.stats().generated_tokens, 2 * 4 * 200);
  EXPECT_GE(engine.stats().cancelled, 4);
  // Without a stop request the same engine completes every request.
  r.max_new_tokens = 5;
  const auto done = engine.run({r, r});
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].tokens.size(), 5u);
  EXPECT_EQ(done[1].tokens, done[0].tokens);
}

TEST(Engine, RefusesBadRequestsClearly) {
  testing::SampleModel t(0.2, 17);
  infer::Engine engine(t.m, &t.tok, {2, 64, false});
  infer::EngineRequest r;
  r.prompt = std::vector<int64_t>(60, 5);
  r.max_new_tokens = 10;
  testing::expect_error([&] { engine.submit(r); }, {"60 tokens", "exceeds the context of 64"});
  r.prompt = {1, 99999};
  testing::expect_error([&] { engine.submit(r); }, {"99999", "outside the vocabulary"});
  r.prompt = {};
  testing::expect_error([&] { engine.submit(r); }, {"empty"});
  r.prompt = {1};
  r.sampling.temperature = -1;
  testing::expect_error([&] { engine.submit(r); }, {"temperature"});
  engine.shutdown();
  r.sampling.temperature = 0;
  testing::expect_error([&] { engine.submit(r); }, {"shutting down"});
}

// On a CUDA machine (scripts/gpu_check.sh): the engine's decode step, eager or fused (CUDA kernels), captured
// in a CUDA graph or not, gives HF transformers' greedy tokens in float32; in bf16 the fused step replayed
// from a graph gives exactly the tokens of the same step run eagerly.
// Each request's chosen-token log-probabilities, through submit_all.
// Each request's new tokens with their log-probabilities (2 alternatives asked), all submitted at once.
std::vector<std::vector<double>> logprobs_through(infer::Engine& engine, std::vector<infer::EngineRequest> reqs) {
  std::vector<std::vector<double>> out;
  for (const auto& seq : token_logprobs_through(engine, std::move(reqs))) {
    out.emplace_back();
    for (const auto& lp : seq) out.back().push_back(lp.logprob);
  }
  return out;
}

// Log-probabilities on the CUDA paths (eager, fused, CUDA graphs) equal the CPU engine's.
TEST(GpuEngine, LogprobsOnEveryCudaPathEqualTheCpus) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  if (!model::cuda_graphs_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON";
  const auto reqs = reference_requests(reference("gqa_tied"));
  const auto dir = testing::testdata() / "models" / "gqa_tied";
  model::Model cpu = model::load_hf_model(dir, {at::kFloat, at::kCPU});
  infer::Engine reference_engine(cpu, nullptr, {4, 160, false, infer::StepKind::Eager});
  const auto want = logprobs_through(reference_engine, reqs);
  model::Model m = model::load_hf_model(dir, {at::kFloat, at::Device("cuda:0")});
  for (auto step : {infer::StepKind::Eager, infer::StepKind::Fused})
    for (bool graph : {false, true}) {
      infer::Engine engine(m, nullptr, {4, 160, graph, step});
      const auto got = logprobs_through(engine, reqs);
      double worst = 0;
      for (size_t i = 0; i < reqs.size(); ++i) {
        ASSERT_EQ(got[i].size(), want[i].size()) << i;
        for (size_t j = 0; j < got[i].size(); ++j) worst = std::max(worst, std::abs(got[i][j] - want[i][j]));
      }
      std::printf("%s%s: worst |logprob - CPU| %.2e\n", step == infer::StepKind::Fused ? "fused" : "eager",
                  graph ? " graph" : "", worst);
      EXPECT_LT(worst, 1e-4) << (step == infer::StepKind::Fused ? "fused" : "eager") << (graph ? " graph" : "");
    }
}

// Every CUDA path's greedy tokens equal HF's, with steps queued ahead (EngineOptions::overlap) and without.
TEST(GpuEngine, CudaGraphStepEqualsEagerAndTransformers) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  if (!model::cuda_graphs_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON";
  const auto ref = reference("gqa_tied");
  const auto reqs = reference_requests(ref);
  const auto want = ref["generated"].get<std::vector<std::vector<int64_t>>>();
  const auto dir = testing::testdata() / "models" / "gqa_tied";
  {
    model::Model m = model::load_hf_model(dir, {at::kFloat, at::Device("cuda:0")});
    for (auto step : {infer::StepKind::Eager, infer::StepKind::Fused})
      for (bool graph : {false, true})
        for (bool overlap : {true, false}) {  // steps queued ahead: their ids through the ring kernel's pinned writes
          infer::EngineOptions o{4, 160, graph, step};
          o.overlap = overlap;
          infer::Engine engine(m, nullptr, o);
          auto got = engine.run(reqs);
          const std::string what = std::string(step == infer::StepKind::Fused ? " fused" : " eager") +
                                   (graph ? " graph" : "") + (overlap ? " overlap" : "");
          for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(got[i].tokens, want[i]) << "request " << i << what;
          if (overlap) EXPECT_GT(engine.stats().steps_ahead, 0) << what;
        }
  }
  model::Model m = model::load_hf_model(dir, {at::kBFloat16, at::Device("cuda:0")});
  infer::EngineOptions read_each{4, 160, false, infer::StepKind::Fused};
  read_each.overlap = false;
  infer::Engine eager(m, nullptr, read_each);
  infer::Engine graph(m, nullptr, {4, 160, true, infer::StepKind::Fused});
  auto a = eager.run(reqs);
  auto b = graph.run(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(b[i].tokens, a[i].tokens) << "request " << i << " (bf16 fused)";
}

// The persistent step (one cooperative kernel for all layers) in the engine, at 1 and 2 rows: captured in a CUDA
// graph it gives the tokens it gives eagerly (the same kernel, deterministic), and its log-probabilities stay
// within bf16 rounding of the folded step's (attention reduces in another order) while both choose alike.
TEST(GpuEngine, PersistentStepRunsInACudaGraphAndMatchesTheFoldedStep) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  if (!model::cuda_graphs_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON";
  const model::LlamaConfig cfg = gpu_engine_config();
  const at::Device dev("cuda:0");
  model::Model m(cfg, model::init_weights(cfg, 0.05, 11, at::kBFloat16, dev));
  ASSERT_TRUE(model::fused::persistent_applies(m, model::KVCache::allocate(cfg, 2, 8, at::kBFloat16, dev), 2));
  std::vector<infer::EngineRequest> reqs(3);
  for (size_t i = 0; i < reqs.size(); ++i) {
    for (int64_t t = 0; t < 5 + 7 * static_cast<int64_t>(i); ++t) reqs[i].prompt.push_back(3 + (t * 37 + i) % 200);
    reqs[i].max_new_tokens = 24;
    reqs[i].stop_on_eos = false;
  }
  for (int64_t batch : {1, 2}) {
    infer::EngineOptions folded{batch, 160, true, infer::StepKind::Fused};
    folded.fused.tile_gemm = false;  // the skinny GEMM's folded step: the persistent step's kernels, one by one
    infer::EngineOptions persistent = folded;
    persistent.fused.persistent = true;
    infer::EngineOptions persistent_eager = persistent;
    persistent_eager.cuda_graph = false;
    infer::Engine a(m, nullptr, persistent), b(m, nullptr, persistent_eager);
    const auto graph_tokens = a.run(reqs), eager_tokens = b.run(reqs);
    for (size_t i = 0; i < reqs.size(); ++i)
      EXPECT_EQ(graph_tokens[i].tokens, eager_tokens[i].tokens) << "batch " << batch << " request " << i;
    const double worst = worst_logprob_gap(m, reqs, persistent, folded);
    std::printf("batch %ld: worst |logprob persistent - folded| %.2e\n", static_cast<long>(batch), worst);
    EXPECT_LT(worst, 0.05) << "batch " << batch;
  }
}

// The tile GEMM (FusedStepOptions::tile_gemm, the default from 1 to 16 rows) in the engine's CUDA graphs, with
// its norms apart (the default) and in its loads (there with the LM head through it too): within bf16 rounding
// of the step without it (cuBLAS, and rotary and SwiGLU kernels of their own; the skinny GEMM alone at 1 and 2
// rows).
TEST(GpuEngine, TileGemmStepRunsInACudaGraphAndMatchesTheStepWithoutIt) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  if (!model::cuda_graphs_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON";
  const model::LlamaConfig cfg = gpu_engine_config();
  const at::Device dev("cuda:0");
  model::Model m(cfg, model::init_weights(cfg, 0.05, 12, at::kBFloat16, dev));
  std::vector<infer::EngineRequest> reqs(12);  // more than 8 slots: rows join and leave the batch
  for (size_t i = 0; i < reqs.size(); ++i) {
    for (int64_t t = 0; t < 3 + 5 * static_cast<int64_t>(i); ++t) reqs[i].prompt.push_back(3 + (t * 41 + i) % 200);
    reqs[i].max_new_tokens = 12 + static_cast<int64_t>(i % 4) * 6;
    reqs[i].stop_on_eos = false;
  }
  for (int64_t batch : {8, 16})
    for (bool tile_fold : {false, true}) {
      infer::EngineOptions cublas{batch, 160, true, infer::StepKind::Fused};
      cublas.fused.tile_gemm = false;
      infer::EngineOptions tiled{batch, 160, true, infer::StepKind::Fused};
      tiled.fused.tile_fold = tile_fold;
      tiled.fused.head_tile_gemm = tile_fold;  // the LM head through it too (off by default)
      const double worst = worst_logprob_gap(m, reqs, tiled, cublas);
      std::printf("batch %ld%s: worst |logprob tile GEMM - cuBLAS| %.2e\n", static_cast<long>(batch),
                  tile_fold ? " (norms in its loads, LM head through it)" : "", worst);
      EXPECT_LT(worst, 0.05) << "batch " << batch << (tile_fold ? " (norms in its loads)" : "");
    }
}

}  // namespace
}  // namespace chatmill
