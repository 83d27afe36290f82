#include "data/subsets/arena_hard.h"

#include "common/error.h"
#include "common/sha256.h"
#include "common/text.h"
#include "data/subsets/conversation_filters.h"

namespace chatmill::data {

ArenaHardBuilder::ArenaHardBuilder(ArenaHardConfig cfg) : cfg_(std::move(cfg)), near_(cfg_.near_duplicate_threshold) {
  CHATMILL_CHECK(cfg_.min_chars >= 0 && cfg_.min_chars <= cfg_.max_chars, "arena_hard: need 0 <= min_chars <= max_chars");
}

void ArenaHardBuilder::add(const Conversation& c) {
  if (c.messages.empty()) return;
  ++seen_;
  if (!cfg_.language.empty() && c.language != cfg_.language) {
    ++other_language_;
    return;
  }
  const std::string& prompt = c.messages[0].content;
  const int64_t len = utf8_length(prompt);
  if (len < cfg_.min_chars || len > cfg_.max_chars) {
    ++bad_length_;
    return;
  }
  if (!exact_.insert(sha256_string(normalize_for_dedup(prompt))).second) {
    ++exact_dups_;
    return;
  }
  if (near_.check_and_add(prompt)) {
    ++near_dups_;
    return;
  }
  nlohmann::ordered_json j = {{"prompt_id", message_id(c, 0)}, {"conversation_id", c.id}, {"model", c.model},
                              {"language", c.language}, {"prompt", prompt}};
  lines_.push_back(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

nlohmann::ordered_json ArenaHardBuilder::finish(const std::filesystem::path& dir) {
  write_lines(dir / "arena_hard_candidates.jsonl", lines_);
  return {{"prompts", lines_.size()},
          {"first_turns_seen", seen_},
          {"other_language", other_language_},
          {"outside_length", bad_length_},
          {"exact_duplicates", exact_dups_},
          {"near_duplicates", near_dups_},
          {"method", "exact: sha256 of lower-cased, whitespace-collapsed text; near: MinHash of character 5-grams, "
                     "64 permutations, 16 LSH bands, estimated Jaccard >= threshold; first occurrence kept"},
          {"files", {"arena_hard_candidates.jsonl"}}};
}

}  // namespace chatmill::data
