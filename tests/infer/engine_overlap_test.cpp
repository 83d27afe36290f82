// EngineOptions::overlap: steps queued ahead of reading the previous step's tokens give the same tokens, texts
// and finish reasons as reading each step before the next, through end-of-sequence stops, stop strings, requests
// that join and leave a running batch, and cancellations; requests that sample or ask for log-probabilities are
// never run ahead. Both the eager and the fused step (its LibTorch reference here); on a GPU, the fused step's
// kernels with and without CUDA graphs, the ids coming through the step's last kernel and pinned memory.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "common/sample_model.h"
#include "infer/engine.h"
#include "infer/engine_check.h"
#include "model/generate.h"
#include "model/step_graph.h"
#include "model/weights.h"

namespace chatmill {
namespace {

using namespace std::chrono_literals;

using testing::drain;
using testing::Drained;

// The sample model with end of sequence at a token its greedy continuations of these prompts often choose, so
// that requests stop at different steps while others run on.
struct EosModel {
  testing::SampleModel t{0.2, 17};
  model::Model m = t.m;
  std::vector<infer::EngineRequest> requests;

  EosModel() {
    const char* prompts[] = {"The mill by the river", "Once upon a time", "A short question about bread?", "Why",
                             "Grinding wheat", "The baker said", "Flour and water"};
    for (const char* p : prompts) {
      infer::EngineRequest r;
      r.prompt = t.tok.encode(p, true);
      r.max_new_tokens = 40;
      requests.push_back(r);
    }
    // The most frequent greedy token past each request's fifth becomes end of sequence.
    infer::EngineOptions o{4, 128, false};
    o.overlap = false;
    std::vector<infer::EngineRequest> free_running = requests;
    for (auto& r : free_running) r.stop_on_eos = false;
    std::map<int64_t, int> counts;
    infer::Engine probe(t.m, &t.tok, o);
    for (const auto& g : probe.run(free_running))
      for (size_t i = 5; i < g.tokens.size(); ++i) ++counts[g.tokens[i]];
    int64_t eos = 0;
    for (const auto& [id, c] : counts)
      if (c > counts[eos]) eos = id;
    m.config.eos_token_ids = {eos};
    // Stopping lengths that fall before, at and after the end-of-sequence token.
    const int64_t lengths[] = {40, 1, 2, 3, 17, 40, 9};
    for (size_t i = 0; i < requests.size(); ++i) requests[i].max_new_tokens = lengths[i];
  }
};

// Each request's outcome, submitted in two waves: the second once the first is decoding.
std::vector<Drained> run_waves(const model::Model& m, const model::Tokenizer& tok, infer::EngineOptions o,
                               const std::vector<infer::EngineRequest>& reqs, infer::EngineStats* stats) {
  infer::Engine engine(m, &tok, o);
  std::vector<std::shared_ptr<infer::RequestHandle>> hs;
  const size_t first = reqs.size() / 2;
  for (size_t i = 0; i < first; ++i) hs.push_back(engine.submit(reqs[i]));
  for (int i = 0; i < 10000 && engine.stats().steps < 3; ++i) std::this_thread::sleep_for(1ms);
  for (size_t i = first; i < reqs.size(); ++i) hs.push_back(engine.submit(reqs[i]));
  std::vector<Drained> out;
  for (auto& h : hs) out.push_back(drain(*h));
  *stats = engine.stats();
  return out;
}

class EngineOverlap : public ::testing::TestWithParam<infer::StepKind> {};

TEST_P(EngineOverlap, SameTokensTextsAndStopsAsReadingEachStep) {
  EosModel em;
  auto reqs = em.requests;
  reqs[3].stop_strings = {"e"};  // a stop string too (cut where it first appears)
  infer::EngineOptions on{4, 128, false, GetParam()};
  infer::EngineOptions off = on;
  off.overlap = false;
  infer::EngineStats s_on, s_off;
  const auto a = run_waves(em.m, em.t.tok, on, reqs, &s_on);
  const auto b = run_waves(em.m, em.t.tok, off, reqs, &s_off);
  int eos_stops = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(a[i].tokens, b[i].tokens) << i;
    EXPECT_EQ(a[i].last.full_text, b[i].last.full_text) << i;
    EXPECT_EQ(a[i].last.finish, b[i].last.finish) << i;
    eos_stops += a[i].last.finish == model::FinishReason::Eos;
  }
  EXPECT_GE(eos_stops, 2) << "the test should stop requests at end of sequence while others run";
  // Each request alone through model::generate gives the same tokens.
  for (size_t i = 0; i < reqs.size(); ++i) {
    model::GenerationRequest g;
    g.prompt = reqs[i].prompt;
    g.max_new_tokens = reqs[i].max_new_tokens;
    g.stop_strings = reqs[i].stop_strings;
    model::GenerateOptions go;
    go.tokenizer = &em.t.tok;
    EXPECT_EQ(a[i].tokens, model::generate(em.m, {g}, go)[0].tokens) << i;
  }
  EXPECT_EQ(s_off.steps_ahead, 0);
  EXPECT_GT(s_on.steps_ahead, 0) << "no step was run ahead";
  EXPECT_EQ(s_on.generated_tokens, s_off.generated_tokens);
}

INSTANTIATE_TEST_SUITE_P(Steps, EngineOverlap, ::testing::Values(infer::StepKind::Eager, infer::StepKind::Fused));

TEST(GpuEngine, OverlapStopsAsReadingEachStepWithAndWithoutCudaGraphs) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  if (!model::cuda_graphs_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON";
  EosModel em;
  model::Weights w = em.m.weights;
  for (auto& p : model::named_parameters(em.m.config, w)) *p.slot = p.slot->to(at::Device("cuda:0"));
  const model::Model m(em.m.config, w);
  for (bool graph : {false, true}) {
    infer::EngineOptions on{4, 128, graph, infer::StepKind::Fused};
    infer::EngineOptions off = on;
    off.overlap = false;
    infer::EngineStats s_on, s_off;
    const auto a = run_waves(m, em.t.tok, on, em.requests, &s_on);
    const auto b = run_waves(m, em.t.tok, off, em.requests, &s_off);
    int eos_stops = 0;
    for (size_t i = 0; i < em.requests.size(); ++i) {
      EXPECT_EQ(a[i].tokens, b[i].tokens) << i << (graph ? " graph" : "");
      EXPECT_EQ(a[i].last.finish, b[i].last.finish) << i << (graph ? " graph" : "");
      eos_stops += a[i].last.finish == model::FinishReason::Eos;
    }
    EXPECT_GE(eos_stops, 1) << (graph ? "graph" : "");
    EXPECT_GT(s_on.steps_ahead, 0) << (graph ? "graph" : "");
    EXPECT_EQ(s_off.steps_ahead, 0);
  }
}

TEST(EngineOverlap, SampledAndLogprobRequestsAreNeverRunAhead) {
  testing::SampleModel t(0.2, 17);
  infer::EngineRequest r;
  r.prompt = t.tok.encode("Once upon a time", true);
  r.max_new_tokens = 12;
  r.stop_on_eos = false;
  infer::EngineRequest sampled = r, scored = r;
  sampled.sampling.temperature = 0.8;
  sampled.seed = 5;
  scored.logprobs = 1;
  for (const auto& req : {sampled, scored}) {
    infer::Engine engine(t.m, &t.tok, {2, 64, false});
    const auto got = engine.run({req, r});  // beside a greedy request
    EXPECT_EQ(got[0].tokens.size(), 12u);
    EXPECT_EQ(engine.stats().steps_ahead, 0);
  }
  // Alone, the greedy request runs ahead from its second decode step on: 11 steps, 10 of them ahead.
  infer::Engine engine(t.m, &t.tok, {2, 64, false});
  EXPECT_EQ(engine.run({r})[0].tokens.size(), 12u);
  EXPECT_EQ(engine.stats().steps, 11);
  EXPECT_EQ(engine.stats().steps_ahead, 10);
}

TEST(EngineOverlap, CancelledRequestLeavesAndTheOthersKeepTheirTokens) {
  testing::SampleModel t(0.2, 17);
  infer::EngineRequest r;
  r.prompt = t.tok.encode("Hello", true);
  r.stop_on_eos = false;
  r.max_new_tokens = 60;
  infer::EngineRequest other = r, cancelled = r;
  other.prompt = t.tok.encode("The baker said", true);
  cancelled.max_new_tokens = 500;  // far more than it gets before the cancellation
  infer::Engine engine(t.m, &t.tok, {2, 512, false});
  auto hc = engine.submit(cancelled);
  auto ho = engine.submit(other);
  infer::EngineEvent e;
  ASSERT_TRUE(hc->next(e, 10000ms));
  hc->cancel();
  EXPECT_TRUE(drain(*hc).last.cancelled);
  const Drained o = drain(*ho);
  infer::EngineOptions off{2, 512, false};
  off.overlap = false;
  infer::Engine reference(t.m, &t.tok, off);
  EXPECT_EQ(o.tokens, reference.run({other})[0].tokens);
  // The slot serves the next request.
  EXPECT_EQ(engine.run({r})[0].tokens, reference.run({r})[0].tokens);
  EXPECT_EQ(engine.stats().active, 0);
}

}  // namespace
}  // namespace chatmill
