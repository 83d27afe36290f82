// chatmill serve: the OpenAI-compatible server. SIGTERM/SIGINT: stop accepting, finish the requests in flight,
// exit 0.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "infer/engine.h"
#include "model/hf_checkpoint.h"
#include "serve/server.h"

namespace chatmill::cli {

namespace {

struct ServeArgs {
  std::string model, tokenizer, host = "127.0.0.1", name, api_key_env, dtype = "float32", device = "cpu";
  std::string chat_template = "vicuna_v1.1";
  int port = 8000, threads = 0;
  int64_t max_batch = 8, context = 0, max_tokens = 0, max_in_flight = 64;
  size_t max_body_bytes = 1 << 20;
  bool cuda_graph = false, autotune = false;
  std::string step = "auto";
  double drain_timeout_s = 600;
};

void run_serve(const ServeArgs& a) {
  // Signals go to one waiting thread, never to the engine, HTTP or ATen threads: blocked before any starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  set_threads(a.threads);

  CHATMILL_CHECK(!a.autotune || a.step != "eager", "--autotune chooses among the fused step's kernels: drop "
                 "--decode-step eager");
  model::Model m = model::load_hf_model(a.model, {model::parse_dtype(a.dtype), parse_device(a.device)});
  auto tok = model::resolve_tokenizer(a.model, a.tokenizer.empty() ? std::nullopt : std::optional<std::filesystem::path>(a.tokenizer));
  infer::EngineOptions eo{a.max_batch, a.context, a.cuda_graph, infer::parse_step_kind(a.step)};
  eo.autotune = a.autotune;
  infer::Engine engine(m, &tok, eo);
  serve::ServerOptions o;
  o.host = a.host;
  o.port = a.port;
  o.model_name = a.name.empty() ? model::model_folder_name(a.model) : a.name;
  if (!a.api_key_env.empty()) {
    const char* key = std::getenv(a.api_key_env.c_str());
    CHATMILL_CHECK(key != nullptr && *key != '\0', "--api-key-env ", a.api_key_env, ": the variable is not set");
    o.api_key = key;
  }
  o.max_body_bytes = a.max_body_bytes;
  o.max_tokens_limit = a.max_tokens;
  o.max_in_flight = a.max_in_flight;
  o.chat_template = a.chat_template;
  serve::Server server(engine, tok, o);
  const int port = server.bind();
  std::atomic<bool> leaving{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (leaving) return;  // woken by this thread's owner to leave
    std::cerr << "chatmill serve: signal " << sig << ": finishing the requests in flight\n";
    server.drain_and_stop(std::chrono::milliseconds(static_cast<int64_t>(a.drain_timeout_s * 1000)));
  });
  std::cout << "serving " << o.model_name << " on http://" << a.host << ":" << port << "/v1 (" << a.max_batch
            << " slots of " << engine.context() << " tokens, template " << a.chat_template << ")" << std::endl;
  server.run();  // returns after stop(), once the requests in flight are done
  engine.shutdown();
  const auto s = engine.stats();
  std::cout << "stopped: " << s.completed << " requests, " << s.generated_tokens << " tokens" << std::endl;
  for (const auto& c : engine.step_choices()) std::cout << "decode step autotuned, " << infer::describe(c) << std::endl;
  if (waiter.joinable()) {
    leaving = true;
    pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter if run() ended another way
    waiter.join();
  }
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* c = app.add_subcommand("serve", "OpenAI-compatible HTTP server (chat/completions, completions, models)");
  c->add_option("--model", a->model, "HF model folder")->required();
  c->add_option("--tokenizer", a->tokenizer, "default: MODEL/tokenizer.model");
  c->add_option("--host", a->host, "address to bind (127.0.0.1: this machine only)")->capture_default_str();
  c->add_option("--port", a->port, "0: any free port")->capture_default_str();
  c->add_option("--name", a->name, "the model's id in the API (default: the folder's name)");
  c->add_option("--template", a->chat_template, "chat template for /v1/chat/completions: vicuna_v1.1 | llama-2")->capture_default_str();
  c->add_option("--api-key-env", a->api_key_env, "environment variable holding the key clients must send (Bearer)");
  c->add_option("--max-batch", a->max_batch, "sequences decoded together")->capture_default_str();
  c->add_option("--context", a->context, "tokens per sequence, prompt + completion (0: the model's)");
  c->add_option("--max-tokens", a->max_tokens, "largest max_tokens accepted (0: the context)");
  c->add_option("--max-in-flight", a->max_in_flight, "requests in flight before HTTP 429")->capture_default_str();
  c->add_option("--max-body-bytes", a->max_body_bytes)->capture_default_str();
  c->add_option("--dtype", a->dtype)->capture_default_str();
  c->add_option("--device", a->device)->capture_default_str();
  c->add_option("--drain-timeout", a->drain_timeout_s, "seconds SIGTERM waits for requests in flight")->capture_default_str();
  c->add_flag("--cuda-graph", a->cuda_graph, "capture the decode step in a CUDA graph");
  c->add_flag("--autotune", a->autotune, "with the fused step (CUDA, or --decode-step fused): per batch bucket, "
              "time the step's variants that apply (in CUDA graphs with --cuda-graph), check each against the "
              "configured one, keep the fastest (GET /health lists the choices)");
  c->add_option("--decode-step", a->step, "auto (fused on CUDA, eager elsewhere), eager, or fused (the CUDA kernels)")->capture_default_str();
  c->add_option("--threads", a->threads);
  c->callback([a] { run_serve(*a); });
}

}  // namespace chatmill::cli
