#include "serve/server.h"

#include <httplib.h>

#include <chrono>
#include <ctime>
#include <random>
#include <thread>

#include "common/error.h"
#include "common/text.h"
#include "data/encode.h"
#include "serve/client_watch.h"
#include "serve/openai_api.h"

namespace chatmill::serve {

namespace {

constexpr auto kPoll = std::chrono::milliseconds(50);

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

std::string dump(const nlohmann::ordered_json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

// What every completion response and stream chunk carries around its choices.
nlohmann::ordered_json envelope(const std::string& id, const char* object, int64_t created, const std::string& model,
                                nlohmann::ordered_json choices) {
  return {{"id", id}, {"object", object}, {"created", created}, {"model", model}, {"choices", std::move(choices)}};
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(e.body()), "application/json");
}

}  // namespace

struct Server::Impl {
  infer::Engine& engine;
  const model::Tokenizer& tok;
  ServerOptions o;
  data::ChatTemplate tmpl;
  data::SegmentEncoder enc;
  httplib::Server http;
  std::atomic<int64_t> in_flight{0};
  std::atomic<bool> draining{false};
  int64_t created = static_cast<int64_t>(std::time(nullptr));

  Impl(infer::Engine& e, const model::Tokenizer& t, ServerOptions opts)
      : engine(e), tok(t), o(std::move(opts)), tmpl(data::ChatTemplate::by_name(o.chat_template)), enc(t) {}

  bool authorised(const httplib::Request& req, httplib::Response& res) {
    if (o.api_key.empty() || req.get_header_value("Authorization") == "Bearer " + o.api_key) return true;
    send_error(res, {401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "invalid_request_error", "",
                     "invalid_api_key"});
    return false;
  }

  void models(httplib::Response& res) {
    nlohmann::ordered_json m = {{"id", o.model_name}, {"object", "model"}, {"created", created}, {"owned_by", "chatmill"},
                                {"max_model_len", engine.context()}};
    res.set_content(dump({{"object", "list"}, {"data", {m}}}), "application/json");
  }

  // What EngineOptions::autotune chose per batch bucket, one line each (empty without it).
  nlohmann::ordered_json step_choices() const {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& c : engine.step_choices()) out.push_back(infer::describe(c));
    return out;
  }

  // While draining: 503 and "draining", so that load balancers stop sending (requests get 503 too).
  void health(httplib::Response& res) {
    const auto s = engine.stats();
    if (draining) res.status = 503;
    res.set_content(dump({{"status", draining ? "draining" : "ok"}, {"model", o.model_name}, {"active", s.active},
                          {"queued", s.queued}, {"completed", s.completed}, {"cancelled", s.cancelled}, {"in_flight", in_flight.load()},
                          {"generated_tokens", s.generated_tokens}, {"steps", s.steps},
                          {"steps_ahead", s.steps_ahead}, {"decode_step_choices", step_choices()}}),
                    "application/json");
  }

  // One completion request, chat or not.
  void complete(const httplib::Request& req, httplib::Response& res, bool chat) {
    if (draining)
      return send_error(res, {503, "the server is shutting down; send the request to another replica", "server_error", "", "shutting_down"});
    if (!authorised(req, res)) return;
    ParsedRequest p;
    if (auto e = parse_request(req.body, chat, p)) return send_error(res, *e);
    if (p.model != o.model_name)
      return send_error(res, {404, "the model '" + p.model + "' does not exist; this server serves '" + o.model_name + "'",
                              "invalid_request_error", "model", "model_not_found"});
    // The prompts: the conversation, or each of the completion's (one choice each).
    std::vector<infer::EngineRequest> reqs;
    if (chat) {
      const auto ids = enc.encode(tmpl.prompt_segments(p.conversation)).ids;
      reqs.push_back(p.engine);
      reqs.back().prompt.assign(ids.begin(), ids.end());
    } else {
      for (const auto& q : p.prompts) {
        reqs.push_back(p.engine);
        reqs.back().prompt = q.ids.empty() ? tok.encode(q.text, true) : q.ids;
      }
    }
    const int64_t limit = o.max_tokens_limit > 0 ? o.max_tokens_limit : engine.context();
    if (p.max_tokens && *p.max_tokens > limit)
      return send_error(res, {400, "max_tokens " + std::to_string(*p.max_tokens) + " is over this server's limit of " +
                                       std::to_string(limit), "invalid_request_error", "max_tokens", ""});
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto& r = reqs[i];
      const int64_t n = static_cast<int64_t>(r.prompt.size());
      const std::string which = reqs.size() > 1 ? "prompt " + std::to_string(i) : "the prompt";
      if (n >= engine.context())
        return send_error(res, {400, which + " has " + std::to_string(n) + " tokens; the context is " +
                                         std::to_string(engine.context()) + " tokens. Shorten the prompt.",
                                "invalid_request_error", chat ? "messages" : "prompt", "context_length_exceeded"});
      // Default: as many as fit (completions: the API's 16).
      r.max_new_tokens = p.max_tokens.value_or(chat ? std::min(limit, engine.context() - n) : 16);
      if (n + r.max_new_tokens > engine.context())
        return send_error(res, {400, which + " (" + std::to_string(n) + " tokens) plus max_tokens (" +
                                         std::to_string(r.max_new_tokens) + ") exceeds the context of " +
                                         std::to_string(engine.context()) + " tokens; lower max_tokens or shorten the prompt",
                                "invalid_request_error", "max_tokens", "context_length_exceeded"});
    }
    // Each prompt counts as a request in flight, so a list of prompts cannot queue past the limit.
    const int64_t count = static_cast<int64_t>(reqs.size());
    if (count > o.max_in_flight)
      return send_error(res, {400, std::to_string(count) + " prompts in one request; this server takes at most " +
                                       std::to_string(o.max_in_flight) + " in flight. Send fewer per request",
                              "invalid_request_error", "prompt", ""});
    if (in_flight.fetch_add(count) + count > o.max_in_flight) {
      in_flight.fetch_sub(count);
      return send_error(res, {429, "too many requests in flight (limit " + std::to_string(o.max_in_flight) +
                                       "); retry shortly", "rate_limit_error", "", "rate_limit_exceeded"});
    }
    std::vector<std::shared_ptr<infer::RequestHandle>> hs;
    try {
      hs = engine.submit_all(reqs);
    } catch (const Error& e) {
      in_flight.fetch_sub(count);
      return send_error(res, {400, e.what(), "invalid_request_error", "", ""});
    }
    const std::string id = random_id(chat ? "chatcmpl-" : "cmpl-");
    const int64_t created_at = static_cast<int64_t>(std::time(nullptr));
    const ClientWatch watch(req);
    if (p.stream) return stream(res, hs[0], p, reqs[0].prompt, id, created_at, watch);  // one prompt (parse_request checks)

    // Every choice's events; a client that leaves before the whole answer frees the slots (the engine still sends
    // each final event).
    struct Collected {
      infer::EngineEvent last;
      std::vector<model::TokenLogprob> generated, prompt_lp;
    };
    std::vector<Collected> got(hs.size());
    for (size_t i = 0; i < hs.size(); ++i) {
      infer::EngineEvent e;
      while (true) {
        if (hs[i]->next(e, kPoll)) {
          got[i].generated.insert(got[i].generated.end(), e.logprobs.begin(), e.logprobs.end());
          got[i].prompt_lp.insert(got[i].prompt_lp.end(), e.prompt_logprobs.begin(), e.prompt_logprobs.end());
          if (e.finished) break;
        }
        if (!hs[i]->cancelled() && watch.gone())  // after events too: they come every step
          for (auto& h : hs) h->cancel();
      }
      got[i].last = std::move(e);
    }
    in_flight.fetch_sub(count);
    nlohmann::ordered_json choices = nlohmann::ordered_json::array();
    int64_t prompt_tokens = 0, completion_tokens = 0;
    const bool logprobs = p.engine.logprobs >= 0;
    for (size_t i = 0; i < hs.size(); ++i) {
      const infer::EngineEvent& e = got[i].last;
      if (!e.error.empty()) return send_error(res, {500, "generation failed: " + e.error, "server_error", "", ""});
      nlohmann::ordered_json choice = {{"index", i}};
      if (chat) {
        choice["message"] = {{"role", "assistant"}, {"content", e.full_text}};
        choice["logprobs"] = logprobs ? chat_logprobs_json(tok, got[i].generated) : nlohmann::ordered_json(nullptr);
      } else {
        const std::string prompt = p.echo ? echoed_prompt(p.prompts[i]) : std::string();
        choice["text"] = prompt + e.full_text;
        TextOffsets answer_at(tok, utf8_length(prompt));
        choice["logprobs"] = logprobs ? completion_logprobs_json(tok, p.echo ? reqs[i].prompt : std::vector<int64_t>{},
                                                                 got[i].prompt_lp, got[i].generated, answer_at)
                                      : nlohmann::ordered_json(nullptr);
      }
      choice["finish_reason"] = finish_reason(e.finish);
      choices.push_back(std::move(choice));
      prompt_tokens += e.prompt_tokens;
      completion_tokens += e.completion_tokens;
    }
    auto body = envelope(id, chat ? "chat.completion" : "text_completion", created_at, o.model_name, std::move(choices));
    body["usage"] = usage_json(prompt_tokens, completion_tokens);
    res.set_content(dump(body), "application/json");
  }

  // The prompt as echo returns it: its text, or the decoded ids it was given as.
  std::string echoed_prompt(const ParsedRequest::Prompt& q) const { return q.ids.empty() ? q.text : tok.decode(q.ids); }

  // Server-sent events: a chunk per engine event, then the finish chunk (usage chunk if asked), then [DONE].
  // Completions with echo: the prompt (and its log-probabilities, when asked) is the first chunk.
  void stream(httplib::Response& res, std::shared_ptr<infer::RequestHandle> h, const ParsedRequest& p,
              const std::vector<int64_t>& prompt_ids, const std::string& id, int64_t created_at, ClientWatch watch) {
    const bool chat = p.chat;
    const bool usage = p.include_usage;
    const std::string model_name = o.model_name;
    const char* object = chat ? "chat.completion.chunk" : "text_completion";
    auto chunk = [=](const nlohmann::ordered_json& delta_or_text, const nlohmann::ordered_json& finish,
                     const nlohmann::ordered_json& logprobs = nullptr) {
      nlohmann::ordered_json c = {{"index", 0}};
      c[chat ? "delta" : "text"] = delta_or_text;
      c["logprobs"] = logprobs;
      c["finish_reason"] = finish;
      return "data: " + dump(envelope(id, object, created_at, model_name, {c})) + "\n\n";
    };
    auto started = std::make_shared<bool>(false);
    const bool echo = !chat && p.echo;
    const std::string prompt_text = echo ? echoed_prompt(p.prompts[0]) : std::string();
    // completions' text_offset across chunks: the answer starts after the echoed prompt
    auto answer_at = std::make_shared<TextOffsets>(tok, utf8_length(prompt_text));
    auto echoed = std::make_shared<bool>(!echo);
    const bool want_logprobs = p.engine.logprobs >= 0;
    auto* self = this;
    res.set_chunked_content_provider(
        "text/event-stream",
        [=](size_t, httplib::DataSink& sink) {
          if (!*started) {
            *started = true;
            const std::string first = chat ? chunk({{"role", "assistant"}, {"content", ""}}, nullptr) : "";
            if (!first.empty() && !sink.write(first.data(), first.size())) return false;
          }
          infer::EngineEvent e;
          // The client went away (seen before any write while queued or prefilling): the releaser cancels.
          while (!h->next(e, kPoll))
            if (!sink.is_writable() || watch.gone()) return false;
          if (!e.error.empty()) {
            const std::string err = "data: " + dump(ApiError{500, "generation failed: " + e.error, "server_error", "", ""}.body()) + "\n\n";
            sink.write(err.data(), err.size());
            sink.done();
            return true;
          }
          if (!*echoed) {  // the first event carries the prompt's log-probabilities
            *echoed = true;
            nlohmann::ordered_json plp = nullptr;
            if (want_logprobs)  // no generated tokens here: the answer's offsets are left as they are
              plp = completion_logprobs_json(self->tok, prompt_ids, e.prompt_logprobs, {}, *answer_at);
            const std::string c = chunk(prompt_text, nullptr, plp);
            if (!sink.write(c.data(), c.size())) return false;
          }
          // Tokens' log-probabilities ride with the text that came with them (text held back for a possible stop
          // string comes later, so a chunk may have logprobs and no text).
          nlohmann::ordered_json lp = nullptr;
          if (want_logprobs && !e.logprobs.empty()) {
            lp = chat ? chat_logprobs_json(self->tok, e.logprobs)
                      : completion_logprobs_json(self->tok, {}, {}, e.logprobs, *answer_at);
          }
          if (!e.text.empty() || !lp.is_null()) {
            const std::string c = chat ? chunk({{"content", e.text}}, nullptr, lp) : chunk(e.text, nullptr, lp);
            if (!sink.write(c.data(), c.size())) return false;
          }
          if (e.finished) {
            std::string tail = chat ? chunk(nlohmann::ordered_json::object(), finish_reason(e.finish)) : chunk("", finish_reason(e.finish));
            if (usage) {
              auto u = envelope(id, object, created_at, model_name, nlohmann::ordered_json::array());
              u["usage"] = usage_json(e.prompt_tokens, e.completion_tokens);
              tail += "data: " + dump(u) + "\n\n";
            }
            tail += "data: [DONE]\n\n";
            if (!sink.write(tail.data(), tail.size())) return false;
            sink.done();
          }
          return true;
        },
        [h, self](bool success) {
          if (!success) h->cancel();  // frees the slot at the engine's next step
          self->in_flight.fetch_sub(1);
        });
  }
};

Server::Server(infer::Engine& engine, const model::Tokenizer& tok, ServerOptions o)
    : impl_(std::make_unique<Impl>(engine, tok, std::move(o))) {
  auto* I = impl_.get();
  auto& http = I->http;
  const size_t workers = static_cast<size_t>(I->o.max_in_flight) + 8;  // every request in flight has a thread
  http.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  http.set_payload_max_length(I->o.max_body_bytes);
  http.set_keep_alive_timeout(2);
  http.Post("/v1/chat/completions", [I](const httplib::Request& q, httplib::Response& r) { I->complete(q, r, true); });
  http.Post("/v1/completions", [I](const httplib::Request& q, httplib::Response& r) { I->complete(q, r, false); });
  http.Get("/v1/models", [I](const httplib::Request& q, httplib::Response& r) {
    if (I->authorised(q, r)) I->models(r);
  });
  http.Get("/health", [I](const httplib::Request&, httplib::Response& r) { I->health(r); });
  // Errors without a body (unknown path, body too large, bad method) get an OpenAI-style one.
  http.set_error_handler([](const httplib::Request& q, httplib::Response& r) {
    if (!r.body.empty()) return;
    std::string msg = r.status == 404 ? "no route " + q.method + " " + q.path
                      : r.status == 413 ? std::string("the request body is too large")
                                        : "HTTP " + std::to_string(r.status);
    r.set_content(dump(ApiError{r.status, msg, "invalid_request_error", "", ""}.body()), "application/json");
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg = e.what();
    } catch (...) {
    }
    send_error(r, {500, msg, "server_error", "", ""});
  });
}

Server::~Server() = default;

int Server::bind() {
  auto& I = *impl_;
  if (I.o.port == 0) port_ = I.http.bind_to_any_port(I.o.host);
  else port_ = I.http.bind_to_port(I.o.host, I.o.port) ? I.o.port : -1;
  CHATMILL_CHECK(port_ > 0, "cannot listen on ", I.o.host, ":", I.o.port, " (in use? try another --port)");
  return port_;
}

void Server::run() { impl_->http.listen_after_bind(); }

void Server::stop() { impl_->http.stop(); }

void Server::drain_and_stop(std::chrono::milliseconds timeout) {
  impl_->draining = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the last responses leave their sockets
  impl_->http.stop();
}

}  // namespace chatmill::serve
