// Text helpers.
#pragma once
#include <cstdint>
#include <string_view>

namespace chatmill {

// Characters (UTF-8 code points) in s, as people and the paper count prompt lengths.
inline int64_t utf8_length(std::string_view s) {
  int64_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

}  // namespace chatmill
