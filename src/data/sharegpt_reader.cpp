#include "data/sharegpt_reader.h"

#include <simdjson.h>

#include "common/error.h"

namespace chatmill::data {

namespace {

bool parse_entry(simdjson::dom::element e, size_t index, Conversation& c, RecordError& err) {
  auto fail = [&](const char* reason, std::string field, std::string msg) {
    err = {reason, std::move(field), std::move(msg)};
    return false;
  };
  c = Conversation{};
  if (!e.is_object()) return fail("wrong_type", "(entry)", "expected an object");
  std::string_view id;
  if (auto r = e["id"]; r.error() == simdjson::SUCCESS && r.get(id) == simdjson::SUCCESS) c.id.assign(id);
  else c.id = "sharegpt-" + std::to_string(index);
  simdjson::dom::array turns;
  auto r = e["conversations"];
  if (r.error() == simdjson::NO_SUCH_FIELD) return fail("missing_field", "conversations", "missing");
  if (r.get(turns)) return fail("wrong_type", "conversations", "expected a list");
  size_t i = 0;
  for (simdjson::dom::element t : turns) {
    const std::string path = "conversations[" + std::to_string(i++) + "]";
    std::string_view from, value;
    if (t["from"].get(from)) return fail("wrong_type", path + ".from", "missing or not a string");
    if (t["value"].get(value)) return fail("wrong_type", path + ".value", "missing or not a string");
    Role role;
    if (from == "human" || from == "user") role = Role::User;
    else if (from == "gpt" || from == "chatgpt" || from == "bard" || from == "bing" || from == "assistant") role = Role::Assistant;
    else if (from == "system" && i == 1) {
      c.system.assign(value);
      continue;
    } else return fail("bad_value", path + ".from", "unknown speaker '" + std::string(from) + "'");
    if (c.messages.empty() && role != Role::User) continue;  // FastChat skips a first non-human turn
    const Role expected = c.messages.size() % 2 == 0 ? Role::User : Role::Assistant;
    if (role != expected)
      return fail("roles_not_alternating", path + ".from",
                  std::string("expected ") + role_name(expected) + ", got '" + std::string(from) + "'");
    c.messages.push_back({role, std::string(value)});
  }
  if (c.messages.empty()) return fail("bad_value", "conversations", "no user turn");
  c.turn = static_cast<int64_t>((c.messages.size() + 1) / 2);
  c.model = "sharegpt";
  return true;
}

}  // namespace

void read_sharegpt(const std::filesystem::path& file, OnBadRecord policy, ReadReport& report,
                   const std::function<void(Conversation&&)>& fn) {
  simdjson::dom::parser parser;
  simdjson::padded_string text;
  CHATMILL_CHECK(simdjson::padded_string::load(file.string()).get(text) == simdjson::SUCCESS, "cannot read ", file);
  simdjson::dom::element doc;
  if (auto e = parser.parse(text).get(doc))
    CHATMILL_FAIL("malformed JSON in ShareGPT file ", file, ": ", simdjson::error_message(e));
  simdjson::dom::array entries;
  CHATMILL_CHECK(doc.get(entries) == simdjson::SUCCESS, "ShareGPT file ", file, " must hold a JSON list of conversations");
  size_t index = 0;
  Conversation c;
  RecordError err;
  for (simdjson::dom::element e : entries) {
    if (!parse_entry(e, index, c, err)) {
      const std::string where = detail::concat(file.string(), ": entry ", index);
      if (policy == OnBadRecord::Fail)
        CHATMILL_FAIL("bad ShareGPT conversation at ", where, ": ", err.field, ": ", err.message,
                      " (rerun with the skip policy to count and skip bad records)");
      report.add_skip(where, err);
    } else {
      ++report.records;
      fn(std::move(c));
    }
    ++index;
  }
}

}  // namespace chatmill::data
