// The CLI's value parsers (cli/options.h): good values parse, bad ones fail naming the value and the fix.
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "cli/options.h"
#include "common/test_env.h"

namespace chatmill {
namespace {

TEST(CliOptions, DevicesParseOrFailClearly) {
  EXPECT_EQ(cli::parse_device("cpu"), at::Device(at::kCPU));
  testing::expect_error([] { cli::parse_device("tpu"); }, {"unknown device 'tpu'", "cpu, cuda or cuda:N"});
  for (const char* bad : {"cuda:", "cuda:x", "cuda:-1", "cuda:1x", "cuda:12345"})
    testing::expect_error([&] { cli::parse_device(bad); }, {"bad device", bad, "cuda:N"});
  if (!at::hasCUDA()) {
    testing::expect_error([] { cli::parse_device("cuda"); }, {"no CUDA", "--device cpu"});
  } else {
    // An index past the machine's devices is refused here, not by a CUDA error at the first allocation.
    EXPECT_EQ(cli::parse_device("cuda"), at::Device(at::kCUDA, 0));
    testing::expect_error([] { cli::parse_device("cuda:999"); }, {"cuda:999", "CUDA device(s)", "cuda:0 to"});
  }
}

TEST(CliOptions, SizesParseOrFailClearly) {
  EXPECT_EQ(cli::parse_size("5GB"), 5000000000ull);
  EXPECT_EQ(cli::parse_size("2GiB"), 2ull * 1024 * 1024 * 1024);
  EXPECT_EQ(cli::parse_size("1.5MB"), 1500000ull);
  EXPECT_EQ(cli::parse_size("123"), 123ull);
  for (const char* bad : {"", ".", "1..5MB", "GB"}) testing::expect_error([&] { cli::parse_size(bad); }, {"bad size"});
  testing::expect_error([] { cli::parse_size("5XB"); }, {"bad size unit", "5XB"});
}

}  // namespace
}  // namespace chatmill
