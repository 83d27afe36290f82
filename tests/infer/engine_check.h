// Pieces the engine's tests share: draining a request's events, each request's log-probabilities through an
// engine, the gap between two engines' choices, and the GPU engine tests' small Llama.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "infer/engine.h"
#include "model/config.h"

namespace chatmill::testing {

// Drains a handle: (text as streamed, tokens, final event).
struct Drained {
  std::string text;
  std::vector<int64_t> tokens;
  infer::EngineEvent last;
  int events = 0;
};
inline Drained drain(infer::RequestHandle& h) {
  Drained d;
  infer::EngineEvent e;
  while (true) {
    if (!h.next(e, std::chrono::milliseconds(10000))) {
      ADD_FAILURE() << "no event within 10 s";
      return d;
    }
    EXPECT_TRUE(e.error.empty()) << e.error;
    ++d.events;
    d.text += e.text;
    d.tokens.insert(d.tokens.end(), e.tokens.begin(), e.tokens.end());
    if (e.finished) {
      d.last = e;
      return d;
    }
  }
}

// Each request's chosen tokens with their log-probabilities (2 alternatives asked), through `engine`.
inline std::vector<std::vector<model::TokenLogprob>> token_logprobs_through(infer::Engine& engine,
                                                                           std::vector<infer::EngineRequest> reqs) {
  for (auto& r : reqs) r.logprobs = 2;
  auto hs = engine.submit_all(reqs);
  std::vector<std::vector<model::TokenLogprob>> out(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    infer::EngineEvent e;
    do {
      if (!hs[i]->next(e, std::chrono::milliseconds(60000))) {
        ADD_FAILURE() << "no event within 60 s";
        return out;
      }
      out[i].insert(out[i].end(), e.logprobs.begin(), e.logprobs.end());
    } while (!e.finished);
  }
  return out;
}

// The GPU engine tests' Llama: head dim 64 (the persistent step's), GQA, 3 layers.
inline model::LlamaConfig gpu_engine_config() {
  model::LlamaConfig cfg = model::llama2_debug();
  cfg.hidden_size = 256;
  cfg.num_heads = 4;  // head dim 64
  cfg.num_kv_heads = 2;
  cfg.intermediate_size = 688;
  cfg.num_layers = 3;
  return cfg;
}

// The largest |log-probability| gap between the tokens engines c and d choose for `reqs`. Random weights in bf16
// leave near-ties that two reduction orders may break differently: each request is compared up to and including
// the first token where the two choose differently (both near the top there).
inline double worst_logprob_gap(infer::Engine& c, infer::Engine& d, const std::vector<infer::EngineRequest>& reqs) {
  const auto got = token_logprobs_through(c, reqs), want = token_logprobs_through(d, reqs);
  double worst = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(got[i].size(), want[i].size()) << i;
    for (size_t j = 0; j < std::min(got[i].size(), want[i].size()); ++j) {
      worst = std::max(worst, std::abs(got[i][j].logprob - want[i][j].logprob));
      if (got[i][j].id != want[i][j].id) break;
    }
  }
  return worst;
}

// The same for two engines on `m` built with options a and b.
inline double worst_logprob_gap(const model::Model& m, const std::vector<infer::EngineRequest>& reqs,
                                const infer::EngineOptions& a, const infer::EngineOptions& b) {
  infer::Engine c(m, nullptr, a), d(m, nullptr, b);
  return worst_logprob_gap(c, d, reqs);
}

}  // namespace chatmill::testing
