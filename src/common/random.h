// Small deterministic randomness helpers, identical on every platform.
#pragma once
#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace chatmill {

// splitmix64's finaliser: a fast, well-mixed 64-bit hash of x.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A uniform sample of at most k items of a stream of unknown length (Algorithm R), seeded.
template <typename T>
class ReservoirSample {
 public:
  ReservoirSample(size_t k, uint64_t seed) : k_(k), rng_(seed) {}

  void add(T item) {
    if (seen_ < k_) {
      items_.emplace_back(seen_, std::move(item));
    } else if (uint64_t j = rng_() % (seen_ + 1); j < k_) {
      items_[j] = {seen_, std::move(item)};
    }
    ++seen_;
  }
  uint64_t seen() const { return seen_; }

  // The kept items in the order they arrived; the sample is left empty.
  std::vector<T> take_in_order() {
    std::sort(items_.begin(), items_.end(), [](auto& a, auto& b) { return a.first < b.first; });
    std::vector<T> out;
    out.reserve(items_.size());
    for (auto& [_, item] : items_) out.push_back(std::move(item));
    items_.clear();
    return out;
  }

 private:
  size_t k_;
  uint64_t seen_ = 0;
  std::mt19937_64 rng_;
  std::vector<std::pair<uint64_t, T>> items_;
};

}  // namespace chatmill
