// Damage for the fuzz tests. Byte level: what files suffer (a truncation, a lost or stray byte) and hand edits
// make, drawn mostly from the format's own punctuation so that mutants get past the first check. JSON level:
// valid JSON whose values changed type or went missing, what other tools write and byte edits rarely make.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace chatmill::testing {

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

// 1..3 times: a random node of `good` (any depth) becomes a value of another kind (null, bool, numbers at the
// edges, string, empty or one-item containers) or, in an object, disappears.
inline nlohmann::json mutate_json(nlohmann::json good, std::mt19937_64& rng) {
  static const std::vector<nlohmann::json> values = {nullptr, true, false, 0, -1, 3, 1e300, -2.5, 4294967296LL,
                                                     "", "x", nlohmann::json::array(), nlohmann::json::object(),
                                                     nlohmann::json::array({1}), nlohmann::json{{"k", "v"}}};
  for (int e = 1 + static_cast<int>(rng() % 3); e > 0; --e) {
    std::vector<nlohmann::json*> nodes;  // every node, parents before children
    std::vector<nlohmann::json*> todo{&good};
    while (!todo.empty()) {
      nlohmann::json* n = todo.back();
      todo.pop_back();
      nodes.push_back(n);
      if (n->is_structured())
        for (auto& child : *n) todo.push_back(&child);
    }
    nlohmann::json* n = nodes[rng() % nodes.size()];
    if (n->is_object() && !n->empty() && rng() % 3 == 0) {
      auto it = n->begin();
      std::advance(it, static_cast<std::ptrdiff_t>(rng() % n->size()));
      n->erase(it);
    } else {
      *n = values[rng() % values.size()];
    }
  }
  return good;
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
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  try {
    use();
    ++t.opened;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos)
        << "mutant " << i << ": the error does not name the file: " << e.what();
    ++t.rejected;
  } catch (const std::exception& e) {
    ADD_FAILURE() << file << ": mutant " << i << " raised a foreign exception: " << e.what();
    t.foreign = true;
  }
}

}  // namespace chatmill::testing
