// The master gradients' hand-over kernel (train/cuda/grad_cast_kernels.cuh: float32 = / += bf16 or fp16)
// against ATen's copy_ and add_ on the same tensors, bit for bit (both convert exactly and add in float32):
// on the CPU under the emulator of tests/common/cuda_emu.h, and on CUDA (skipped without a GPU and a
// -DCHATMILL_CUDA=ON build). Lengths with and without a tail past the last 8-value piece, and grids with
// fewer threads than pieces (the grid-stride loops).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/test_env.h"
#include "model/fused_ops.h"
#include "train/cuda/grad_cast.h"
// After every ATen header: the emulator defines CUDA's keywords as macros.
#include "common/cuda_emu.h"
#include "train/cuda/grad_cast_kernels.cuh"

namespace chatmill {
namespace {

namespace emu = testing::cuda_emu;
using testing::max_abs_diff;


const std::vector<int64_t> kLengths = {1, 7, 8, 13, 1000, 4099};

TEST(EmulatedKernels, GradCastEqualsATenCopyAndAdd) {
  for (unsigned max_blocks : {1u, 1u << 30})  // one block for the whole tensor, and the grid cast_into picks
    for (at::ScalarType dtype : {at::kBFloat16, at::kHalf})
      for (int64_t n : kLengths) {
        at::manual_seed(n);
        const at::Tensor src = at::randn({n}).to(dtype), base = at::randn({n});
        const std::string where = c10::str(dtype, " n ", n, " max blocks ", max_blocks);
        ASSERT_TRUE(train::grad_cast::applies(base, src)) << where;
        at::Tensor got = base.clone(), want = base.clone();
        emu::Launcher launch;
        launch.max_blocks = max_blocks;
        train::grad_cast::cast_into(launch, got, src, false);
        want.copy_(src);
        EXPECT_EQ(max_abs_diff(got, want), 0.0) << where << ": copy";
        got = base.clone();
        want = base.clone();
        train::grad_cast::cast_into(launch, got, src, true);
        want.add_(src);
        EXPECT_EQ(max_abs_diff(got, want), 0.0) << where << ": add";
      }
}

TEST(GradCast, TakesOnlyWhatItsKernelHandles) {
  const at::Tensor f = at::zeros({16}), b = at::zeros({16}, at::kBFloat16);
  EXPECT_TRUE(train::grad_cast::applies(f, b));
  EXPECT_TRUE(train::grad_cast::applies(f, at::zeros({16}, at::kHalf)));
  EXPECT_FALSE(train::grad_cast::applies(f, at::zeros({16})));                        // float32 source
  EXPECT_FALSE(train::grad_cast::applies(b, b));                                        // bf16 destination
  EXPECT_FALSE(train::grad_cast::applies(f, at::zeros({15}, at::kBFloat16)));           // lengths differ
  EXPECT_FALSE(train::grad_cast::applies(f.narrow(0, 1, 8), b.narrow(0, 0, 8)));        // unaligned
  EXPECT_FALSE(train::grad_cast::applies(f.view({4, 4}).t(), b.view({4, 4})));          // not contiguous
}

TEST(GpuGradCast, KernelEqualsATenCopyAndAddOnCuda) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  if (!model::fused::kernels_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON";
#ifdef CHATMILL_CUDA
  const at::Device dev("cuda:0");
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf})
    for (int64_t n : {int64_t{1}, int64_t{13}, int64_t{4099}, int64_t{11008} * 4096 + 5}) {
      at::manual_seed(n);
      const at::Tensor src = at::randn({n}, dev).to(dtype), base = at::randn({n}, dev);
      const std::string where = c10::str(dtype, " n ", n);
      for (bool add : {false, true}) {
        at::Tensor got = base.clone(), want = base.clone();
        train::grad_cast::cast_into_cuda(got, src, add);
        if (add) want.add_(src);
        else want.copy_(src);
        EXPECT_EQ(max_abs_diff(got, want), 0.0) << where << (add ? ": add" : ": copy");
      }
    }
#endif
}

}  // namespace
}  // namespace chatmill
