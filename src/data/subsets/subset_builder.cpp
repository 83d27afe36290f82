#include "data/subsets/subset_builder.h"

#include <algorithm>

namespace chatmill::data {

std::string message_id(const Conversation& c, size_t index) { return c.id + ":" + std::to_string(index); }

double max_flagged_user_score(const Conversation& c) {
  double best = 0;
  for (size_t i = 0; i < c.messages.size() && i < c.moderation.size(); ++i)
    if (c.messages[i].role == Role::User && c.moderation[i].flagged)
      best = std::max(best, *std::max_element(c.moderation[i].scores.begin(), c.moderation[i].scores.end()));
  return best;
}

}  // namespace chatmill::data
