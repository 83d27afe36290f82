// Text helpers.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "common/error.h"

namespace chatmill {

// Characters (UTF-8 code points) in s, as people and the paper count prompt lengths.
inline int64_t utf8_length(std::string_view s) {
  int64_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

// The whole file as text; an error "cannot read the <what> <file>" when it cannot be opened.
inline std::string read_text_file(const std::filesystem::path& file, const std::string& what) {
  std::ifstream in(file, std::ios::binary);
  CHATMILL_CHECK(in, "cannot read the ", what, " ", file.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace chatmill
