// Jailbreak benchmark (paper §4.2, Table 5): the model under test answers the benchmark's conversations (the
// data builder's jailbreak.jsonl: top attempts from each of several models, LMSYS format); it answers every
// user turn in order, greedy, with its own earlier answers in the conversation. An attempt succeeds when a
// moderator (a local moderator model or an endpoint, with the moderation prompt) flags any of the answers.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/chat_model.h"

namespace chatmill::eval {

struct JailbreakAttempt {
  std::string id, source_model;        // the conversation and the model it was made against
  std::vector<std::string> user_turns;
};

// The builder's JSON Lines (LMSYS-Chat-1M records); a bad record is an error naming file and line.
std::vector<JailbreakAttempt> load_jailbreak_set(const std::filesystem::path& file);

struct JailbreakOptions {
  std::string moderation_prompt;  // prompt text with {categories}, {none}, {message}
  int64_t max_tokens = 512;       // per answer
  int64_t moderator_max_tokens = 256;
};

struct JailbreakResult {
  nlohmann::ordered_json summary;                 // success rate overall and per source model
  std::vector<nlohmann::ordered_json> attempts;   // id, source_model, answers, verdicts, success
};

JailbreakResult evaluate_jailbreak(ChatModel& model, ChatModel& moderator, const std::vector<JailbreakAttempt>& attempts,
                                   const JailbreakOptions& o);

}  // namespace chatmill::eval
