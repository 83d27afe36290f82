// A debug-size model with random weights over the shipped sample tokenizer (512 pieces), for tests that need a
// model and its tokenizer but no reference outputs.
#pragma once
#include "common/test_env.h"
#include "model/config.h"
#include "model/tokenizer.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace chatmill::testing {

struct SampleModel {
  model::Tokenizer tok;
  model::Model m;
  explicit SampleModel(double init_std = 0.3, uint64_t seed = 11)
      : tok(model::Tokenizer::load(source_dir() / "data" / "sample" / "tokenizer.model")), m(make(tok, init_std, seed)) {}

 private:
  static model::Model make(const model::Tokenizer& tok, double init_std, uint64_t seed) {
    model::LlamaConfig cfg = model::llama2_debug();
    cfg.vocab_size = tok.vocab_size();
    return model::Model(cfg, model::init_weights(cfg, init_std, seed, at::kFloat, at::kCPU));
  }
};

}  // namespace chatmill::testing
