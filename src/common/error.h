// User-facing errors: what went wrong, where, and how to fix it.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace chatmill {

// Thrown for bad input (files, configs, arguments). Internal invariants use TORCH_INTERNAL_ASSERT.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

// CHATMILL_CHECK(cond, "what", value, "; fix: ...") throws chatmill::Error with the pieces joined.
#define CHATMILL_CHECK(cond, ...)                                  \
  do {                                                             \
    if (!(cond)) throw ::chatmill::Error(::chatmill::detail::concat(__VA_ARGS__)); \
  } while (0)

#define CHATMILL_FAIL(...) throw ::chatmill::Error(::chatmill::detail::concat(__VA_ARGS__))

}  // namespace chatmill
