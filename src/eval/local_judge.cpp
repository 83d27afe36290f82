// A judge that is a model in this process.
#include "common/error.h"
#include "data/encode.h"
#include "eval/judge.h"
#include "model/generate.h"

namespace chatmill::eval {

namespace {

class LocalJudge : public Judge {
 public:
  LocalJudge(const model::Model& m, const model::Tokenizer& tok, data::ChatTemplate tmpl, std::string name, int64_t batch)
      : m_(m), tok_(tok), enc_(tok), tmpl_(std::move(tmpl)), name_(std::move(name)), batch_(batch) {}
  std::string name() const override { return name_; }

  std::vector<JudgeReply> complete(const std::vector<JudgeRequest>& requests) override {
    std::vector<JudgeReply> out;
    for (size_t start = 0; start < requests.size(); start += static_cast<size_t>(batch_)) {
      const size_t end = std::min(requests.size(), start + static_cast<size_t>(batch_));
      std::vector<model::GenerationRequest> gen;
      for (size_t i = start; i < end; ++i) {
        data::Conversation c;
        c.system = requests[i].system;
        c.messages = {{data::Role::User, requests[i].user}};
        const auto e = enc_.encode(tmpl_.prompt_segments(c));
        model::GenerationRequest r;
        r.prompt.assign(e.ids.begin(), e.ids.end());
        r.max_new_tokens = requests[i].max_tokens;
        r.sampling.temperature = requests[i].temperature;
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

std::unique_ptr<Judge> make_local_judge(const model::Model& m, const model::Tokenizer& tok, data::ChatTemplate tmpl,
                                        std::string name, int64_t batch_size) {
  return std::make_unique<LocalJudge>(m, tok, std::move(tmpl), std::move(name), batch_size);
}

}  // namespace chatmill::eval
