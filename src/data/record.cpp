#include "data/record.h"

#include <algorithm>
#include <cstring>

namespace chatmill::data {

const char* role_name(Role r) { return r == Role::User ? "user" : "assistant"; }

int top_category_of(int i) {
  const char* name = kModerationCategories[i];
  for (int t = 0; t < static_cast<int>(kTopCategories.size()); ++t) {
    const size_t n = std::strlen(kTopCategories[t]);
    if (std::strncmp(name, kTopCategories[t], n) == 0 && (name[n] == '\0' || name[n] == '/')) return t;
  }
  return -1;
}

unsigned Moderation::top_flags() const {
  unsigned bits = 0;
  for (int i = 0; i < 11; ++i)
    if (categories[i]) bits |= 1u << top_category_of(i);
  return bits;
}

double Moderation::top_score(int top) const {
  double best = 0;
  for (int i = 0; i < 11; ++i)
    if (top_category_of(i) == top) best = std::max(best, scores[i]);
  return best;
}

}  // namespace chatmill::data
