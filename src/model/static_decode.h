// A decode step with fixed shapes and fixed buffer addresses: one token per row into the next cache
// column, attention over the whole cache under a persistent mask. Fixed shapes make the step capturable in
// a CUDA graph; on the CPU it runs eagerly and gives the same tokens as the dynamic path.
//
// Shape legend: B batch, S cache capacity, V vocab.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>

#include "model/kv_cache.h"
#include "model/step_graph.h"
#include "model/transformer.h"

namespace chatmill::model {

class StaticDecoder {
 public:
  // `cache` holds the prefilled prompts (columns [0, cache.length)); key_valid: (B, S) bool on the model's
  // device, false for padding columns, or undefined when no row is padded.
  StaticDecoder(const Model& m, KVCache& cache, const at::Tensor& key_valid, bool use_cuda_graph);

  // ids, positions: (B) int64 on the CPU. Writes column cache.length, advances it, and returns the logits
  // (B, V) float32: a persistent buffer that the next step overwrites.
  const at::Tensor& step(const at::Tensor& ids, const at::Tensor& positions);

 private:
  void body();

  const Model& m_;
  KVCache& cache_;
  at::Tensor ids_;        // (B, 1)
  at::Tensor positions_;  // (B, 1)
  at::Tensor column_;     // (1) the cache column of this step
  at::Tensor mask_;       // (B, 1, 1, S) bool
  at::Tensor logits_;     // (B, V) float32
  std::unique_ptr<StepGraph> graph_;  // the step captured in the constructor (use_cuda_graph), else null
};

}  // namespace chatmill::model
