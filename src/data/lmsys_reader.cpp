#include "data/lmsys_reader.h"

#include <simdjson.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "data/line_reader.h"

namespace chatmill::data {

namespace dom = simdjson::dom;

OnBadRecord parse_on_bad_record(const std::string& s) {
  if (s == "fail") return OnBadRecord::Fail;
  if (s == "skip") return OnBadRecord::Skip;
  CHATMILL_FAIL("unknown bad-record policy '", s, "'; use fail or skip");
}

void ReadReport::add_skip(const std::string& where, const RecordError& e) {
  ++skipped;
  ++skipped_by_reason[e.reason];
  if (examples.size() < 20) examples.push_back(where + ": " + e.field + ": " + e.message);
}

std::string ReadReport::summary() const {
  std::string s = detail::concat(records, " records read, ", skipped, " skipped");
  for (const auto& [reason, n] : skipped_by_reason) s += detail::concat("\n  ", reason, ": ", n);
  for (const auto& e : examples) s += "\n  e.g. " + e;
  return s;
}

namespace {

// Field access that turns simdjson error codes into RecordErrors naming the field path.
struct Fields {
  RecordError& err;

  bool fail(const char* reason, const std::string& field, const std::string& msg) {
    err = {reason, field, msg};
    return false;
  }
  bool get(dom::element obj, const char* key, const std::string& path, dom::element& out) {
    auto r = obj[key];
    if (r.error() == simdjson::NO_SUCH_FIELD) return fail("missing_field", path, "missing");
    if (r.error()) return fail("wrong_type", path, simdjson::error_message(r.error()));
    out = r.value_unsafe();
    return true;
  }
  bool str(dom::element obj, const char* key, const std::string& path, std::string& out) {
    dom::element e;
    if (!get(obj, key, path, e)) return false;
    std::string_view v;
    if (e.get(v)) return fail("wrong_type", path, "expected a string");
    out.assign(v);
    return true;
  }
  bool boolean(dom::element obj, const char* key, const std::string& path, bool& out) {
    dom::element e;
    if (!get(obj, key, path, e)) return false;
    if (e.get(out)) return fail("wrong_type", path, "expected true or false");
    return true;
  }
  bool integer(dom::element obj, const char* key, const std::string& path, int64_t& out) {
    dom::element e;
    if (!get(obj, key, path, e)) return false;
    if (e.get(out)) return fail("wrong_type", path, "expected an integer");
    return true;
  }
  bool number(dom::element obj, const char* key, const std::string& path, double& out) {
    dom::element e;
    if (!get(obj, key, path, e)) return false;
    if (e.is_double()) out = e.get_double().value_unsafe();
    else if (e.is_int64()) out = static_cast<double>(e.get_int64().value_unsafe());
    else if (e.is_uint64()) out = static_cast<double>(e.get_uint64().value_unsafe());
    else return fail("wrong_type", path, "expected a number");
    return true;
  }
  bool array(dom::element obj, const char* key, const std::string& path, dom::array& out) {
    dom::element e;
    if (!get(obj, key, path, e)) return false;
    if (e.get(out)) return fail("wrong_type", path, "expected a list");
    return true;
  }
  bool object(dom::element e, const std::string& path, dom::object& out) {
    if (e.get(out)) return fail("wrong_type", path, "expected an object");
    return true;
  }
};

thread_local dom::parser tls_parser;

}  // namespace

bool parse_lmsys_line(std::string& line, Conversation& c, RecordError& err) {
  dom::element doc;
  if (auto e = tls_parser.parse(line).get(doc)) {
    err = {"malformed_json", "(line)", simdjson::error_message(e)};
    return false;
  }
  Fields f{err};
  dom::object root;
  if (!f.object(doc, "(record)", root)) return false;
  c = Conversation{};
  if (!f.str(doc, "conversation_id", "conversation_id", c.id) || !f.str(doc, "model", "model", c.model) ||
      !f.str(doc, "language", "language", c.language) || !f.integer(doc, "turn", "turn", c.turn) ||
      !f.boolean(doc, "redacted", "redacted", c.redacted))
    return false;

  dom::array conv;
  if (!f.array(doc, "conversation", "conversation", conv)) return false;
  size_t i = 0;
  for (dom::element m : conv) {
    const std::string path = "conversation[" + std::to_string(i) + "]";
    dom::object mo;
    if (!f.object(m, path, mo)) return false;
    Message msg;
    std::string role;
    if (!f.str(m, "role", path + ".role", role) || !f.str(m, "content", path + ".content", msg.content)) return false;
    if (role == "user") msg.role = Role::User;
    else if (role == "assistant") msg.role = Role::Assistant;
    else return f.fail("bad_value", path + ".role", "'" + role + "' is neither user nor assistant");
    const Role expected = i % 2 == 0 ? Role::User : Role::Assistant;
    if (msg.role != expected)
      return f.fail("roles_not_alternating", path + ".role",
                    std::string("expected ") + role_name(expected) + " (turns must alternate, user first), got " + role);
    c.messages.push_back(std::move(msg));
    ++i;
  }
  if (c.messages.empty()) return f.fail("bad_value", "conversation", "empty conversation");
  dom::array mods;
  if (!f.array(doc, "openai_moderation", "openai_moderation", mods)) return false;
  if (mods.size() != c.messages.size())
    return f.fail("moderation_length", "openai_moderation",
                  "has " + std::to_string(mods.size()) + " entries for " + std::to_string(c.messages.size()) + " messages");
  i = 0;
  for (dom::element m : mods) {
    const std::string path = "openai_moderation[" + std::to_string(i++) + "]";
    Moderation mod;
    dom::element cats, scores;
    if (!f.boolean(m, "flagged", path + ".flagged", mod.flagged) || !f.get(m, "categories", path + ".categories", cats) ||
        !f.get(m, "category_scores", path + ".category_scores", scores))
      return false;
    for (int k = 0; k < 11; ++k) {
      const char* name = kModerationCategories[k];
      if (!f.boolean(cats, name, path + ".categories." + name, mod.categories[k]) ||
          !f.number(scores, name, path + ".category_scores." + name, mod.scores[k]))
        return false;
    }
    c.moderation.push_back(mod);
  }
  return true;
}

void read_lmsys(const std::vector<std::filesystem::path>& files, OnBadRecord policy, ReadReport& report,
                const std::function<void(Conversation&&)>& fn) {
  std::string line;
  Conversation c;
  RecordError err;
  for (const auto& path : files) {
    auto reader = LineReader::open(path);
    while (reader->next(line)) {
      if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are not records
      if (!parse_lmsys_line(line, c, err)) {
        const std::string where = detail::concat(path.string(), ":", reader->line_number());
        if (policy == OnBadRecord::Fail)
          CHATMILL_FAIL("bad LMSYS-Chat-1M record at ", where, ": ", err.field, ": ", err.message,
                        " (rerun with the skip policy to count and skip bad records)");
        report.add_skip(where, err);
        continue;
      }
      ++report.records;
      fn(std::move(c));
    }
  }
}

std::string lmsys_to_json(const Conversation& c) {
  nlohmann::ordered_json j;
  j["conversation_id"] = c.id;
  j["model"] = c.model;
  nlohmann::ordered_json conv = nlohmann::ordered_json::array();
  for (const auto& m : c.messages) conv.push_back({{"content", m.content}, {"role", role_name(m.role)}});
  j["conversation"] = conv;
  j["turn"] = c.turn;
  j["language"] = c.language;
  nlohmann::ordered_json mods = nlohmann::ordered_json::array();
  for (const auto& m : c.moderation) {
    nlohmann::ordered_json cats, scores;
    for (int k = 0; k < 11; ++k) {
      cats[kModerationCategories[k]] = m.categories[k];
      scores[kModerationCategories[k]] = m.scores[k];
    }
    mods.push_back({{"categories", cats}, {"category_scores", scores}, {"flagged", m.flagged}});
  }
  j["openai_moderation"] = mods;
  j["redacted"] = c.redacted;
  return j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

}  // namespace chatmill::data
