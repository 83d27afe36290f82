// model::advance_greedy (model/step_advance.h): the reference on hand-made rows (ties, NaN, a row that does not
// advance); its CUDA kernel (model/cuda/step_advance.cuh) on the CPU emulator against the reference, through its
// 16-byte and its scalar loads; bad input refused; on a GPU, the kernel writing pinned host memory.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/test_env.h"
#include "model/step_advance.h"
// After every ATen header: the emulator defines CUDA's keywords as macros.
#include "common/cuda_emu.h"
#include "model/cuda/step_advance.cuh"

namespace chatmill {
namespace {

namespace emu = testing::cuda_emu;

at::Tensor longs(std::vector<int64_t> v) { return at::tensor(v, at::TensorOptions().dtype(at::kLong)); }

// (4, B): ids, columns, lengths, advance.
at::Tensor state_of(std::vector<int64_t> ids, std::vector<int64_t> columns, std::vector<int64_t> lengths,
                    std::vector<int64_t> advance) {
  return at::stack({longs(ids), longs(columns), longs(lengths), longs(advance)}).contiguous();
}

TEST(StepAdvance, ReferenceTakesEachRowsFirstLargestWritesTheRingByColumnAndAdvances) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor logits = at::tensor({0.f, 1.f, 2.f, 3.f, 9.f, 1.f, 0.f,        // row 0: 4
                                        0.f, 1.f, 7.f, 3.f, 0.f, 7.f, 0.f,        // row 1: a tie, the first (2)
                                        0.f, 100.f, 2.f, 3.f, 4.f, 5.f, nan})     // row 2: NaN above all (6)
                               .view({3, 7});
  at::Tensor state = state_of({9, 9, 9, 9, 9}, {4, 7, 0, 3, 3}, {5, 8, 1, 4, 4}, {1, 1, 0, 1, 1});
  at::Tensor ring = model::advance_ring(5, at::kCPU).fill_(-1);
  model::advance_greedy(logits, state, ring);
  // Rows 3 and 4 (past n = 3) are left alone; row 2 does not advance: its id becomes its input, and its ring
  // entry stays unwritten.
  EXPECT_TRUE(state.equal(state_of({4, 2, 6, 9, 9}, {5, 8, 0, 3, 3}, {6, 9, 1, 4, 4}, {1, 1, 0, 1, 1})));
  // Column 4 is even, 7 odd.
  EXPECT_TRUE(ring.equal(at::stack({longs({4, -1, -1, -1, -1}), longs({-1, 2, -1, -1, -1})})));
  // The next step, one column on: rows 0 and 1 write the other half of the ring.
  model::advance_greedy(logits, state, ring);
  EXPECT_TRUE(ring.equal(at::stack({longs({4, 2, -1, -1, -1}), longs({4, 2, -1, -1, -1})})));
  EXPECT_TRUE(state[1].equal(longs({6, 9, 0, 3, 3})));
}

// Random logits (n, V) with planted cases: row 1 a tie of its largest, row 2 all -inf, row 3 two NaNs.
at::Tensor planted_logits(int64_t n, int64_t V, int64_t offset) {
  at::Tensor flat = at::empty({n * V + offset}, at::TensorOptions().dtype(at::kFloat));
  at::Tensor logits = flat.narrow(0, offset, n * V).view({n, V});
  logits.copy_(at::randn({n, V}, at::TensorOptions().dtype(at::kFloat)));
  if (n > 1) {
    logits[1][V - 3] = 50.f;
    logits[1][77] = 50.f;
  }
  if (n > 2) logits[2].fill_(-INFINITY);
  if (n > 3) {
    logits[3][V - 1] = std::numeric_limits<float>::quiet_NaN();
    logits[3][123] = std::numeric_limits<float>::quiet_NaN();
  }
  return logits;
}

TEST(StepAdvance, KernelOnTheEmulatorEqualsTheReference) {
  at::manual_seed(3);
  struct Case {
    int64_t n, V, offset;  // offset: floats before the logits (1: not 16-byte aligned, the scalar loads)
  };
  for (const Case c : {Case{4, 32000, 0}, Case{5, 1001, 0}, Case{4, 32000, 1}, Case{1, 8, 0}, Case{3, 5000, 0}}) {
    SCOPED_TRACE("n " + std::to_string(c.n) + " V " + std::to_string(c.V) + " offset " + std::to_string(c.offset));
    const at::Tensor logits = planted_logits(c.n, c.V, c.offset);
    const int64_t B = 6;
    at::Tensor state = state_of({0, 1, 2, 3, 4, 5}, {10, 3, 0, 8, 7, 2}, {11, 4, 1, 9, 8, 3}, {1, 1, 0, 1, 1, 1});
    at::Tensor ring = model::advance_ring(B, at::kCPU).fill_(-7);
    at::Tensor want_state = state.clone(), want_ring = ring.clone();
    model::advance_greedy(logits, want_state, want_ring);
    model::step_advance::launchers::advance_greedy(emu::Launcher{}, logits, state, ring.data_ptr<int64_t>());
    EXPECT_TRUE(state.equal(want_state)) << state << want_state;
    EXPECT_TRUE(ring.equal(want_ring)) << ring << want_ring;
    if (c.n > 3) EXPECT_EQ(state[0][3].item<int64_t>(), 123);  // the first NaN
    if (c.n > 1) EXPECT_EQ(state[0][1].item<int64_t>(), 77);   // the first of the tie
    if (c.n > 2) EXPECT_EQ(state[0][2].item<int64_t>(), 0);    // all -inf: the first
    if (c.n > 2) EXPECT_EQ(ring[0][2].item<int64_t>(), -7);    // row 2 does not advance: no ring write
  }
}

TEST(StepAdvance, RefusesBadInputClearly) {
  const at::Tensor logits = at::randn({2, 10});
  at::Tensor state = state_of({0, 0, 0}, {1, 1, 1}, {2, 2, 2}, {1, 1, 1});
  const at::Tensor ring = model::advance_ring(3, at::kCPU);
  testing::expect_error([&] { model::advance_greedy(logits, state.narrow(0, 0, 3).contiguous(), ring); },
                        {"(4, B) int64", "ids, columns, lengths, advance"});
  testing::expect_error([&] { model::advance_greedy(logits.to(at::kHalf), state, ring); }, {"float32", "1 <= n <= 3"});
  testing::expect_error([&] { model::advance_greedy(at::randn({4, 10}), state, ring); }, {"1 <= n <= 3", "[4, 10]"});
  testing::expect_error([&] { model::advance_greedy(logits, state, model::advance_ring(4, at::kCPU)); },
                        {"advance_ring(3", "(2, 3) int64 host memory"});
  testing::expect_error([] { model::advance_ring(0, at::kCPU); }, {"B must be at least 1"});
}

TEST(GpuStepAdvance, KernelWritesPinnedHostMemoryAndEqualsTheReference) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  if (!model::fused::kernels_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON";
  at::manual_seed(4);
  for (const int64_t V : {32000, 1001}) {
    const at::Tensor logits = planted_logits(4, V, 0).cuda();
    const at::Tensor state0 = state_of({0, 1, 2, 3, 4}, {10, 3, 0, 8, 7}, {11, 4, 1, 9, 8}, {1, 1, 0, 1, 1});
    at::Tensor state = state0.cuda(), want_state = state0.clone();
    at::Tensor ring = model::advance_ring(5, at::kCUDA).fill_(-7), want_ring = ring.clone();
    model::advance_greedy(logits.cpu(), want_state, want_ring);
    model::advance_greedy(logits, state, ring);
    const at::Tensor got = state.cpu();  // waits for the kernel: its ring writes are visible after
    EXPECT_TRUE(got.equal(want_state)) << V << got << want_state;
    EXPECT_TRUE(ring.equal(want_ring)) << V << ring << want_ring;
  }
}

}  // namespace
}  // namespace chatmill
