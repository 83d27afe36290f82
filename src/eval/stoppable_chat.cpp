// A chat model that asks before each slice of requests whether to go on (model/chat_model.h).
#include <algorithm>

#include "common/error.h"
#include "common/interrupted.h"
#include "eval/chat_model.h"

namespace chatmill::eval {

namespace {

class StoppableChat : public ChatModel {
 public:
  StoppableChat(ChatModel& inner, std::function<bool()> stop, size_t slice)
      : inner_(inner), stop_(std::move(stop)), slice_(std::max<size_t>(slice, 1)) {}
  std::string name() const override { return inner_.name(); }  // the same cache keys as the model itself

  std::vector<ChatReply> complete(const std::vector<ChatRequest>& requests) override {
    std::vector<ChatReply> out;
    out.reserve(requests.size());
    for (size_t start = 0; start < requests.size(); start += slice_) {
      if (stop_ && stop_())
        throw Interrupted(inner_.name() + " stopped as asked after " + std::to_string(start) + " of " +
                          std::to_string(requests.size()) + " requests");
      const size_t end = std::min(requests.size(), start + slice_);
      std::vector<ChatReply> part = inner_.complete({requests.begin() + start, requests.begin() + end});
      for (auto& r : part) out.push_back(std::move(r));
    }
    return out;
  }

 private:
  ChatModel& inner_;
  std::function<bool()> stop_;
  size_t slice_;
};

}  // namespace

std::unique_ptr<ChatModel> make_stoppable_chat(ChatModel& inner, std::function<bool()> stop, size_t slice) {
  return std::make_unique<StoppableChat>(inner, std::move(stop), slice);
}

}  // namespace chatmill::eval
