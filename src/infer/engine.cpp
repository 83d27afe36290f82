// Engine (infer/engine.h): requests, admission and prefill, tokens and events; the decode step itself is
// engine_step.cpp's.
#include "infer/engine.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <optional>

#include "common/error.h"
#include "common/interrupted.h"
#include "infer/engine_slot.h"
#include "model/persistent_decode.h"
#include "model/step_advance.h"
#include "model/fused_ops.h"

namespace chatmill::infer {

namespace {

// Bytes at the end of `text` that must wait: the start of a stop string. (StreamingText's text holds only
// whole characters, so no unfinished character can end it.)
size_t hold_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops)
    for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  return hold;
}

}  // namespace

bool RequestHandle::next(EngineEvent& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
  out = std::move(events_.front());
  events_.pop_front();
  return true;
}

void RequestHandle::push(EngineEvent e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

StepKind parse_step_kind(const std::string& s) {
  if (s == "auto") return StepKind::Auto;
  if (s == "eager") return StepKind::Eager;
  if (s == "fused") return StepKind::Fused;
  CHATMILL_FAIL("unknown decode step '", s, "': use auto, eager or fused");
}

Engine::Engine(const model::Model& m, const model::Tokenizer* tok, EngineOptions o) : m_(m), tok_(tok), o_(o) {
  B_ = o_.max_batch;
  S_ = o_.context > 0 ? o_.context : m.config.max_position_embeddings;
  CHATMILL_CHECK(B_ >= 1, "engine: max_batch must be at least 1, got ", B_);
  CHATMILL_CHECK(S_ >= 2, "engine: context must be at least 2 tokens, got ", S_);
  CHATMILL_CHECK(!tok || tok->vocab_size() <= m.config.vocab_size, "the tokenizer has ", tok ? tok->vocab_size() : 0,
                 " pieces but the model only ", m.config.vocab_size, " embeddings: wrong tokenizer for this model");
  const at::Device dev = m.device();
  cache_ = model::KVCache::allocate(m.config, B_, S_, m.dtype(), dev);
  for (int64_t b = 0; b < B_; ++b) slots_.push_back(std::make_unique<Slot>());
  // One (4, B) buffer holds a step's ids, columns, lengths and advance: one host-to-device copy for a step queued
  // from the host's state, from pinned memory on CUDA; a step queued ahead finds them advanced on the device.
  step_host_ = at::zeros({4, B_}, at::TensorOptions().dtype(at::kLong).pinned_memory(dev.is_cuda()));
  step_host_[2].fill_(1);
  step_dev_ = step_host_.to(dev);
  ids_ = step_dev_[0];
  columns_ = step_dev_[1];
  lengths_ = step_dev_[2];
  ring_ = model::advance_ring(B_, dev).fill_(-1);  // -1: not written (collect() checks, then resets each entry)
  for (auto& e : events_) e = std::make_unique<model::DeviceEvent>(dev);
  logits_ = at::zeros({B_, m.config.vocab_size}, at::TensorOptions().dtype(at::kFloat).device(dev));
  if (o_.cuda_graph) CHATMILL_CHECK(dev.is_cuda() && model::cuda_graphs_built(), "CUDA graphs need a CUDA build and a CUDA model");
  // Auto: the fused kernels on CUDA (faster at every batch size measured, bench/README.md), Eager elsewhere.
  fused_ = o_.step == StepKind::Fused ||
           (o_.step == StepKind::Auto && dev.is_cuda() && model::fused::kernels_built());
  CHATMILL_CHECK(o_.autotune_tolerance > 0, "engine: autotune_tolerance must be positive, got ", o_.autotune_tolerance);
  // The persistent step's layer table, built here: body() runs under CUDA graph capture, where it cannot be.
  if (fused_ && (o_.fused.persistent || o_.autotune) && model::fused::persistent_applies(m, cache_, 1))
    model::fused::prepare_persistent(m, cache_);
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(); }

void Engine::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // After a failure steps may still be queued: they write ring_ and the step buffers, so they end before those go.
  for (const auto& l : in_flight_) {
    try {
      events_[l.event]->wait();
    } catch (const std::exception&) {  // the device's error was already reported to the requests
    }
  }
  in_flight_.clear();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineStats s = stats_;
  s.queued = static_cast<int64_t>(queue_.size());
  return s;
}

void Engine::check_request(const EngineRequest& r) const {
  r.sampling.validate();
  CHATMILL_CHECK(!r.prompt.empty(), "the prompt is empty; give at least one token (e.g. bos)");
  CHATMILL_CHECK(r.stop_strings.empty() || tok_, "stop strings need a tokenizer");
  CHATMILL_CHECK(r.max_new_tokens >= 0, "max_new_tokens must be >= 0, got ", r.max_new_tokens);
  CHATMILL_CHECK(r.logprobs >= -1 && r.logprobs <= model::kMaxTopLogprobs, "logprobs must be -1 (none) or in [0, ",
                 model::kMaxTopLogprobs, "], got ", r.logprobs);
  for (int64_t id : r.prompt)
    CHATMILL_CHECK(id >= 0 && id < m_.config.vocab_size, "prompt token id ", id, " is outside the vocabulary [0, ",
                   m_.config.vocab_size, ")");
  const int64_t n = static_cast<int64_t>(r.prompt.size());
  CHATMILL_CHECK(n + r.max_new_tokens <= S_, "the prompt has ", n, " tokens and ", r.max_new_tokens,
                 " new tokens were asked for: ", n + r.max_new_tokens, " exceeds the context of ", S_,
                 " tokens; shorten the prompt or lower max_tokens");
}

std::shared_ptr<RequestHandle> Engine::submit(EngineRequest r) {
  std::vector<EngineRequest> one;
  one.push_back(std::move(r));
  return submit_all(std::move(one))[0];
}

std::vector<std::shared_ptr<RequestHandle>> Engine::submit_all(std::vector<EngineRequest> rs) {
  for (const auto& r : rs) check_request(r);
  std::vector<std::shared_ptr<RequestHandle>> hs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    CHATMILL_CHECK(failure_.empty(), "the engine stopped after an error: ", failure_);
    CHATMILL_CHECK(!stopping_, "the engine is shutting down");
    const auto now = std::chrono::steady_clock::now();
    for (auto& r : rs) {
      hs.push_back(std::make_shared<RequestHandle>());
      queue_.push_back({std::move(r), hs.back(), now});
    }
  }
  cv_.notify_all();
  return hs;
}

std::vector<model::GenerationResult> Engine::run(const std::vector<EngineRequest>& requests,
                                                 const std::function<bool()>& stop) {
  std::vector<std::shared_ptr<RequestHandle>> hs = submit_all(requests);
  std::vector<model::GenerationResult> out(requests.size());
  const auto poll = std::chrono::milliseconds(stop ? 50 : 1000);
  for (size_t i = 0; i < hs.size(); ++i) {
    EngineEvent e;
    while (true) {
      if (stop && stop()) {
        for (auto& h : hs) h->cancel();
        throw Interrupted("generation stopped as asked, " + std::to_string(i) + " of " + std::to_string(hs.size()) +
                          " requests done");
      }
      if (!hs[i]->next(e, poll)) continue;
      CHATMILL_CHECK(e.error.empty(), "generation failed: ", e.error);
      out[i].tokens.insert(out[i].tokens.end(), e.tokens.begin(), e.tokens.end());
      if (e.finished) {
        out[i].text = e.full_text;
        out[i].finish = e.finish;
        break;
      }
    }
  }
  return out;
}

void Engine::loop() {
  c10::InferenceMode inference;
  try {
    run_loop();
  } catch (const std::exception& e) {
    // A failure of the model (out of memory, a CUDA error): every request gets it as its final event.
    std::lock_guard<std::mutex> lock(mu_);
    failure_ = e.what();
    stopping_ = true;
    auto fail = [&](const std::shared_ptr<RequestHandle>& h) {
      EngineEvent ev;
      ev.finished = true;
      ev.error = failure_;
      h->push(std::move(ev));
    };
    for (auto& sl : slots_)
      if (sl->active && sl->handle) fail(sl->handle);
    for (auto& p : queue_) fail(p.handle);
    queue_.clear();
  }
}

void Engine::run_loop() {
  while (true) {
    std::vector<std::pair<int64_t, Pending>> admits;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // A step still queued (run ahead for requests that have stopped since) is read before the engine sleeps.
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || stats_.active > 0 || !in_flight_.empty(); });
      if (stopping_ && queue_.empty() && stats_.active == 0 && in_flight_.empty()) break;
      for (int64_t b = 0; b < B_ && !queue_.empty(); ++b)
        if (!slots_[b]->active) {
          admits.emplace_back(b, std::move(queue_.front()));
          queue_.pop_front();
          slots_[b]->active = true;  // reserved; filled below
          ++stats_.active;
        }
    }
    std::map<int64_t, std::vector<int64_t>> by_length;  // prompts of one length prefill together
    for (auto& [b, p] : admits)
      if (admit(b, std::move(p))) by_length[static_cast<int64_t>(slots_[b]->request.prompt.size())].push_back(b);
    for (const auto& [n, group] : by_length) prefill(group);
    for (int64_t b = 0; b < B_; ++b)
      if (slots_[b]->active && slots_[b]->handle->cancelled()) finish(b, model::FinishReason::Length, true);
    bool any = !in_flight_.empty();
    for (const auto& s : slots_) any = any || s->active;
    if (any) decode_step();
  }
}

bool Engine::admit(int64_t b, Pending p) {
  Slot& s = *slots_[b];
  s.request = std::move(p.request);
  s.handle = std::move(p.handle);
  s.rng = std::make_unique<model::SequenceRng>(s.request.seed);
  s.tokens.clear();
  s.unsent_tokens.clear();
  s.unsent_logprobs.clear();
  s.prompt_logprobs.clear();
  s.sent = 0;
  s.text.reset();
  if (tok_) s.text.emplace(*tok_, s.request.stop_strings);
  s.submitted = p.submitted;
  ++s.epoch;
  rows_changed_ = true;
  const int64_t n = static_cast<int64_t>(s.request.prompt.size());
  s.length = n;
  if (s.handle->cancelled() || (s.request.max_new_tokens == 0 && !s.request.prompt_logprobs)) {
    finish(b, model::FinishReason::Length, s.handle->cancelled());
    return false;
  }
  return true;
}

void Engine::prefill(const std::vector<int64_t>& group) {
  // Prompts of one length, prefilled together as an unpadded batch: each row's computation is that of a lone
  // sequence (causal attention over its own n columns). One slot writes its cache row in place; several go
  // through a temporary cache whose columns [0, n) are then copied into their rows.
  const int64_t G = static_cast<int64_t>(group.size());
  const int64_t n = static_cast<int64_t>(slots_[group[0]]->request.prompt.size());
  std::vector<int64_t> flat;
  for (int64_t b : group) flat.insert(flat.end(), slots_[b]->request.prompt.begin(), slots_[b]->request.prompt.end());
  const at::Device dev = m_.device();
  at::Tensor tokens = at::tensor(flat, at::TensorOptions().dtype(at::kLong)).view({G, n}).to(dev);
  at::Tensor positions = at::arange(n, at::TensorOptions().dtype(at::kLong)).expand({G, n}).contiguous().to(dev);
  model::KVCache kv;
  if (G == 1) {
    for (size_t l = 0; l < cache_.k.size(); ++l) {
      kv.k.push_back(cache_.k[l].narrow(0, group[0], 1));
      kv.v.push_back(cache_.v[l].narrow(0, group[0], 1));
    }
  } else {
    kv = model::KVCache::allocate(m_.config, G, n, m_.dtype(), dev);
  }
  at::Tensor hidden = model::forward_hidden(m_, tokens, positions, &kv);
  at::Tensor logits = model::lm_logits(m_, hidden.narrow(1, n - 1, 1)).squeeze(1);  // (G, V)
  if (G > 1)
    for (size_t l = 0; l < cache_.k.size(); ++l)
      for (int64_t g = 0; g < G; ++g) {
        cache_.k[l][group[g]].narrow(1, 0, n).copy_(kv.k[l][g]);
        cache_.v[l][group[g]].narrow(1, 0, n).copy_(kv.v[l][g]);
      }
  at::Tensor greedy, host;
  std::vector<int64_t> chosen_slots, chosen_rows, chosen_ids;
  for (int64_t g = 0; g < G; ++g) {
    Slot& s = *slots_[group[g]];
    if (s.request.prompt_logprobs) {
      // Position t's logits score prompt token t + 1; in chunks, so that (n, V) float32 logits never exist at once.
      const int64_t k = std::max<int64_t>(s.request.logprobs, 0);
      for (int64_t t0 = 0; t0 < n - 1; t0 += 256) {
        const int64_t len = std::min<int64_t>(256, n - 1 - t0);
        const at::Tensor chunk = model::lm_logits(m_, hidden.narrow(0, g, 1).narrow(1, t0, len)).squeeze(0);
        const std::vector<int64_t> next(s.request.prompt.begin() + t0 + 1, s.request.prompt.begin() + t0 + 1 + len);
        for (auto& lp : model::token_logprobs(chunk, next, k)) s.prompt_logprobs.push_back(std::move(lp));
      }
    }
    if (s.request.max_new_tokens == 0) {  // prompt scoring only
      EngineEvent e;
      e.finished = true;
      e.finish = model::FinishReason::Length;
      e.prompt_logprobs = std::move(s.prompt_logprobs);
      finish(group[g], model::FinishReason::Length, false, std::move(e));
      continue;
    }
    chosen_slots.push_back(group[g]);
    chosen_rows.push_back(g);
    chosen_ids.push_back(choose(group[g], logits, g, greedy, host));
  }
  const auto lps = logprobs_of(logits, chosen_slots, chosen_rows, chosen_ids);
  for (size_t i = 0; i < chosen_slots.size(); ++i) take(chosen_slots[i], chosen_ids[i], lps[i]);
}

std::vector<std::optional<model::TokenLogprob>> Engine::logprobs_of(const at::Tensor& logits,
                                                                   const std::vector<int64_t>& slots,
                                                                   const std::vector<int64_t>& rows,
                                                                   const std::vector<int64_t>& ids) const {
  std::vector<std::optional<model::TokenLogprob>> out(slots.size());
  std::vector<int64_t> want_rows, want_ids;
  int64_t k = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    const int64_t asked = slots_[slots[i]]->request.logprobs;
    if (asked < 0) continue;
    want_rows.push_back(rows[i]);
    want_ids.push_back(ids[i]);
    k = std::max(k, asked);
  }
  if (want_rows.empty()) return out;
  const at::Tensor index = at::tensor(want_rows, at::TensorOptions().dtype(at::kLong)).to(logits.device());
  auto lps = model::token_logprobs(logits.index_select(0, index), want_ids, k);
  for (size_t i = 0, j = 0; i < slots.size(); ++i) {
    const int64_t asked = slots_[slots[i]]->request.logprobs;
    if (asked < 0) continue;
    lps[j].top.resize(static_cast<size_t>(asked));  // the largest k was computed for all
    out[i] = std::move(lps[j++]);
  }
  return out;
}

int64_t Engine::choose(int64_t b, const at::Tensor& logits, int64_t row, at::Tensor& greedy, at::Tensor& host) {
  Slot& s = *slots_[b];
  if (s.request.sampling.greedy()) {
    if (!greedy.defined()) greedy = logits.argmax(-1).to(at::kCPU);
    return greedy.data_ptr<int64_t>()[row];
  }
  if (!host.defined()) host = logits.to(at::kCPU);
  return model::sample_tokens(host.narrow(0, row, 1), s.request.sampling, {s.rng->uniform()})[0];
}

std::vector<StepChoice> Engine::step_choices() const {
  std::lock_guard<std::mutex> lock(mu_);
  return choices_;
}

model::FusedStepOptions Engine::step_options() const {
  return o_.fused;
}

void Engine::take(int64_t b, int64_t id, std::optional<model::TokenLogprob> logprob) {
  Slot& s = *slots_[b];
  if (s.tokens.empty()) s.first_token = std::chrono::steady_clock::now();
  s.tokens.push_back(id);
  s.unsent_tokens.push_back(id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.generated_tokens;
  }
  const auto& eos = m_.config.eos_token_ids;
  const bool is_eos = s.request.stop_on_eos && std::find(eos.begin(), eos.end(), id) != eos.end();
  if (logprob && !is_eos) s.unsent_logprobs.push_back(std::move(*logprob));  // the text has no end-of-sequence
  std::optional<model::FinishReason> why;
  if (s.text && !is_eos && s.text->add(id)) why = model::FinishReason::StopString;
  if (!why && is_eos) why = model::FinishReason::Eos;
  if (!why && static_cast<int64_t>(s.tokens.size()) >= s.request.max_new_tokens) why = model::FinishReason::Length;
  if (why && s.text && s.text->flush()) why = model::FinishReason::StopString;  // the last character's bytes
  const std::string empty;
  const std::string& text = s.text ? s.text->text() : empty;

  EngineEvent e;
  // The text only grows (StreamingText appends complete characters); what could still become a stop string
  // waits. The final event carries the whole text.
  const size_t ready = why ? text.size() : text.size() - hold_back(text, s.request.stop_strings);
  if (ready > s.sent) {
    e.text = text.substr(s.sent, ready - s.sent);
    s.sent = ready;
  }
  e.tokens = std::move(s.unsent_tokens);
  s.unsent_tokens.clear();
  e.logprobs = std::move(s.unsent_logprobs);
  s.unsent_logprobs.clear();
  e.prompt_logprobs = std::move(s.prompt_logprobs);  // empty after the first event
  s.prompt_logprobs.clear();
  if (!why) {
    s.handle->push(std::move(e));
    return;
  }
  e.finished = true;
  e.finish = *why;
  e.full_text = text;
  finish(b, *why, false, std::move(e));
}

void Engine::finish(int64_t b, model::FinishReason why, bool cancelled, std::optional<EngineEvent> final) {
  Slot& s = *slots_[b];
  if (!final) {
    final.emplace();
    final->finished = true;
    final->finish = why;
    final->tokens = std::move(s.unsent_tokens);
    final->logprobs = std::move(s.unsent_logprobs);
    final->full_text = s.text ? s.text->text().substr(0, s.sent) : std::string();
  }
  final->cancelled = cancelled;
  final->prompt_tokens = static_cast<int64_t>(s.request.prompt.size());
  final->completion_tokens = static_cast<int64_t>(s.tokens.size());
  if (!s.tokens.empty()) final->first_token_seconds = std::chrono::duration<double>(s.first_token - s.submitted).count();
  std::shared_ptr<RequestHandle> h = std::move(s.handle);
  s.active = false;
  rows_changed_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    --stats_.active;
    ++stats_.completed;
    stats_.cancelled += cancelled;
  }
  h->push(std::move(*final));  // last: a caller that sees the event sees the counters updated
  cv_.notify_all();
}

}  // namespace chatmill::infer
