#include "common/stop_signals.h"

#include <atomic>
#include <csignal>

#include "common/error.h"

namespace chatmill {

namespace {

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGUSR1};
// A signal handler can only reach state like this: a lock-free atomic is async-signal-safe.
std::atomic<int> g_received{0};
std::atomic<bool> g_installed{false};
struct sigaction g_previous[3];

void on_signal(int sig) {
  int none = 0;
  if (g_received.compare_exchange_strong(none, sig) || sig != SIGINT) return;
  // A second Ctrl-C: die of it now. A later SIGTERM does not kill: it is what SLURM sends at the time limit after
  // its USR1 warning, while the save the warning started may still be writing (SIGKILL follows if it must).
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

StopSignals::StopSignals() {
  CHATMILL_CHECK(!g_installed.exchange(true), "StopSignals: only one may be installed at a time");
  static_assert(std::atomic<int>::is_always_lock_free);
  g_received = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocking calls (file writes, collectives) resume instead of failing with EINTR
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &sa, &g_previous[i]);
}

StopSignals::~StopSignals() {
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
  g_installed = false;
}

int StopSignals::received() const { return g_received.load(); }

}  // namespace chatmill
