#include "eval/chat_spec.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "common/error.h"
#include "model/hf_checkpoint.h"

namespace chatmill::eval {

namespace {

double to_number(const std::string& v, const std::string& key, const std::string& where) {
  try {
    size_t used = 0;
    const double d = std::stod(v, &used);
    if (used == v.size()) return d;
  } catch (const std::exception&) {
  }
  CHATMILL_FAIL(where, ": '", key, "' needs a number, got '", v, "'");
}

ChatSpec from_pairs(const std::map<std::string, std::string>& kv, const std::string& where) {
  ChatSpec s;
  for (const auto& [k, v] : kv) {
    if (k == "local") s.local = v;
    else if (k == "tokenizer") s.tokenizer = v;
    else if (k == "template") s.template_name = v;
    else if (k == "dtype") s.dtype = v;
    else if (k == "device") s.device = v;
    else if (k == "batch_size") s.batch_size = static_cast<int64_t>(to_number(v, k, where));
    else if (k == "url") s.http.base_url = v;
    else if (k == "model") s.http.model = v;
    else if (k == "key_env") s.http.api_key_env = v;
    else if (k == "timeout") s.http.timeout_s = to_number(v, k, where);
    else if (k == "retries") s.http.retries = static_cast<int>(to_number(v, k, where));
    else if (k == "backoff") s.http.backoff_s = to_number(v, k, where);
    else if (k == "concurrency") s.http.concurrency = static_cast<int>(to_number(v, k, where));
    else if (k == "name") s.name = v;
    else
      CHATMILL_FAIL(where, ": unknown chat model key '", k, "' (known: local, tokenizer, template, dtype, device, batch_size, ",
                    "url, model, key_env, timeout, retries, backoff, concurrency, name)");
  }
  CHATMILL_CHECK(s.local.empty() != s.http.base_url.empty(), where,
                 ": give a local model folder (local=DIR) or an endpoint (url=...,model=...), exactly one");
  if (!s.http.base_url.empty()) CHATMILL_CHECK(!s.http.model.empty(), where, ": an endpoint needs model=NAME");
  if (s.name.empty() && !s.local.empty()) s.name = "local:" + model::model_folder_name(s.local);
  if (s.name.empty()) s.name = s.http.model + "@" + s.http.base_url;
  return s;
}

}  // namespace

ChatSpec parse_chat_spec(const std::string& text, const std::string& where) {
  CHATMILL_CHECK(!text.empty(), where, ": empty chat model");
  if (text.find('=') == std::string::npos) return from_pairs({{"local", text}}, where);
  std::map<std::string, std::string> kv;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t eq = item.find('=');
    CHATMILL_CHECK(eq != std::string::npos && eq > 0, where, ": '", item, "' is not key=value (in '", text, "')");
    kv[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return from_pairs(kv, where);
}

ChatSpec chat_spec_from_yaml(const YAML::Node& node, const std::string& where) {
  if (node.IsScalar()) return parse_chat_spec(node.as<std::string>(), where);
  CHATMILL_CHECK(node.IsMap(), where, ": a chat model is a folder path or a map (local: DIR, or url: + model:)");
  std::map<std::string, std::string> kv;
  for (const auto& it : node) {
    CHATMILL_CHECK(it.second.IsScalar(), where, ".", it.first.as<std::string>(), ": needs a single value");
    kv[it.first.as<std::string>()] = it.second.as<std::string>();
  }
  return from_pairs(kv, where);
}

LoadedChat::LoadedChat(const ChatSpec& s) : folder_(s.local) {
  if (s.local.empty()) {
    HttpChatOptions o = s.http;
    o.name = s.name;
    chat_ = make_http_chat(o);
    return;
  }
  model_.emplace(model::load_hf_model(s.local, {model::parse_dtype(s.dtype), at::Device(s.device)}));
  tok_.emplace(model::resolve_tokenizer(s.local, s.tokenizer.empty() ? std::nullopt : std::optional<std::filesystem::path>(s.tokenizer)));
  chat_ = make_local_chat(*model_, *tok_, data::ChatTemplate::by_name(s.template_name), s.name, s.batch_size);
}

}  // namespace chatmill::eval
