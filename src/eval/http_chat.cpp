// A chat model behind an OpenAI-compatible HTTP endpoint (cpp-httplib client; Debian builds it with OpenSSL, so
// https:// works; its pkg-config flags are the library's own, so the class layouts agree).
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "eval/chat_model.h"

namespace chatmill::eval {

namespace {

class HttpChat : public ChatModel {
 public:
  explicit HttpChat(HttpChatOptions o) : o_(std::move(o)) {
    // Split "scheme://host:port/prefix" into the server and the path prefix of the API.
    const size_t scheme = o_.base_url.find("://");
    CHATMILL_CHECK(scheme != std::string::npos, "endpoint URL '", o_.base_url, "' needs a scheme: http://host:port/v1");
    const size_t path = o_.base_url.find('/', scheme + 3);
    server_ = o_.base_url.substr(0, path);
    prefix_ = path == std::string::npos ? "" : o_.base_url.substr(path);
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    if (!o_.api_key_env.empty()) {
      const char* key = std::getenv(o_.api_key_env.c_str());
      CHATMILL_CHECK(key != nullptr && *key != '\0', "the API key variable ", o_.api_key_env, " is not set");
      api_key_ = key;
    }
    CHATMILL_CHECK(o_.concurrency >= 1, "endpoint concurrency must be at least 1");
  }

  std::string name() const override { return o_.name.empty() ? o_.model + "@" + o_.base_url : o_.name; }

  std::vector<ChatReply> complete(const std::vector<ChatRequest>& requests) override {
    std::vector<ChatReply> out(requests.size());
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (int w = 0; w < std::min<int>(o_.concurrency, static_cast<int>(requests.size())); ++w)
      pool.emplace_back([&] {
        for (size_t i = next++; i < requests.size(); i = next++) {
          try {
            out[i].text = one(requests[i]);
          } catch (const std::exception& e) {
            out[i].error = e.what();
          }
        }
      });
    for (auto& t : pool) t.join();
    return out;
  }

 private:
  std::string one(const ChatRequest& r) {
    nlohmann::json messages = nlohmann::json::array();
    if (!r.system.empty()) messages.push_back({{"role", "system"}, {"content", r.system}});
    for (const auto& [u, a] : r.history) {
      messages.push_back({{"role", "user"}, {"content", u}});
      messages.push_back({{"role", "assistant"}, {"content", a}});
    }
    messages.push_back({{"role", "user"}, {"content", r.user}});
    nlohmann::json body = {{"model", o_.model}, {"messages", messages}, {"temperature", r.temperature},
                           {"max_tokens", r.max_tokens}};
    if (r.temperature >= 1e-4) body["seed"] = r.seed;
    const std::string payload = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::string last;
    for (int attempt = 0; attempt <= o_.retries; ++attempt) {
      if (attempt > 0)
        std::this_thread::sleep_for(std::chrono::duration<double>(o_.backoff_s * static_cast<double>(1 << (attempt - 1))));
      httplib::Client cli(server_);
      const auto t = std::chrono::duration<double>(o_.timeout_s);
      cli.set_connection_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
      cli.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
      cli.set_write_timeout(std::chrono::duration_cast<std::chrono::microseconds>(t));
      httplib::Headers headers;
      if (!api_key_.empty()) headers.emplace("Authorization", "Bearer " + api_key_);
      auto res = cli.Post(prefix_ + "/chat/completions", headers, payload, "application/json");
      if (!res) {
        last = "no response (" + httplib::to_string(res.error()) + ")";
        continue;  // connection refused, timeout: retry
      }
      if (res->status == 429 || res->status >= 500) {
        last = "HTTP " + std::to_string(res->status);
        continue;
      }
      CHATMILL_CHECK(res->status == 200, "chat endpoint ", name(), " answered HTTP ", res->status, ": ", res->body.substr(0, 300));
      nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
      CHATMILL_CHECK(!j.is_discarded() && j.contains("choices") && j["choices"].is_array() && !j["choices"].empty() &&
                         j["choices"][0].contains("message") && j["choices"][0]["message"].contains("content") &&
                         j["choices"][0]["message"]["content"].is_string(),
                     "chat endpoint ", name(), " sent a response that is not an OpenAI chat completion: ", res->body.substr(0, 300));
      return j["choices"][0]["message"]["content"];
    }
    CHATMILL_FAIL("chat endpoint ", name(), " failed after ", o_.retries + 1, " attempts: ", last,
                  "; is the endpoint up? (judgments made so far are kept in the cache)");
  }

  HttpChatOptions o_;
  std::string server_, prefix_, api_key_;
};

}  // namespace

std::unique_ptr<ChatModel> make_http_chat(const HttpChatOptions& o) { return std::make_unique<HttpChat>(o); }

}  // namespace chatmill::eval
