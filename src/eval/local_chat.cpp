// A chat model that is a model in this process.
#include "common/error.h"
#include "data/encode.h"
#include "eval/chat_model.h"
#include "model/generate.h"

namespace chatmill::eval {

namespace {

class LocalChat : public ChatModel {
 public:
  LocalChat(const model::Model& m, const model::Tokenizer& tok, data::ChatTemplate tmpl, std::string name, int64_t batch)
      : m_(m), tok_(tok), enc_(tok), tmpl_(std::move(tmpl)), name_(std::move(name)), batch_(batch) {
    CHATMILL_CHECK(batch_ >= 1, "chat model ", name_, ": batch size must be at least 1");
  }
  std::string name() const override { return name_; }

  std::vector<ChatReply> complete(const std::vector<ChatRequest>& requests) override {
    std::vector<ChatReply> out;
    for (size_t start = 0; start < requests.size(); start += static_cast<size_t>(batch_)) {
      const size_t end = std::min(requests.size(), start + static_cast<size_t>(batch_));
      std::vector<model::GenerationRequest> gen;
      for (size_t i = start; i < end; ++i) {
        const ChatRequest& q = requests[i];
        data::Conversation c;
        c.system = q.system;
        for (const auto& [u, a] : q.history) {
          c.messages.push_back({data::Role::User, u});
          c.messages.push_back({data::Role::Assistant, a});
        }
        c.messages.push_back({data::Role::User, q.user});
        const auto e = enc_.encode(tmpl_.prompt_segments(c));
        model::GenerationRequest r;
        r.prompt.assign(e.ids.begin(), e.ids.end());
        r.max_new_tokens = q.max_tokens;
        r.sampling.temperature = q.temperature < 1e-4 ? 0.0 : q.temperature;  // FastChat's greedy threshold
        r.seed = q.seed;
        gen.push_back(std::move(r));
      }
      model::GenerateOptions o;
      o.tokenizer = &tok_;
      for (auto& res : model::generate(m_, gen, o)) out.push_back({std::move(res.text), ""});
    }
    return out;
  }

 private:
  const model::Model& m_;
  const model::Tokenizer& tok_;
  data::SegmentEncoder enc_;
  data::ChatTemplate tmpl_;
  std::string name_;
  int64_t batch_;
};

}  // namespace

std::unique_ptr<ChatModel> make_local_chat(const model::Model& m, const model::Tokenizer& tok, data::ChatTemplate tmpl,
                                           std::string name, int64_t batch_size) {
  return std::make_unique<LocalChat>(m, tok, std::move(tmpl), std::move(name), batch_size);
}

}  // namespace chatmill::eval
