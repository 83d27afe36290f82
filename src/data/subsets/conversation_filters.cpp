#include "data/subsets/conversation_filters.h"

#include <unistd.h>

#include "common/error.h"
#include "data/line_reader.h"
#include "data/lmsys_reader.h"

namespace chatmill::data {

namespace {

bool any_flagged(const Conversation& c) {
  for (const auto& m : c.moderation)
    if (m.flagged) return true;
  return false;
}

nlohmann::ordered_json model_counts(const std::map<std::string, int64_t>& m) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}

}  // namespace

void write_lines(const std::filesystem::path& path, const std::vector<std::string>& lines) {
  const auto tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    CHATMILL_CHECK(out, "cannot write ", tmp);
    for (const auto& l : lines) out << l << '\n';
    CHATMILL_CHECK(out, "failed writing ", tmp, " (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

HighQualityBuilder::HighQualityBuilder(std::vector<std::string> models, bool exclude_flagged)
    : models_(models.begin(), models.end()), exclude_flagged_(exclude_flagged) {
  CHATMILL_CHECK(!models_.empty(), "highquality: the model list is empty");
}

void HighQualityBuilder::add(const Conversation& c) {
  if (!models_.count(c.model) || (exclude_flagged_ && any_flagged(c))) return;
  lines_.push_back(lmsys_to_json(c));
  ++per_model_[c.model];
}

nlohmann::ordered_json HighQualityBuilder::finish(const std::filesystem::path& dir) {
  write_lines(dir / "highquality.jsonl", lines_);
  return {{"conversations", lines_.size()}, {"per_model", model_counts(per_model_)}, {"files", {"highquality.jsonl"}}};
}

UpvoteBuilder::UpvoteBuilder(const std::filesystem::path& votes, std::vector<std::string> closed_models,
                             bool exclude_flagged)
    : closed_(closed_models.begin(), closed_models.end()), exclude_flagged_(exclude_flagged) {
  auto reader = LineReader::open(votes);
  std::string line;
  while (reader->next(line)) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = detail::concat(votes.string(), ":", reader->line_number());
    nlohmann::json v;
    try {
      v = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      CHATMILL_FAIL("malformed JSON in votes file at ", where, ": ", e.what());
    }
    for (const char* key : {"winner", "conversation_a_id", "conversation_b_id"})
      CHATMILL_CHECK(v.contains(key) && v[key].is_string(), "votes file ", where, ": field '", key,
                     "' is missing or not a string");
    const std::string winner = v["winner"];
    ++battles_;
    if (winner == "model_a") winners_.insert(v["conversation_a_id"].get<std::string>());
    else if (winner == "model_b") winners_.insert(v["conversation_b_id"].get<std::string>());
    else if (winner == "tie" || winner == "tie (bothbad)") ++ties_;
    else CHATMILL_FAIL("votes file ", where, ": winner '", winner, "' is not model_a, model_b, tie or tie (bothbad)");
  }
}

void UpvoteBuilder::add(const Conversation& c) {
  if (closed_.count(c.model) || !winners_.count(c.id) || (exclude_flagged_ && any_flagged(c))) return;
  lines_.push_back(lmsys_to_json(c));
  ++per_model_[c.model];
}

nlohmann::ordered_json UpvoteBuilder::finish(const std::filesystem::path& dir) {
  write_lines(dir / "upvote.jsonl", lines_);
  return {{"conversations", lines_.size()}, {"battles", battles_}, {"ties", ties_},
          {"winning_conversations_in_votes", winners_.size()}, {"per_model", model_counts(per_model_)},
          {"files", {"upvote.jsonl"}}};
}

}  // namespace chatmill::data
