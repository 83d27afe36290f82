#include "train/device_peak.h"

#include <utility>
#include <vector>

namespace chatmill::train {

double dense_bf16_peak_tflops(const std::string& device_name) {
  // First match wins: the more specific names (H100 PCIe, H100 NVL, A100 before A10) come first.
  static const std::vector<std::pair<const char*, double>> kPeaks = {
      {"H100 PCIe", 756.0}, {"H100 NVL", 835.0}, {"H100", 989.4}, {"H200 NVL", 835.0}, {"H200", 989.4},
      {"GH200", 989.4},     {"H800", 989.4},     {"H20", 148.0},  {"B200", 2250.0},    {"B100", 1750.0},
      {"A100", 312.0},      {"A800", 312.0},     {"L40S", 362.1}, {"L40", 181.0},      {"L4", 121.0},
      {"A10G", 70.0},       {"A10", 125.0},      {"A30", 165.0},  {"A40", 149.7},
  };
  for (const auto& [key, peak] : kPeaks)
    if (device_name.find(key) != std::string::npos) return peak;
  return 0.0;
}

}  // namespace chatmill::train
