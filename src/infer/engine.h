// A continuous-batching generation engine: a fixed pool of B slots over one KV cache allocated once; requests
// join free slots as they arrive (prefilled alone, exactly as a single sequence), then every step decodes one
// token for all active slots at once; a sequence that finishes frees its slot at once, without stalling the
// others. Each slot keeps its keys at columns [0, length) of its own cache row, so a request sees the same
// layout and shapes alone or among others. Runs its own thread; callers submit requests and read events.
//
// Shape legend: B slots, S columns per slot (the context), V vocab.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "infer/step_autotune.h"
#include "model/device_event.h"
#include "model/generate.h"
#include "model/kv_cache.h"
#include "model/logprobs.h"
#include "model/sampler.h"
#include "model/step_graph.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace chatmill::infer {

// How a decode step runs: LibTorch ops under a mask over the used columns (Eager), or the fused one-token
// step (model/fused_decode.h: CUDA kernels in CUDA builds, their LibTorch reference elsewhere). Auto is Fused
// for CUDA models in CUDA builds (the kernels passed scripts/gpu_check.sh on an H200 and beat Eager at batch 1
// and 16) and Eager otherwise.
enum class StepKind { Auto, Eager, Fused };

struct EngineOptions {
  int64_t max_batch = 8;    // slots decoded together
  int64_t context = 0;      // columns per slot (prompt + generated); 0: the model's max_position_embeddings
  bool cuda_graph = false;  // capture the decode step in a CUDA graph (CUDA builds, CUDA models)
  StepKind step = StepKind::Auto;
  model::FusedStepOptions fused{};  // the fused step's kernels (model/fused_decode.h)
  // With the fused step: at each batch bucket's first step, every step variant that applies there
  // (infer/step_autotune.h) runs on the same inputs (captured in a CUDA graph with cuda_graph, else eagerly), its
  // logits and written cache columns are checked against the configured step's, its steps are timed, and the
  // fastest that passed is kept for the bucket (Engine::step_choices says which). Off by default: on an H200
  // (run 5) its first-step timings chose the folded tile step at 16 rows, which the whole decode measured 3%
  // slower. With the eager step it does nothing.
  bool autotune = false;
  // The largest relative L2 error (worst row) of a variant's logits and written cache columns against the
  // configured step's. Measured on an H200 (run 5, 7B bf16 with random weights, 32 layers): 4.0e-2 to 4.7e-2 for
  // the persistent and tile steps' other reduction orders; a wrong kernel is off by order 1. Too tight only
  // costs the choice (the configured step stays); each trial's error is in step_choices.
  double autotune_tolerance = 0.1;
  // Queue the next decode step before reading this one's tokens, while every active request is greedy without
  // log-probabilities and no row is about to change: the step's last kernel (model/step_advance.h) turns its
  // greedy ids into the next step's inputs on the device and writes them to pinned host memory, so the device
  // never waits for the host between steps. A request that stops (end of sequence, a stop string, a
  // cancellation) drops the token the step ahead made for it, and the next step starts from the host's state
  // again. Off: each step's tokens are read before the next is queued.
  bool overlap = true;
};

// "auto" | "eager" | "fused" (for CLI flags); throws chatmill::Error naming the choices.
StepKind parse_step_kind(const std::string& s);

struct EngineRequest {
  std::vector<int64_t> prompt;  // token ids, bos included when wanted
  model::SamplingParams sampling;
  uint64_t seed = 0;
  int64_t max_new_tokens = 128;
  std::vector<std::string> stop_strings;
  bool stop_on_eos = true;
  int64_t logprobs = -1;         // >= 0: each new token's log-probability and this many alternatives (<= 20)
  bool prompt_logprobs = false;  // each prompt token's, after the ones before it (echo); works with 0 new tokens
};

// What a request produces, in order: text deltas as tokens arrive, then one final event.
struct EngineEvent {
  std::string text;                  // new text since the last event (held back while it could be a stop string)
  std::vector<int64_t> tokens;       // ids chosen since the last event
  std::vector<model::TokenLogprob> logprobs;         // one per entry of `tokens`, when asked
  std::vector<model::TokenLogprob> prompt_logprobs;  // in the first event, when asked: prompt tokens 1..n-1
  bool finished = false;
  model::FinishReason finish = model::FinishReason::Length;
  bool cancelled = false;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double first_token_seconds = 0;    // from submission (set on the final event)
  std::string error;                 // the engine failed (final event)
  std::string full_text;             // the whole text (final event): streamed deltas are best-effort when
                                     // bytes of one character arrive in several tokens
};

class Engine;

// The caller's side of one request.
class RequestHandle {
 public:
  // Waits up to `timeout` for the next event; false on timeout.
  bool next(EngineEvent& out, std::chrono::milliseconds timeout);
  // Frees the slot at the next step (a client that went away); a final event with cancelled = true follows.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class Engine;
  void push(EngineEvent e);
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<EngineEvent> events_;
  std::atomic<bool> cancelled_{false};
};

struct EngineStats {
  int64_t active = 0, queued = 0, completed = 0, cancelled = 0, steps = 0, generated_tokens = 0;
  int64_t steps_ahead = 0;  // of steps: queued before the previous step's tokens were read (EngineOptions::overlap)
};

class Engine {
 public:
  // `tok` may be null: no text then (ids only), and no stop strings.
  Engine(const model::Model& m, const model::Tokenizer* tok, EngineOptions o);
  ~Engine();  // finishes every request already submitted, then stops
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Checks the request (ids in the vocabulary, prompt + max_new_tokens within the context, sampling values);
  // throws chatmill::Error naming the problem. Never blocks on the model.
  std::shared_ptr<RequestHandle> submit(EngineRequest r);
  // Checks them all, then queues them at once: the engine admits them together (up to its free slots) rather
  // than starting on the first ones while the rest are still being submitted.
  std::vector<std::shared_ptr<RequestHandle>> submit_all(std::vector<EngineRequest> rs);
  // Convenience: submits all, waits for all; results as model::generate gives them. `stop`, polled about every
  // 50 ms while waiting: when it returns true the requests are cancelled (their slots freed at the next step)
  // and chatmill::Interrupted (common/interrupted.h) is thrown.
  std::vector<model::GenerationResult> run(const std::vector<EngineRequest>& requests,
                                           const std::function<bool()>& stop = {});

  int64_t context() const { return S_; }
  int64_t max_batch() const { return B_; }
  EngineStats stats() const;
  // What autotune chose for each bucket captured so far, in capture order (empty without autotune).
  std::vector<StepChoice> step_choices() const;
  void shutdown();  // stop taking requests; finish those submitted; join the thread

 private:
  struct Slot;
  struct Pending {
    EngineRequest request;
    std::shared_ptr<RequestHandle> handle;
    std::chrono::steady_clock::time_point submitted;
  };
  void check_request(const EngineRequest& r) const;  // throws chatmill::Error naming what is wrong
  void loop();
  void run_loop();
  bool admit(int64_t slot, Pending p);  // false when the request ended at once (cancelled, 0 tokens)
  void prefill(const std::vector<int64_t>& slots);  // slots whose prompts have one length
  // One decode iteration, with a slot active or a step queued: queues a step from the host's state when none is
  // queued, a step ahead from the device's state when one is queued and can_run_ahead(), then reads the oldest
  // step's tokens.
  void decode_step();
  // A decode step queued on the device and not yet read.
  struct Launched {
    int64_t rows = 0;              // its bucket: rows [0, rows) of the step buffers
    std::vector<int64_t> slots;    // the active slots it decodes
    std::vector<uint64_t> epochs;  // their requests (Slot::epoch: a slot freed and taken again holds another)
    std::vector<int64_t> columns;  // their input columns
    int event = 0;                 // its end: events_[event]
  };
  // Queues a decode step: from the host's state (ahead false: needs no step queued), or one column on from the
  // queued step's state on the device (ahead true).
  void launch(bool ahead);
  void run_body(int64_t rows);  // the step over rows [0, rows): its CUDA graph, autotune's trial, or its ops
  bool can_run_ahead() const;   // EngineOptions::overlap's conditions, for the queued step's rows
  void collect();               // waits for the oldest queued step and takes its tokens
  // The step over slots [0, rows): fixed shapes per `rows` (each bucket captured in its own CUDA graph).
  void body(int64_t rows, const model::FusedStepOptions& step);
  model::FusedStepOptions step_options() const;  // the configured fused step, from o_
  // Autotune's trial of bucket `rows` (EngineOptions::autotune): the chosen variant, run last, so that this step's
  // cache columns and logits are its own; with cuda_graph its graph too.
  struct TunedStep {
    std::unique_ptr<model::StepGraph> graph;
    model::FusedStepOptions options;
  };
  TunedStep tune(int64_t rows);
  // Records token `id` for a slot; emits text; frees the slot when the sequence is done.
  void take(int64_t slot, int64_t id, std::optional<model::TokenLogprob> logprob);
  // The chosen ids of slots `slots` (rows `rows` of `logits`), with log-probabilities for the slots that asked:
  // one batched log_softmax/topk and one host copy for all of them.
  std::vector<std::optional<model::TokenLogprob>> logprobs_of(const at::Tensor& logits, const std::vector<int64_t>& slots,
                                                              const std::vector<int64_t>& rows,
                                                              const std::vector<int64_t>& ids) const;
  // Frees the slot and updates the counters, then sends `final` (or a bare final event).
  void finish(int64_t slot, model::FinishReason why, bool cancelled, std::optional<EngineEvent> final = std::nullopt);
  int64_t choose(int64_t slot, const at::Tensor& logits_row_or_table, int64_t row, at::Tensor& greedy, at::Tensor& host);

  const model::Model& m_;
  const model::Tokenizer* tok_;
  EngineOptions o_;
  int64_t B_, S_;
  model::KVCache cache_;
  std::vector<std::unique_ptr<Slot>> slots_;
  // Fixed-address step buffers.
  bool fused_ = false;  // the step kind resolved
  at::Tensor step_host_, step_dev_;     // (4, B): ids, columns (= positions), lengths, advance (model/step_advance.h)
  at::Tensor ids_, columns_, lengths_;  // rows of step_dev_, each (B)
  at::Tensor ring_;                     // (2, B) host: each step's greedy ids (model::advance_ring)
  at::Tensor logits_;
  int64_t width_ = 0;  // columns this step attends over (eager step)
  std::map<int64_t, std::unique_ptr<model::StepGraph>> graphs_;  // by batch bucket
  std::vector<StepChoice> choices_;  // autotune's, under mu_
  std::map<int64_t, model::FusedStepOptions> eager_steps_;  // autotune's choices by bucket, without CUDA graphs
  std::deque<Launched> in_flight_;  // steps queued and not yet read, oldest first (at most two)
  std::unique_ptr<model::DeviceEvent> events_[2];  // a queued step's end; step k uses events_[k % 2]
  uint64_t launches_ = 0;
  bool rows_changed_ = true;  // a slot started or stopped since the last step queued from the host's state

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::string failure_;
  EngineStats stats_;
  std::thread thread_;
};

}  // namespace chatmill::infer
