#include "data/minhash.h"

#include <cctype>

#include "common/error.h"
#include "common/random.h"

namespace chatmill::data {

namespace {

uint64_t fnv1a(const char* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::string normalize_for_dedup(const std::string& text) {
  std::string out;
  bool space = false;
  for (unsigned char ch : text) {
    if (std::isspace(ch)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += static_cast<char>(std::tolower(ch));
  }
  return out;
}

NearDuplicateIndex::NearDuplicateIndex(double threshold, int num_perm, int bands)
    : threshold_(threshold), num_perm_(num_perm), bands_(bands), rows_(num_perm / bands), buckets_(bands) {
  CHATMILL_CHECK(threshold > 0 && threshold <= 1, "near-duplicate threshold must be in (0, 1], got ", threshold);
  CHATMILL_CHECK(num_perm > 0 && bands > 0 && num_perm % bands == 0, "num_perm (", num_perm,
                 ") must be a positive multiple of bands (", bands, ")");
}

std::vector<uint64_t> NearDuplicateIndex::signature(const std::string& s) const {
  std::vector<uint64_t> sig(num_perm_, UINT64_MAX);
  const size_t k = 5;
  const size_t grams = s.size() >= k ? s.size() - k + 1 : 1;
  for (size_t i = 0; i < grams; ++i) {
    const uint64_t g = fnv1a(s.data() + i, std::min(k, s.size()));
    for (int p = 0; p < num_perm_; ++p) sig[p] = std::min(sig[p], mix64(g ^ (0x5851F42D4C957F2Dull * (p + 1))));
  }
  return sig;
}

bool NearDuplicateIndex::check_and_add(const std::string& text) {
  const auto sig = signature(normalize_for_dedup(text));
  std::vector<uint64_t> keys(bands_);
  for (int b = 0; b < bands_; ++b) {
    uint64_t h = 0;
    for (int r = 0; r < rows_; ++r) h = mix64(h ^ sig[b * rows_ + r]);
    keys[b] = h;
    auto it = buckets_[b].find(h);
    if (it == buckets_[b].end()) continue;
    for (uint32_t id : it->second) {
      int same = 0;
      for (int p = 0; p < num_perm_; ++p) same += kept_[id][p] == sig[p];
      if (same >= threshold_ * num_perm_) return true;
    }
  }
  const uint32_t id = static_cast<uint32_t>(kept_.size());
  kept_.push_back(sig);
  for (int b = 0; b < bands_; ++b) buckets_[b][keys[b]].push_back(id);
  return false;
}

}  // namespace chatmill::data
