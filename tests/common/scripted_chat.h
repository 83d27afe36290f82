// A chat model whose replies a test scripts: reply(request) -> text; it records every request it was sent.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "eval/chat_model.h"

namespace chatmill::testing {

class ScriptedChat : public eval::ChatModel {
 public:
  ScriptedChat(std::string name, std::function<std::string(const eval::ChatRequest&)> reply)
      : name_(std::move(name)), reply_(std::move(reply)) {}
  std::string name() const override { return name_; }
  std::vector<eval::ChatReply> complete(const std::vector<eval::ChatRequest>& requests) override {
    std::vector<eval::ChatReply> out;
    for (const auto& r : requests) {
      seen.push_back(r);
      out.push_back({reply_(r), ""});
    }
    return out;
  }
  std::vector<eval::ChatRequest> seen;

 private:
  std::string name_;
  std::function<std::string(const eval::ChatRequest&)> reply_;
};

}  // namespace chatmill::testing
