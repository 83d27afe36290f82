// A chat model that is a model in this process.
#include <algorithm>

#include "common/error.h"
#include "data/encode.h"
#include "eval/chat_model.h"
#include "infer/engine.h"

namespace chatmill::eval {

namespace {

// Requests go through the continuous-batching engine: a short answer leaves its slot to the next request instead
// of waiting for the longest one of a fixed batch.
class LocalChat : public ChatModel {
 public:
  LocalChat(const model::Model& m, const model::Tokenizer& tok, data::ChatTemplate tmpl, std::string name, int64_t batch,
            std::function<bool()> stop)
      : m_(m), tok_(tok), enc_(tok), tmpl_(std::move(tmpl)), name_(std::move(name)), batch_(batch), stop_(std::move(stop)) {
    CHATMILL_CHECK(batch_ >= 1, "chat model ", name_, ": batch size must be at least 1");
  }
  std::string name() const override { return name_; }

  std::vector<ChatReply> complete(const std::vector<ChatRequest>& requests) override {
    std::vector<infer::EngineRequest> reqs;
    int64_t longest = 0;
    for (const ChatRequest& q : requests) {
      data::Conversation c;
      c.system = q.system;
      for (const auto& [u, a] : q.history) {
        c.messages.push_back({data::Role::User, u});
        c.messages.push_back({data::Role::Assistant, a});
      }
      c.messages.push_back({data::Role::User, q.user});
      const auto e = enc_.encode(tmpl_.prompt_segments(c));
      infer::EngineRequest r;
      r.prompt.assign(e.ids.begin(), e.ids.end());
      r.max_new_tokens = q.max_tokens;
      r.sampling.temperature = q.temperature < 1e-4 ? 0.0 : q.temperature;  // FastChat's greedy threshold
      r.seed = q.seed;
      longest = std::max<int64_t>(longest, static_cast<int64_t>(r.prompt.size()) + r.max_new_tokens);
      reqs.push_back(std::move(r));
    }
    if (reqs.empty()) return {};
    // The cache is sized for this call's longest request (and kept while later calls fit in it).
    if (!engine_ || engine_->context() < longest)
      engine_ = std::make_unique<infer::Engine>(m_, &tok_, infer::EngineOptions{batch_, longest, false});
    std::vector<ChatReply> out;
    for (auto& r : engine_->run(reqs, stop_)) out.push_back({std::move(r.text), ""});
    return out;
  }

 private:
  const model::Model& m_;
  const model::Tokenizer& tok_;
  data::SegmentEncoder enc_;
  data::ChatTemplate tmpl_;
  std::string name_;
  int64_t batch_;
  std::function<bool()> stop_;
  std::unique_ptr<infer::Engine> engine_;
};

}  // namespace

std::unique_ptr<ChatModel> make_local_chat(const model::Model& m, const model::Tokenizer& tok, data::ChatTemplate tmpl,
                                           std::string name, int64_t batch_size, std::function<bool()> stop) {
  return std::make_unique<LocalChat>(m, tok, std::move(tmpl), std::move(name), batch_size, std::move(stop));
}

}  // namespace chatmill::eval
