// Byte-level damage for the fuzz tests: what files suffer (a truncation, a lost or stray byte) and hand
// edits make, drawn mostly from the format's own punctuation so that mutants get past the first check.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "common/error.h"

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

// `n` mutants, times CHATMILL_FUZZ_SCALE when set (a deeper search than the suite's default).
inline int fuzz_rounds(int n) {
  const char* s = std::getenv("CHATMILL_FUZZ_SCALE");
  return s ? n * std::max(1, std::atoi(s)) : n;
}

struct FuzzTally {
  int opened = 0, rejected = 0;
  bool foreign = false;  // a mutant escaped as another exception: the test has failed; stop
};

// Writes mutant `i` to `file` and runs `use` on it: opened when it returns, rejected when it throws a
// chatmill::Error naming the file; any other exception fails the test.
inline void try_mutant(const std::string& bytes, const std::filesystem::path& file, int i, FuzzTally& t,
                       const std::function<void()>& use) {
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  try {
    use();
    ++t.opened;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos)
        << "mutant " << i << ": the error does not name the file: " << e.what();
    ++t.rejected;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "mutant " << i << " raised a foreign exception: " << e.what();
    t.foreign = true;
  }
}

}  // namespace chatmill::testing
