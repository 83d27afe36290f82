// Conversation templates (FastChat's vicuna_v1.1 and llama-2) rendered as segments: text or a special
// token id, each trained or not. Labels come from the segments, never from splitting the rendered string.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/record.h"

namespace chatmill::data {

enum class TemplateKind { VicunaV11, Llama2Chat };
TemplateKind parse_template(const std::string& name);  // "vicuna_v1.1" | "llama-2"
const char* template_name(TemplateKind k);

enum class Special { None, Bos, Eos };

struct Segment {
  std::string text;              // empty for a special token
  Special special = Special::None;
  bool trained = false;          // an assistant reply (with its separator) or its closing eos
  int exchange = 0;              // index of the user/assistant exchange it belongs to
};

struct ChatTemplate {
  TemplateKind kind = TemplateKind::VicunaV11;
  std::string system;  // the system message (defaults per template; a conversation's own one wins)

  static ChatTemplate by_name(const std::string& name);

  // Training layout: bos, then every complete exchange; a trailing user message without a reply is dropped.
  // Vicuna v1.1: "{system} USER: {u} ASSISTANT: {a}</s>USER: ..." — trained: " {a}" and </s>.
  // Llama-2:     "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{u} [/INST] {a} </s><s>[INST] {u} [/INST] ..." —
  //              trained: " {a} " and </s>.
  std::vector<Segment> training_segments(const Conversation& c) const;
  // Inference layout: the conversation (ending with a user message) up to where the assistant speaks next.
  std::vector<Segment> prompt_segments(const Conversation& c) const;
};

// The segments as one string with special tokens written "<s>" / "</s>" (what FastChat tokenises).
std::string render_text(const std::vector<Segment>& segments);

}  // namespace chatmill::data
