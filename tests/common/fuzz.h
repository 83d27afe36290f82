// Byte-level damage for the fuzz tests: what files suffer (a truncation, a lost or stray byte) and hand
// edits make, drawn mostly from the format's own punctuation so that mutants get past the first check.
#pragma once
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

namespace chatmill::testing {

inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// One time in four a truncation anywhere; otherwise 1..max_edits edits of one kind (replace, insert or delete
// a byte from `alphabet`) at positions in [0, span) (span 0: the whole text).
inline std::string mutate(const std::string& good, const std::string& alphabet, int max_edits, std::mt19937_64& rng,
                          size_t span = 0) {
  std::string bad = good;
  const int kind = static_cast<int>(rng() % 4);
  if (kind == 3) {
    bad.resize(rng() % good.size());
    return bad;
  }
  for (int e = 1 + static_cast<int>(rng() % max_edits); e > 0 && !bad.empty(); --e) {
    const size_t at = rng() % std::min(bad.size(), span ? span : bad.size());
    const char c = alphabet[rng() % alphabet.size()];
    if (kind == 0) bad[at] = c;
    else if (kind == 1) bad.insert(bad.begin() + static_cast<std::ptrdiff_t>(at), c);
    else bad.erase(at, 1);
  }
  return bad;
}

}  // namespace chatmill::testing
