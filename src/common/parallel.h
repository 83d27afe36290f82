// A blocking parallel loop over [0, n) on plain std::threads. (at::parallel_for's OpenMP path is compiled
// into the caller, and chatmill is not built with -fopenmp, so it would run serially here.)
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace chatmill {

// Calls fn(begin, end) on up to `threads` contiguous chunks (threads <= 0: the machine's cores) and
// rethrows the first exception a chunk raised.
template <typename F>
void parallel_for(int64_t n, int threads, F&& fn) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t chunks = std::min<int64_t>(threads, n);
  if (chunks <= 1) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
  std::vector<std::exception_ptr> errors(chunks);
  std::vector<std::thread> pool;
  for (int64_t c = 0; c < chunks; ++c)
    pool.emplace_back([&, c] {
      try {
        fn(n * c / chunks, n * (c + 1) / chunks);
      } catch (...) {
        errors[c] = std::current_exception();
      }
    });
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace chatmill
