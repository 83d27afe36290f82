#include "data/chat_template.h"

#include "common/error.h"

namespace chatmill::data {

namespace {

const char* kVicunaSystem =
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions.";

// Appends text to the last segment when it has the same training flag and exchange, else starts one.
void add_text(std::vector<Segment>& out, const std::string& text, bool trained, int exchange) {
  if (!out.empty() && out.back().special == Special::None && out.back().trained == trained &&
      out.back().exchange == exchange) {
    out.back().text += text;
  } else {
    out.push_back({text, Special::None, trained, exchange});
  }
}

void add_special(std::vector<Segment>& out, Special s, bool trained, int exchange) {
  out.push_back({"", s, trained, exchange});
}

// Renders user/assistant pairs; `reply_count` replies are rendered, and when `open_turn` the last user
// message is rendered with the assistant's cue and no reply.
std::vector<Segment> render(const ChatTemplate& t, const Conversation& c, size_t reply_count, bool open_turn) {
  const std::string& system = c.system.empty() ? t.system : c.system;
  std::vector<Segment> out;
  add_special(out, Special::Bos, false, 0);
  const size_t exchanges = reply_count + (open_turn ? 1 : 0);
  for (size_t k = 0; k < exchanges; ++k) {
    const int ex = static_cast<int>(k);
    const std::string& user = c.messages[2 * k].content;
    const bool has_reply = k < reply_count;
    if (t.kind == TemplateKind::VicunaV11) {
      if (k == 0) add_text(out, system + " ", false, ex);
      add_text(out, "USER: " + user + " ASSISTANT:", false, ex);
      if (has_reply) {
        add_text(out, " " + c.messages[2 * k + 1].content, true, ex);
        add_special(out, Special::Eos, true, ex);
      }
    } else {
      if (k > 0) add_special(out, Special::Bos, false, ex);
      if (k == 0 && !system.empty()) add_text(out, "[INST] <<SYS>>\n" + system + "\n<</SYS>>\n\n" + user + " [/INST]", false, ex);
      else add_text(out, "[INST] " + user + " [/INST]", false, ex);
      if (has_reply) {
        add_text(out, " " + c.messages[2 * k + 1].content + " ", true, ex);
        add_special(out, Special::Eos, true, ex);
      }
    }
  }
  return out;
}

}  // namespace

TemplateKind parse_template(const std::string& name) {
  if (name == "vicuna_v1.1" || name == "vicuna") return TemplateKind::VicunaV11;
  if (name == "llama-2" || name == "llama2") return TemplateKind::Llama2Chat;
  CHATMILL_FAIL("unknown chat template '", name, "'; use vicuna_v1.1 or llama-2");
}

const char* template_name(TemplateKind k) { return k == TemplateKind::VicunaV11 ? "vicuna_v1.1" : "llama-2"; }

ChatTemplate ChatTemplate::by_name(const std::string& name) {
  ChatTemplate t;
  t.kind = parse_template(name);
  // Llama-2-chat's own default is no system prompt; Vicuna always has one.
  t.system = t.kind == TemplateKind::VicunaV11 ? kVicunaSystem : "";
  return t;
}

std::vector<Segment> ChatTemplate::training_segments(const Conversation& c) const {
  return render(*this, c, c.messages.size() / 2, false);
}

std::vector<Segment> ChatTemplate::prompt_segments(const Conversation& c) const {
  CHATMILL_CHECK(!c.messages.empty() && c.messages.back().role == Role::User,
                 "a generation prompt needs a conversation that ends with a user message");
  return render(*this, c, c.messages.size() / 2, true);
}

std::string render_text(const std::vector<Segment>& segments) {
  std::string s;
  for (const auto& seg : segments) {
    if (seg.special == Special::Bos) s += "<s>";
    else if (seg.special == Special::Eos) s += "</s>";
    else s += seg.text;
  }
  return s;
}

}  // namespace chatmill::data
