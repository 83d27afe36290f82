#include "cli/options.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "common/error.h"

namespace chatmill::cli {

at::Device parse_device(const std::string& s) {
  if (s == "cpu") return at::kCPU;
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
    const std::string index = s == "cuda" ? "0" : s.substr(5);
    CHATMILL_CHECK(!index.empty() && index.size() <= 3 &&
                       std::all_of(index.begin(), index.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }),
                   "bad device '", s, "'; use cpu, cuda or cuda:N");
    CHATMILL_CHECK(at::hasCUDA(), "device '", s, "' asked for, but this build or machine has no CUDA; use --device cpu");
    const int n = std::stoi(index);
    const auto gpus = static_cast<int>(at::getNumGPUs());
    CHATMILL_CHECK(n < gpus, "device '", s, "' asked for, but this machine has ", gpus,
                   " CUDA device(s): use cuda:0 to cuda:", gpus - 1);
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(n));
  }
  CHATMILL_FAIL("unknown device '", s, "'; use cpu, cuda or cuda:N");
}

uint64_t parse_size(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  char* end = nullptr;
  const std::string number = s.substr(0, i);
  const double value = std::strtod(number.c_str(), &end);
  CHATMILL_CHECK(i > 0 && end == number.c_str() + number.size() && std::isfinite(value), "bad size '", s,
                 "'; write e.g. 5GB, 500MB, 2GiB or a byte count");
  const std::string unit = s.substr(i);
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "KiB") scale = 1024.0;
  else if (unit == "MiB") scale = 1024.0 * 1024;
  else if (unit == "GiB") scale = 1024.0 * 1024 * 1024;
  CHATMILL_CHECK(scale > 0, "bad size unit in '", s, "'; use B, KB, MB, GB, KiB, MiB or GiB");
  CHATMILL_CHECK(value * scale < 1.8e19, "size '", s, "' is too large");
  return static_cast<uint64_t>(value * scale);
}

std::vector<int64_t> parse_ids(const std::string& s) {
  std::string text = s;
  for (char& c : text)
    if (c == ',') c = ' ';
  std::istringstream in(text);
  std::vector<int64_t> ids;
  std::string item;
  while (in >> item) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    CHATMILL_CHECK(used == item.size() && v >= 0, "bad token id '", item, "' in \"", s,
                   "\"; give non-negative integers separated by spaces");
    ids.push_back(v);
  }
  CHATMILL_CHECK(!ids.empty(), "empty token id list \"", s, "\"");
  return ids;
}

std::string tokenizer_or_default(const std::string& given) {
  if (!given.empty()) return given;
  const char* env = std::getenv("CHATMILL_TOKENIZER");
  CHATMILL_CHECK(env != nullptr && *env != '\0', "no tokenizer given: pass --tokenizer FILE (the Llama-2 ",
                 "tokenizer.model by default in the paper's analyses) or set CHATMILL_TOKENIZER");
  return env;
}

void set_threads(int n) {
  if (n > 0) at::set_num_threads(n);
}

}  // namespace chatmill::cli
