// Which chat model plays a role (model under test, judge, rater, moderator), as users write it on the command
// line or in a YAML config: a local HF folder, or an OpenAI-compatible endpoint.
//   "checkpoints/run/model"                                   a local folder (vicuna_v1.1 template)
//   "local=DIR,template=llama-2,dtype=bfloat16,device=cuda"   the same with settings
//   "url=http://127.0.0.1:8000/v1,model=gpt-4,key_env=OPENAI_API_KEY,concurrency=8,timeout=60,retries=3"
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "eval/chat_model.h"

namespace YAML {
class Node;
}

namespace chatmill::eval {

struct ChatSpec {
  std::string local;                      // model folder (or empty for an endpoint)
  std::string tokenizer;                  // default: the folder's tokenizer.model
  std::string template_name = "vicuna_v1.1";
  std::string dtype = "float32", device = "cpu";
  int64_t batch_size = 8;
  HttpChatOptions http;                   // when url is set
  std::string name;                       // default: "local:<folder name>" or "<model>@<url>"
};

// Errors name the bad key and `where` (the option or config key it came from).
ChatSpec parse_chat_spec(const std::string& text, const std::string& where);
ChatSpec chat_spec_from_yaml(const YAML::Node& node, const std::string& where);

// A chat model with what it needs kept alive (the loaded weights and tokenizer of a local one).
class LoadedChat {
 public:
  explicit LoadedChat(const ChatSpec& spec);
  ChatModel& get() { return *chat_; }
  const model::Model* local_model() const { return model_ ? &*model_ : nullptr; }
  const std::string& folder() const { return folder_; }

 private:
  std::optional<model::Model> model_;
  std::optional<model::Tokenizer> tok_;
  std::unique_ptr<ChatModel> chat_;
  std::string folder_;
};

}  // namespace chatmill::eval
