// Paths the test suite runs against, taken from the environment CTest sets (tests/CMakeLists.txt).
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "common/error.h"
#include "model/safetensors.h"

namespace chatmill::testing {

// The environment variable `name` if set, else the build tree's default.
inline std::filesystem::path env_path(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : fallback;
}

// Reference outputs written by the CTest fixtures (tests/model/*_reference.py).
inline std::filesystem::path testdata() { return env_path("CHATMILL_TESTDATA", CHATMILL_TESTDATA_DEFAULT); }
// ../shared/data: the real Llama-2 tokenizer and stories260K.
inline std::filesystem::path shared_data() { return env_path("CHATMILL_SHARED_DATA", CHATMILL_SHARED_DATA_DEFAULT); }
inline std::filesystem::path source_dir() { return env_path("CHATMILL_SOURCE_DIR", CHATMILL_SOURCE_DIR_DEFAULT); }

// A fresh, empty scratch folder under the build tree's testdata for one test.
inline std::filesystem::path scratch(const std::string& name) {
  auto dir = testdata() / "scratch" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// All tensors of a safetensors file, copied out of the mapping.
inline std::map<std::string, at::Tensor> read_all(const std::filesystem::path& file) {
  auto r = model::SafetensorsReader::open(file);
  std::map<std::string, at::Tensor> out;
  for (const auto& t : r.tensors()) out[t.name] = r.view(t).clone();
  return out;
}

// The message of the chatmill::Error that `f` throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Expects `f` to throw a chatmill::Error whose message holds every one of `parts`.
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  const std::string msg = error_of(f);
  if (msg.empty()) {
    ADD_FAILURE() << "expected a chatmill::Error";
    return;
  }
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// max |got - want| relative to want's largest magnitude.
inline double rel_diff(const at::Tensor& got, const at::Tensor& want) {
  return max_abs_diff(got, want) / std::max(1e-12, want.to(at::kDouble).abs().max().item<double>());
}

// A rel_diff bound for a kernel against its reference: float32 reduction order only (1e-5); bf16/fp16 `ulps`
// rounding steps of the dtype (the kernels round where HF rounds, so most elements are equal and the rest an
// ulp or two away).
inline double kernel_tolerance(at::ScalarType t, double ulps) {
  if (t == at::kFloat) return 1e-5;
  return ulps * (t == at::kBFloat16 ? 1.0 / 128 : 1.0 / 1024);
}

}  // namespace chatmill::testing
