// Reading the evaluation's JSON Lines inputs (questions, prompts, answers, labelled sets): one object per line,
// blank lines skipped, every problem named by file and line.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace chatmill::eval {

// Calls fn(object, "file:line") for every non-blank line; a missing file, malformed JSON or a line that is not
// an object is an error naming file and line.
template <typename F>
void for_each_json_line(const std::filesystem::path& file, F&& fn) {
  std::ifstream in(file);
  CHATMILL_CHECK(in, "cannot read ", file);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = detail::concat(file.string(), ":", n);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      CHATMILL_FAIL("malformed JSON at ", where, ": ", e.what());
    }
    CHATMILL_CHECK(j.is_object(), where, ": expected a JSON object");
    fn(j, where);
  }
}

// j[key] as a string; an error naming `where` and the field when it is missing or not a string.
inline std::string json_string(const nlohmann::json& j, const char* key, const std::string& where) {
  CHATMILL_CHECK(j.contains(key) && j[key].is_string(), where, ": field '", key, "' is missing or not a string");
  return j[key];
}

}  // namespace chatmill::eval
