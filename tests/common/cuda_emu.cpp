// The fiber scheduler of tests/common/cuda_emu.h. A block's threads are ucontext fibers; the scheduler resumes
// every ready fiber until it blocks (at __syncthreads or a shuffle) or exits, then releases whichever barrier
// is complete: the block's, once every thread waits there, or a warp's exchange, once its 32 lanes wait there.
// If neither can be released, the kernel has diverged and the run fails with what each thread was doing.
// A cooperative launch gives each block an OS thread with its own scheduler (all state here is thread_local).
#include <ucontext.h>

#include <atomic>
#include <thread>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "common/cuda_emu.h"

namespace chatmill::testing::cuda_emu {

thread_local uint3 thread_idx, block_idx;
thread_local dim3 block_dim, grid_dim;

namespace {

constexpr size_t kStackBytes = 64 * 1024;  // the kernels keep a few dozen registers' worth of locals

enum class State { kReady, kAtBlockSync, kAtExchange, kExited };

// What a block's spin wait throws once another block of its cooperative launch has failed.
struct SpinAborted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Fiber {
  ucontext_t ctx{};
  std::unique_ptr<char[]> stack;
  uint3 idx;
  State state = State::kReady;
  uint64_t offered = 0, received = 0;
  int src = 0;
};

struct Block {
  std::vector<Fiber> fibers;
  ucontext_t scheduler{};
  size_t current = 0;
  const std::function<void()>* body = nullptr;
  std::exception_ptr error;
};

thread_local Block* g_block = nullptr;  // the block being run: fibers reach it from inside the kernel
std::atomic<bool> g_cooperative_failed{false};  // a block of the running cooperative launch has failed

// The hold of a launch under a PreviousKernel (programmatic_wait), shared by its blocks' OS threads.
struct Hold {
  const std::function<void()>* writes = nullptr;
  int64_t blocks = 0;
  std::atomic<int64_t> arrived{0};
  std::atomic<bool> released{false};
};
Hold* g_hold = nullptr;                 // the running launch's, or null; set by the launching thread only
PreviousKernel* g_previous = nullptr;   // the PreviousKernel in scope, or null
thread_local bool t_arrived = false;    // this OS thread's block has reached its wait (or exited)

// A block reaches its wait (or exits); the last of the launch runs the writes and releases the others.
// Returns whether this block was the last.
bool arrive(Hold& h) {
  t_arrived = true;
  if (h.arrived.fetch_add(1) + 1 != h.blocks) return false;
  (*h.writes)();
  h.released = true;
  return true;
}

Fiber& self() { return g_block->fibers[g_block->current]; }

void block_until_released(State s) {
  Fiber& f = self();
  f.state = s;
  swapcontext(&f.ctx, &g_block->scheduler);
}

void fiber_main() {
  Block& b = *g_block;
  try {
    (*b.body)();
  } catch (...) {
    if (!b.error) b.error = std::current_exception();
  }
  b.fibers[b.current].state = State::kExited;  // returns to the scheduler through uc_link
}

const char* describe(State s) {
  switch (s) {
    case State::kReady: return "running";
    case State::kAtBlockSync: return "at __syncthreads";
    case State::kAtExchange: return "at a warp shuffle";
    case State::kExited: return "exited";
  }
  return "?";
}

[[noreturn]] void fail(const Block& b, const std::string& what) {
  std::ostringstream os;
  os << "cuda_emu: block (" << block_idx.x << ", " << block_idx.y << ", " << block_idx.z << "): " << what
     << ". Threads:";
  State last = State::kReady;
  for (size_t i = 0; i < b.fibers.size(); ++i) {
    if (i > 0 && b.fibers[i].state == last) continue;
    last = b.fibers[i].state;
    os << " from " << i << " " << describe(last) << ";";
  }
  throw std::runtime_error(os.str());
}

// Releases every warp whose lanes all wait at an exchange; returns whether any was.
bool release_exchanges(Block& b) {
  bool any = false;
  for (size_t w = 0; w * 32 < b.fibers.size(); ++w) {
    const size_t first = w * 32, last = std::min(first + 32, b.fibers.size());
    bool all = true, some = false;
    for (size_t i = first; i < last; ++i) {
      all = all && b.fibers[i].state == State::kAtExchange;
      some = some || b.fibers[i].state == State::kAtExchange;
    }
    if (!some) continue;
    if (last - first < 32) fail(b, "a shuffle in a partial warp (block size not a multiple of 32)");
    if (!all) continue;
    for (size_t i = first; i < last; ++i) {
      const int src = b.fibers[i].src;
      b.fibers[i].received = (src >= 0 && src < 32) ? b.fibers[first + src].offered : b.fibers[i].offered;
    }
    for (size_t i = first; i < last; ++i) b.fibers[i].state = State::kReady;
    any = true;
  }
  return any;
}

void run_block(Block& b) {
  for (size_t i = 0; i < b.fibers.size(); ++i) {
    Fiber& f = b.fibers[i];
    if (!f.stack) f.stack = std::make_unique<char[]>(kStackBytes);
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.get();
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &b.scheduler;
    makecontext(&f.ctx, fiber_main, 0);
    f.state = State::kReady;
    f.idx.x = static_cast<unsigned>(i % block_dim.x);
    f.idx.y = static_cast<unsigned>(i / block_dim.x % block_dim.y);
    f.idx.z = static_cast<unsigned>(i / (block_dim.x * block_dim.y));
  }
  for (;;) {
    for (size_t i = 0; i < b.fibers.size(); ++i) {
      if (b.fibers[i].state != State::kReady) continue;
      b.current = i;
      thread_idx = b.fibers[i].idx;
      swapcontext(&b.scheduler, &b.fibers[i].ctx);
      if (b.error) std::rethrow_exception(b.error);
    }
    size_t exited = 0, at_sync = 0;
    for (const Fiber& f : b.fibers) {
      exited += f.state == State::kExited;
      at_sync += f.state == State::kAtBlockSync;
    }
    if (exited == b.fibers.size()) return;
    if (release_exchanges(b)) continue;
    if (at_sync + exited == b.fibers.size()) {
      if (exited > 0) fail(b, "__syncthreads reached after some threads of the block exited");
      for (Fiber& f : b.fibers) f.state = State::kReady;
      continue;
    }
    fail(b, "threads wait at barriers that can never complete (divergent __syncthreads or shuffles)");
  }
}

}  // namespace

int lane() {
  const uint3 t = self().idx;
  return static_cast<int>((t.z * block_dim.y + t.y) * block_dim.x + t.x) % 32;
}

void sync_block() { block_until_released(State::kAtBlockSync); }

uint64_t exchange(unsigned mask, uint64_t bits, int src) {
  if (mask != 0xffffffffu) throw std::runtime_error("cuda_emu: only full-warp masks (0xffffffff) are emulated");
  Fiber& f = self();
  f.offered = bits;
  f.src = src;
  block_until_released(State::kAtExchange);
  return self().received;
}

namespace {

// Runs the blocks `order` of a launch on this OS thread, one after another.
void run_blocks(dim3 grid, dim3 block, const std::function<void()>& body, const std::vector<uint3>& order) {
  if (g_block != nullptr) throw std::logic_error("cuda_emu: a kernel launched from inside a kernel");
  const size_t threads = static_cast<size_t>(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024) throw std::invalid_argument("cuda_emu: a block takes 1 to 1024 threads");
  thread_local std::vector<Fiber> pool;  // stacks kept between launches
  Block b;
  b.fibers = std::move(pool);
  b.fibers.resize(threads);
  b.body = &body;
  block_dim = block;
  grid_dim = grid;
  g_block = &b;
  struct Reset {
    Block& b;
    ~Reset() {
      g_block = nullptr;
      pool = std::move(b.fibers);
    }
  } reset{b};
  for (const uint3& idx : order) {
    block_idx = idx;
    run_block(b);
  }
}

std::vector<uint3> blocks_of(dim3 grid) {
  std::vector<uint3> order;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) order.push_back({x, y, z});
  return order;
}

}  // namespace

namespace {

// Every block of the launch at once, each on an OS thread of its own; with a hold, a block that exits without
// waiting arrives at it on the way out.
void run_at_once(dim3 grid, dim3 block, const std::function<void()>& body, Hold* hold) {
  const std::vector<uint3> order = blocks_of(grid);
  if (order.size() > 64) throw std::invalid_argument("cuda_emu: a cooperative launch takes at most 64 blocks");
  g_cooperative_failed = false;
  std::vector<std::exception_ptr> errors(order.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < order.size(); ++i)
    threads.emplace_back([&, i] {
      t_arrived = false;
      try {
        run_blocks(grid, block, body, {order[i]});
        if (hold != nullptr && !t_arrived) arrive(*hold);
      } catch (...) {
        errors[i] = std::current_exception();
        g_cooperative_failed = true;
      }
    });
  for (std::thread& t : threads) t.join();
  // The first error that is not another block's abandoned wait.
  std::exception_ptr first;
  for (const std::exception_ptr& e : errors) {
    if (!e) continue;
    try {
      std::rethrow_exception(e);
    } catch (const SpinAborted&) {
      if (!first) first = e;
      continue;
    } catch (...) {
      first = e;
      break;
    }
  }
  g_cooperative_failed = false;
  if (first) std::rethrow_exception(first);
}

}  // namespace

PreviousKernel::PreviousKernel(std::function<void()> writes) : writes_(std::move(writes)) {
  if (g_previous != nullptr) throw std::logic_error("cuda_emu: a PreviousKernel is already in scope");
  g_previous = this;
}

PreviousKernel::~PreviousKernel() { g_previous = nullptr; }

void programmatic_wait() {
  Hold* h = g_hold;
  if (h == nullptr) return;
  sync_block();
  if (thread_idx.x == 0 && thread_idx.y == 0 && thread_idx.z == 0 && !t_arrived && !arrive(*h))
    while (!h->released) spin_pause();
  sync_block();
}

void run(dim3 grid, dim3 block, const std::function<void()>& body) {
  if (g_previous != nullptr && !g_previous->ran_) {  // the first launch under a PreviousKernel: held at its wait
    const std::vector<uint3> all = blocks_of(grid);
    Hold hold;
    hold.writes = &g_previous->writes_;
    hold.blocks = static_cast<int64_t>(all.size());
    g_hold = &hold;
    struct Clear {
      ~Clear() { g_hold = nullptr; }
    } clear;
    run_at_once(grid, block, body, &hold);
    g_previous->ran_ = hold.released;
    return;
  }
  // Blocks in a shuffled order (a GPU promises none), seeded per launch so that runs repeat: code that
  // counts on an order (say, which block finishes last) meets a different one in each launch.
  std::vector<uint3> order = blocks_of(grid);
  static std::atomic<uint64_t> launches{0};
  std::shuffle(order.begin(), order.end(), std::mt19937_64(++launches));
  run_blocks(grid, block, body, order);
}

void run_cooperative(dim3 grid, dim3 block, const std::function<void()>& body) {
  run_at_once(grid, block, body, nullptr);
}

void spin_pause() {
  if (g_cooperative_failed) throw SpinAborted("cuda_emu: another block of the cooperative launch failed");
  std::this_thread::yield();
}

}  // namespace chatmill::testing::cuda_emu
