// MFU's default denominator: datasheet dense bf16 peaks looked up by the names CUDA reports.
#include <gtest/gtest.h>

#include "train/device_peak.h"

namespace chatmill {
namespace {

TEST(DevicePeak, KnownDataCentreGpusByTheirCudaNames) {
  EXPECT_DOUBLE_EQ(train::dense_bf16_peak_tflops("NVIDIA H100 80GB HBM3"), 989.4);
  EXPECT_DOUBLE_EQ(train::dense_bf16_peak_tflops("NVIDIA H100 PCIe"), 756.0);
  EXPECT_DOUBLE_EQ(train::dense_bf16_peak_tflops("NVIDIA H100 NVL"), 835.0);
  EXPECT_DOUBLE_EQ(train::dense_bf16_peak_tflops("NVIDIA H200"), 989.4);
  EXPECT_DOUBLE_EQ(train::dense_bf16_peak_tflops("NVIDIA A100-SXM4-80GB"), 312.0);
  EXPECT_DOUBLE_EQ(train::dense_bf16_peak_tflops("NVIDIA A100 80GB PCIe"), 312.0);
  EXPECT_DOUBLE_EQ(train::dense_bf16_peak_tflops("NVIDIA A10"), 125.0);  // not taken for an A100
  EXPECT_DOUBLE_EQ(train::dense_bf16_peak_tflops("NVIDIA A10G"), 70.0);
  EXPECT_DOUBLE_EQ(train::dense_bf16_peak_tflops("NVIDIA L40S"), 362.1);
  EXPECT_DOUBLE_EQ(train::dense_bf16_peak_tflops("NVIDIA L4"), 121.0);
}

TEST(DevicePeak, UnknownDevicesHaveNoPeak) {
  EXPECT_EQ(train::dense_bf16_peak_tflops("NVIDIA GeForce GTX 1080"), 0.0);
  EXPECT_EQ(train::dense_bf16_peak_tflops(""), 0.0);
}

}  // namespace
}  // namespace chatmill
