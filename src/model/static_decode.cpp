#include "model/static_decode.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace chatmill::model {

StaticDecoder::StaticDecoder(const Model& m, KVCache& cache, const at::Tensor& key_valid, bool use_cuda_graph)
    : m_(m), cache_(cache) {
  const int64_t B = cache.batch(), S = cache.capacity();
  const at::Device dev = m.device();
  auto longs = at::TensorOptions().dtype(at::kLong).device(dev);
  ids_ = at::zeros({B, 1}, longs);
  positions_ = at::zeros({B, 1}, longs);
  column_ = at::zeros({1}, longs);
  at::Tensor written = at::arange(S, longs) < cache.length;  // (S)
  at::Tensor valid = key_valid.defined() ? key_valid.to(dev, at::kBool) & written : written.expand({B, S});
  mask_ = valid.view({B, 1, 1, S}).clone();
  logits_ = at::zeros({B, m.config.vocab_size}, at::TensorOptions().dtype(at::kFloat).device(dev));
  // Capture now, with the prefill, rather than in the first step: that cost is setup, not decoding. Its warm-up
  // run writes the next free column, which the first real step overwrites.
  if (use_cuda_graph && cache_.length < cache_.capacity()) {
    column_.fill_(cache_.length);
    graph_ = capture_step_graph([this] { body(); }, dev);
  }
}

void StaticDecoder::body() {
  mask_.index_fill_(3, column_, true);  // the new column is a valid key for every row
  cache_.write_index = column_;
  AttentionMask mask;
  mask.mask = mask_;
  at::Tensor h = forward_hidden_masked(m_, ids_, positions_, &cache_, mask);
  cache_.write_index = at::Tensor();
  logits_.copy_(lm_logits(m_, h).squeeze(1));
}

const at::Tensor& StaticDecoder::step(const at::Tensor& ids, const at::Tensor& positions) {
  CHATMILL_CHECK(cache_.length < cache_.capacity(), "KV cache overflow: all ", cache_.capacity(),
                 " columns are used; allocate a larger cache");
  ids_.copy_(ids.view({-1, 1}));
  positions_.copy_(positions.view({-1, 1}));
  column_.fill_(cache_.length);
  if (graph_) graph_->replay();  // captured in the constructor when asked for (a full cache never gets here)
  else body();
  cache_.length += 1;
  return logits_;
}

}  // namespace chatmill::model
