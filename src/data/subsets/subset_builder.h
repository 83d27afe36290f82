// A training or evaluation subset cut from one streaming pass over the conversations.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "data/record.h"

namespace chatmill::data {

class SubsetBuilder {
 public:
  virtual ~SubsetBuilder() = default;
  virtual std::string name() const = 0;
  // Sees every accepted conversation once, in input order.
  virtual void add(const Conversation& c) = 0;
  // Writes the subset's files into `dir` (deterministically: the same inputs and config give the same bytes)
  // and returns its counts for the manifest.
  virtual nlohmann::ordered_json finish(const std::filesystem::path& dir) = 0;
};

// Message ids as the moderation teacher file writes them: "<conversation_id>:<0-based message index>".
std::string message_id(const Conversation& c, size_t index);

// Highest category score among a conversation's flagged user messages (0 when none is flagged).
double max_flagged_user_score(const Conversation& c);

}  // namespace chatmill::data
