#include "model/generate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "common/error.h"
#include "model/static_decode.h"

namespace chatmill::model {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Eos: return "eos";
    case FinishReason::StopString: return "stop";
    case FinishReason::Length: return "length";
  }
  return "?";
}

namespace {

struct RowState {
  SequenceRng rng;
  bool done = false;
  GenerationResult result;
  std::optional<StreamingText> text;  // rows with stop strings: their text so far
};

}  // namespace

std::vector<GenerationResult> generate(const Model& m, const std::vector<GenerationRequest>& requests,
                                       const GenerateOptions& options) {
  const Tokenizer* tokenizer = options.tokenizer;
  const auto& on_token = options.on_token;
  CHATMILL_CHECK(!options.cuda_graph || options.static_decode, "CUDA graphs need static decoding");
  const auto start = std::chrono::steady_clock::now();
  const int64_t B = static_cast<int64_t>(requests.size());
  if (B == 0) return {};
  int64_t longest = 0, most_new = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    r.sampling.validate();
    CHATMILL_CHECK(!r.prompt.empty(), "request ", i, " has an empty prompt; give at least one token (e.g. bos)");
    CHATMILL_CHECK(r.max_new_tokens >= 0, "request ", i, ": max_new_tokens must be >= 0");
    CHATMILL_CHECK(r.stop_strings.empty() || tokenizer, "request ", i, ": stop strings need a tokenizer");
    for (int64_t id : r.prompt)
      CHATMILL_CHECK(id >= 0 && id < m.config.vocab_size, "request ", i, ": prompt token id ", id,
                     " is outside the model's vocabulary [0, ", m.config.vocab_size, ")");
    longest = std::max<int64_t>(longest, r.prompt.size());
    most_new = std::max(most_new, r.max_new_tokens);
  }
  const auto& eos = m.config.eos_token_ids;
  std::vector<RowState> rows;
  for (const auto& r : requests) {
    rows.push_back({SequenceRng(r.seed), r.max_new_tokens == 0, {}, std::nullopt});
    if (!r.stop_strings.empty()) rows.back().text.emplace(*tokenizer, r.stop_strings);
  }

  // Left padding: row b's prompt sits at columns [pad_b, longest); its positions count from 0 there.
  const int64_t capacity = longest + most_new;
  auto cpu_long = at::TensorOptions().dtype(at::kLong);
  std::vector<int64_t> flat_tokens(B * longest, 0), flat_positions(B * longest, 0);
  at::Tensor key_valid = at::ones({B, capacity}, at::TensorOptions().dtype(at::kBool));
  std::vector<int64_t> next_pos(B);
  bool padded = false;
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = requests[b].prompt;
    const int64_t n = static_cast<int64_t>(p.size()), pad = longest - n;
    padded |= pad > 0;
    std::copy(p.begin(), p.end(), flat_tokens.begin() + b * longest + pad);
    for (int64_t j = 0; j < n; ++j) flat_positions[b * longest + pad + j] = j;
    if (pad > 0) key_valid[b].narrow(0, 0, pad).fill_(false);
    next_pos[b] = n;
  }
  at::Tensor tokens = at::tensor(flat_tokens, cpu_long).view({B, longest});
  at::Tensor positions = at::tensor(flat_positions, cpu_long).view({B, longest});
  const at::Device dev = m.device();
  at::Tensor key_valid_dev = padded ? key_valid.to(dev) : at::Tensor();

  c10::InferenceMode inference;  // no autograd bookkeeping while decoding
  KVCache cache = KVCache::allocate(m.config, B, capacity, m.dtype(), dev);
  at::Tensor hidden = forward_hidden(m, tokens.to(dev), positions.to(dev), &cache,
                                     padded ? key_valid_dev.narrow(1, 0, longest) : at::Tensor());
  at::Tensor logits = lm_logits(m, hidden.narrow(1, longest - 1, 1)).squeeze(1);  // (B, V)

  std::optional<StaticDecoder> static_decoder;
  if (options.static_decode) static_decoder.emplace(m, cache, key_valid_dev, options.cuda_graph);
  std::optional<std::chrono::steady_clock::time_point> first_token;
  int64_t generated = 0;

  std::vector<int64_t> step_tokens(B, 0);
  for (int64_t step = 0; step < most_new; ++step) {
    // One device->host transfer per step: argmax for greedy rows, the logits for sampled rows.
    at::Tensor greedy_ids, host_logits;
    for (int64_t b = 0; b < B; ++b) {
      RowState& row = rows[b];
      if (row.done) continue;
      const auto& req = requests[b];
      int64_t id;
      if (req.sampling.greedy()) {
        if (!greedy_ids.defined()) greedy_ids = logits.argmax(-1).to(at::kCPU);
        id = greedy_ids.data_ptr<int64_t>()[b];
      } else {
        if (!host_logits.defined()) host_logits = logits.to(at::kCPU);
        id = sample_tokens(host_logits.narrow(0, b, 1), req.sampling, {row.rng.uniform()})[0];
      }
      step_tokens[b] = id;
      row.result.tokens.push_back(id);
      ++generated;
      if (on_token) on_token(static_cast<size_t>(b), id);
      if (req.stop_on_eos && std::find(eos.begin(), eos.end(), id) != eos.end()) {
        row.done = true;
        row.result.finish = FinishReason::Eos;
      } else if (row.text && row.text->add(id)) {
        row.done = true;
        row.result.finish = FinishReason::StopString;
      } else if (static_cast<int64_t>(row.result.tokens.size()) >= req.max_new_tokens) {
        row.done = true;
        row.result.finish = FinishReason::Length;
      }
    }
    if (!first_token) first_token = std::chrono::steady_clock::now();
    if (std::all_of(rows.begin(), rows.end(), [](const RowState& r) { return r.done; })) break;

    // Finished rows keep stepping with their last token; their outputs are ignored.
    at::Tensor step_ids = at::tensor(step_tokens, cpu_long).view({B, 1});
    at::Tensor step_pos = at::tensor(next_pos, cpu_long).view({B, 1});
    for (auto& p : next_pos) ++p;
    if (static_decoder) {
      logits = static_decoder->step(step_ids, step_pos);
    } else {
      hidden = forward_hidden(m, step_ids.to(dev), step_pos.to(dev), &cache,
                              padded ? key_valid_dev.narrow(1, 0, cache.length + 1) : at::Tensor());
      logits = lm_logits(m, hidden).squeeze(1);
    }
  }
  const auto end = std::chrono::steady_clock::now();
  if (options.stats) {
    int64_t prompt_tokens = 0;
    for (const auto& r : requests) prompt_tokens += static_cast<int64_t>(r.prompt.size());
    const auto first = first_token.value_or(end);
    *options.stats = {prompt_tokens, generated, std::chrono::duration<double>(first - start).count(),
                      std::chrono::duration<double>(end - first).count()};
  }

  std::vector<GenerationResult> out;
  for (int64_t b = 0; b < B; ++b) {
    GenerationResult& r = rows[b].result;
    if (tokenizer) {
      std::vector<int64_t> body = r.tokens;
      if (r.finish == FinishReason::Eos) body.pop_back();
      r.text = tokenizer->decode(body);
      if (r.finish == FinishReason::StopString) r.text.resize(find_stop(r.text, requests[b].stop_strings));
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace chatmill::model
