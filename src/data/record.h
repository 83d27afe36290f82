// One conversation as LMSYS-Chat-1M releases it (ShareGPT conversations fill the same struct).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace chatmill::data {

enum class Role { User, Assistant };
const char* role_name(Role r);  // "user", "assistant"

struct Message {
  Role role = Role::User;
  std::string content;
};

// The 11 OpenAI moderation categories, in the release's order.
inline constexpr std::array<const char*, 11> kModerationCategories = {
    "harassment", "harassment/threatening", "hate",   "hate/threatening", "self-harm", "self-harm/instructions",
    "self-harm/intent", "sexual", "sexual/minors", "violence", "violence/graphic"};
// The paper's five top-level categories (Table 2); a sub-category "a/b" folds into "a".
inline constexpr std::array<const char*, 5> kTopCategories = {"sexual", "harassment", "violence", "hate", "self-harm"};
// Index into kTopCategories of moderation category `i`.
int top_category_of(int i);

struct Moderation {
  std::array<bool, 11> categories{};
  std::array<double, 11> scores{};
  bool flagged = false;
  // Top-level categories flagged here (bit i = kTopCategories[i]).
  unsigned top_flags() const;
  // Highest score among the sub-categories of top-level category `top`.
  double top_score(int top) const;
};

struct Conversation {
  std::string id;
  std::string model;
  std::string language;
  std::string system;  // ShareGPT "system" turns; empty for LMSYS
  int64_t turn = 0;
  bool redacted = false;
  std::vector<Message> messages;      // user first, alternating
  std::vector<Moderation> moderation;  // one per message (LMSYS), or empty (ShareGPT)
};

}  // namespace chatmill::data
