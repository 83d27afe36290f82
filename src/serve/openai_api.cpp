#include "serve/openai_api.h"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string_view>

#include "common/text.h"

namespace chatmill::serve {

namespace {

constexpr size_t kMaxPrompts = 256;
const std::vector<std::string> kNoStops;

ApiError bad(const std::string& param, const std::string& message) { return {400, message, "invalid_request_error", param, ""}; }

// Message content: a string, or a list of {"type": "text", "text": ...} parts.
std::optional<ApiError> content_of(const nlohmann::json& m, size_t i, std::string& out) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  if (!m.contains("content")) return bad(where, where + " is missing");
  const auto& c = m["content"];
  if (c.is_string()) {
    out = c.get<std::string>();
    return std::nullopt;
  }
  if (c.is_array()) {
    for (const auto& part : c) {
      if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
          !part["text"].is_string())
        return bad(where, where + ": only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
      out += part["text"].get<std::string>();
    }
    return std::nullopt;
  }
  return bad(where, where + " must be a string or a list of text parts");
}

// Parameters this server does not honour, asked for with a value that would change the answer: refused, so a
// client never silently gets something other than it asked for. Left at their defaults (null, false, 0, empty),
// as many clients send them, they pass; keys the API does not know are ignored, as OpenAI's own server does.
std::optional<ApiError> unsupported_parameter(const nlohmann::json& j, bool chat) {
  const auto is_default = [](const nlohmann::json& v) {
    return v.is_null() || v == false || (v.is_number() && v == 0) || (v.is_string() && v.get<std::string>().empty()) ||
           (v.is_structured() && v.empty());
  };
  static const std::vector<std::pair<const char*, const char*>> kUnsupported = {
      {"suffix", "insertion"}, {"logit_bias", "logit bias"},
      {"presence_penalty", "repetition penalties"}, {"frequency_penalty", "repetition penalties"},
      {"tools", "tool calls"}, {"functions", "function calls"}};
  for (const auto& [key, what] : kUnsupported)
    if (j.contains(key) && !is_default(j[key]))
      return ApiError{400, std::string("'") + key + "' is not supported by this server (no " + what +
                               "); leave it out or at its default",
                      "invalid_request_error", key, "unsupported_parameter"};
  if (chat && j.contains("echo") && !is_default(j["echo"]))
    return ApiError{400, "'echo' is a completions parameter; chat completions do not echo", "invalid_request_error",
                    "echo", "unsupported_parameter"};
  if (!chat && j.contains("best_of") && !j["best_of"].is_null() && j["best_of"] != 1)
    return ApiError{400, "'best_of' is not supported by this server; leave it out or 1", "invalid_request_error",
                    "best_of", "unsupported_parameter"};
  if (j.contains("response_format") && !j["response_format"].is_null() &&
      !(j["response_format"].is_object() && j["response_format"].value("type", nlohmann::json()) == "text"))
    return ApiError{400, "'response_format' other than {\"type\": \"text\"} is not supported by this server",
                    "invalid_request_error", "response_format", "unsupported_parameter"};
  return std::nullopt;
}

}  // namespace

nlohmann::ordered_json ApiError::body() const {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(param)},
            {"code", code.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(code)}}}};
}

const char* finish_reason(model::FinishReason r) { return r == model::FinishReason::Length ? "length" : "stop"; }

nlohmann::ordered_json usage_json(int64_t p, int64_t c) {
  return {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}};
}

std::optional<ApiError> parse_request(const std::string& body, bool chat, ParsedRequest& out) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 2e892
    return bad("", std::string("the body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) return bad("", "the body must be a JSON object");
  out.chat = chat;
  if (!j.contains("model") || !j["model"].is_string()) return bad("model", "'model' is required and must be a string");
  out.model = j["model"];

  auto number = [&](const char* key, double lo, double hi, std::optional<double>& v) -> std::optional<ApiError> {
    if (!j.contains(key) || j[key].is_null()) return std::nullopt;
    if (!j[key].is_number()) return bad(key, std::string("'") + key + "' must be a number");
    v = j[key].get<double>();
    if (*v < lo || *v > hi)
      return bad(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return std::nullopt;
  };
  auto integer = [&](const char* key, int64_t lo, std::optional<int64_t>& v) -> std::optional<ApiError> {
    if (!j.contains(key) || j[key].is_null()) return std::nullopt;
    if (!j[key].is_number_integer()) return bad(key, std::string("'") + key + "' must be an integer");
    v = j[key].get<int64_t>();
    if (*v < lo) return bad(key, std::string("'") + key + "' must be >= " + std::to_string(lo));
    return std::nullopt;
  };

  if (chat) {
    if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
      return bad("messages", "'messages' is required: a non-empty list of {role, content}");
    const auto& ms = j["messages"];
    for (size_t i = 0; i < ms.size(); ++i) {
      const auto& m = ms[i];
      const std::string where = "messages[" + std::to_string(i) + "]";
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        return bad(where + ".role", where + " needs a string 'role'");
      const std::string role = m["role"];
      std::string text;
      if (auto e = content_of(m, i, text)) return e;
      if (role == "system") {
        if (i != 0) return bad(where + ".role", "a system message may only come first");
        out.conversation.system = text;
        continue;
      }
      if (role != "user" && role != "assistant")
        return bad(where + ".role", where + ": role '" + role + "' is not supported (system, user, assistant)");
      const data::Role want = out.conversation.messages.size() % 2 == 0 ? data::Role::User : data::Role::Assistant;
      const data::Role got = role == "user" ? data::Role::User : data::Role::Assistant;
      if (got != want) return bad(where + ".role", "messages must alternate user, assistant, user, ... after an optional system message");
      out.conversation.messages.push_back({got, text});
    }
    if (out.conversation.messages.empty() || out.conversation.messages.back().role != data::Role::User)
      return bad("messages", "the last message must be from the user");
  } else {
    if (!j.contains("prompt")) return bad("prompt", "'prompt' is required: a string (or a list of token ids)");
    const auto& p = j["prompt"];
    const auto ids = [](const nlohmann::json& x) {
      return x.is_array() && !x.empty() && std::all_of(x.begin(), x.end(), [](const auto& v) { return v.is_number_integer(); });
    };
    if (p.is_string()) {
      out.prompts.push_back({p.get<std::string>(), {}});
    } else if (ids(p)) {
      out.prompts.push_back({"", p.get<std::vector<int64_t>>()});
    } else if (p.is_array() && !p.empty() && std::all_of(p.begin(), p.end(), [](const auto& x) { return x.is_string(); })) {
      for (const auto& x : p) out.prompts.push_back({x.get<std::string>(), {}});
    } else if (p.is_array() && !p.empty() && std::all_of(p.begin(), p.end(), ids)) {
      for (const auto& x : p) out.prompts.push_back({"", x.get<std::vector<int64_t>>()});
    } else {
      return bad("prompt", "'prompt' must be a string, a list of token ids, or a non-empty list of either");
    }
    if (out.prompts.size() > kMaxPrompts)
      return bad("prompt", "at most " + std::to_string(kMaxPrompts) + " prompts per request; send several requests");
  }

  if (auto e = unsupported_parameter(j, chat)) return e;
  std::optional<double> temperature, top_p;
  if (auto e = number("temperature", 0, 2, temperature)) return e;
  if (auto e = number("top_p", 0, 1, top_p)) return e;
  std::optional<int64_t> top_k, max_tokens, n, seed;
  if (auto e = integer("top_k", -1, top_k)) return e;
  if (auto e = integer("max_tokens", 0, max_tokens)) return e;
  if (!max_tokens)
    if (auto e = integer("max_completion_tokens", 0, max_tokens)) return e;
  if (auto e = integer("n", 1, n)) return e;
  if (n && *n != 1) return bad("n", "only n = 1 is supported; send several requests");
  if (j.contains("seed") && !j["seed"].is_null()) {
    if (!j["seed"].is_number_integer()) return bad("seed", "'seed' must be an integer");
    seed = j["seed"].get<int64_t>();
  }
  out.max_tokens = max_tokens;
  out.engine.sampling.temperature = temperature.value_or(1.0);  // the API's default
  out.engine.sampling.top_p = top_p.value_or(1.0);
  out.engine.sampling.top_k = top_k && *top_k > 0 ? *top_k : 0;
  if (out.engine.sampling.top_p <= 0) return bad("top_p", "'top_p' must be > 0");
  out.engine.seed = seed ? static_cast<uint64_t>(*seed) : std::random_device{}();
  if (j.contains("stop") && !j["stop"].is_null()) {
    const auto& s = j["stop"];
    if (s.is_string()) {
      out.engine.stop_strings = {s.get<std::string>()};
    } else if (s.is_array() && s.size() <= 4 && std::all_of(s.begin(), s.end(), [](const auto& x) { return x.is_string(); })) {
      out.engine.stop_strings = s.get<std::vector<std::string>>();
    } else {
      return bad("stop", "'stop' must be a string or a list of up to 4 strings");
    }
  }
  if (j.contains("stream") && !j["stream"].is_null()) {
    if (!j["stream"].is_boolean()) return bad("stream", "'stream' must be true or false");
    out.stream = j["stream"];
  }
  // Log-probabilities: completions take logprobs = k alternatives (and echo); chat takes logprobs = true and
  // top_logprobs = k.
  std::optional<int64_t> k;
  if (chat) {
    if (j.contains("logprobs") && !j["logprobs"].is_null() && !j["logprobs"].is_boolean())
      return bad("logprobs", "'logprobs' must be true or false");
    if (auto e = integer("top_logprobs", 0, k)) return e;
    const bool want = j.contains("logprobs") && j["logprobs"] == true;
    if (k && *k > 0 && !want) return bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    if (want) out.engine.logprobs = k.value_or(0);
  } else {
    if (auto e = integer("logprobs", 0, k)) return e;
    if (k) out.engine.logprobs = *k;
    if (j.contains("echo") && !j["echo"].is_null()) {
      if (!j["echo"].is_boolean()) return bad("echo", "'echo' must be true or false");
      out.echo = j["echo"];
    }
    out.engine.prompt_logprobs = out.echo && k.has_value();
  }
  if (out.engine.logprobs > model::kMaxTopLogprobs)
    return bad(chat ? "top_logprobs" : "logprobs", "at most " + std::to_string(model::kMaxTopLogprobs) +
                                                       " alternatives per token");
  if (j.contains("stream_options") && !j["stream_options"].is_null()) {
    const auto& so = j["stream_options"];
    if (!so.is_object() || (so.contains("include_usage") && !so["include_usage"].is_boolean()))
      return bad("stream_options", "'stream_options' must be an object like {\"include_usage\": true}");
    out.include_usage = so.value("include_usage", false);
  }
  if (out.stream && out.prompts.size() > 1)
    return bad("prompt", "a list of prompts is not supported with stream = true; send one prompt per request");
  return std::nullopt;
}

std::string token_bytes(const model::Tokenizer& tok, int64_t id) {
  std::string p = tok.piece(id);
  if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>') {  // a byte piece, <0x0A>
    char* end = nullptr;
    const std::string hex = p.substr(3, 2);
    const long byte = std::strtol(hex.c_str(), &end, 16);
    if (end == hex.c_str() + 2) return std::string(1, static_cast<char>(byte));
  }
  static const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's word boundary
  for (size_t at = p.find(kSpace); at != std::string::npos; at = p.find(kSpace, at + 1)) p.replace(at, kSpace.size(), " ");
  return p;
}

std::string token_text(const model::Tokenizer& tok, int64_t id) {
  const std::string b = token_bytes(tok, id);
  if (b.size() != 1 || static_cast<unsigned char>(b[0]) < 0x80) return b;
  char buf[16];
  std::snprintf(buf, sizeof buf, "bytes:\\x%02x", static_cast<unsigned char>(b[0]));  // part of a character
  return buf;
}

TextOffsets::TextOffsets(const model::Tokenizer& tok, int64_t base) : text_(tok, kNoStops), at_(base) {}

int64_t TextOffsets::next(int64_t id) {
  // Only the bytes the last token added are counted: the text only grows.
  at_ += utf8_length(std::string_view(text_.text()).substr(counted_));
  counted_ = text_.text().size();
  text_.add(id);
  return at_;
}

nlohmann::ordered_json completion_logprobs_json(const model::Tokenizer& tok, const std::vector<int64_t>& prompt,
                                                const std::vector<model::TokenLogprob>& prompt_lp,
                                                const std::vector<model::TokenLogprob>& generated,
                                                TextOffsets& answer_offsets) {
  nlohmann::ordered_json tokens = nlohmann::ordered_json::array(), values = nlohmann::ordered_json::array(),
                         tops = nlohmann::ordered_json::array(), offsets = nlohmann::ordered_json::array();
  auto add = [&](int64_t id, const model::TokenLogprob* lp, TextOffsets& at) {
    const std::string text = token_text(tok, id);
    tokens.push_back(text);
    offsets.push_back(at.next(id));
    if (!lp) {
      values.push_back(nullptr);
      tops.push_back(nullptr);
      return;
    }
    values.push_back(lp->logprob);
    // Most likely first; a text two tokens share keeps the likelier value; the chosen token is always there.
    nlohmann::ordered_json top = nlohmann::ordered_json::object();
    for (const auto& [alt, v] : lp->top) {
      const std::string alt_text = token_text(tok, alt);
      if (!top.contains(alt_text)) top[alt_text] = v;
    }
    if (!lp->top.empty() && !top.contains(text)) top[text] = lp->logprob;
    tops.push_back(std::move(top));
  };
  TextOffsets prompt_offsets(tok, 0);  // the echoed prompt starts the text
  for (size_t i = 0; i < prompt.size(); ++i)
    add(prompt[i], i == 0 || i > prompt_lp.size() ? nullptr : &prompt_lp[i - 1], prompt_offsets);
  for (const auto& lp : generated) add(lp.id, &lp, answer_offsets);
  return {{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

nlohmann::ordered_json chat_logprobs_json(const model::Tokenizer& tok, const std::vector<model::TokenLogprob>& generated) {
  auto entry = [&](int64_t id, double v) {
    nlohmann::ordered_json bytes = nlohmann::ordered_json::array();
    for (unsigned char c : token_bytes(tok, id)) bytes.push_back(static_cast<int>(c));
    return nlohmann::ordered_json{{"token", token_text(tok, id)}, {"logprob", v}, {"bytes", bytes}};
  };
  nlohmann::ordered_json content = nlohmann::ordered_json::array();
  for (const auto& lp : generated) {
    auto e = entry(lp.id, lp.logprob);
    e["top_logprobs"] = nlohmann::ordered_json::array();
    for (const auto& [alt, v] : lp.top) e["top_logprobs"].push_back(entry(alt, v));
    content.push_back(std::move(e));
  }
  return {{"content", content}, {"refusal", nullptr}};
}

}  // namespace chatmill::serve
