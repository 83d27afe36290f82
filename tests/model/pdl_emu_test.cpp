// Kernels that start before the kernel before them ends (programmatic dependent launch, model/cuda/pdl.cuh), on
// the emulator with a PreviousKernel: everything a kernel loads before its wait sees the memory as it was
// before the kernel before wrote its outputs, so a kernel that reads one of them early computes from stale
// values here. Each test also shows that it can fail: told the wrong fresh column, attention reads a stale one.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "model/emu_kernel_checks.h"
#include "model/fused_ops.h"
#include "model/rope.h"

#include "common/cuda_emu.h"
#include "model/cuda/decode_launch.cuh"

namespace chatmill {
namespace {

namespace emu = testing::cuda_emu;
namespace launchers = model::fused::launchers;
using testing::kernel_tolerance;
using testing::kHalfTypes;
using testing::kRef;
using testing::rel_diff;

// before[block] = x[block] read before the wait, after[block] = read after it.
__global__ void read_around_wait(const float* x, float* before, float* after) {
  const float early = x[blockIdx.x];
  model::cuda_launch::wait_for_previous_kernel();
  if (threadIdx.x == 0) {
    before[blockIdx.x] = early;
    after[blockIdx.x] = x[blockIdx.x];
  }
}

__global__ void never_waits(const float* x, float* out) {
  if (threadIdx.x == 0) out[blockIdx.x] = x[blockIdx.x];
}

TEST(CudaEmu, PreviousKernelWritesLandAtTheWaitOfEveryBlock) {
  at::Tensor x = at::zeros({5}), before = at::full({5}, -1.f), after = at::full({5}, -1.f);
  {
    emu::PreviousKernel previous([&] { x.fill_(1.f); });
    emu::launch(read_around_wait, dim3(5), dim3(64), x.data_ptr<float>(), before.data_ptr<float>(),
                after.data_ptr<float>());
    EXPECT_TRUE(previous.ran());
  }
  EXPECT_TRUE(before.eq(0).all().item<bool>()) << before;  // every block read before any write
  EXPECT_TRUE(after.eq(1).all().item<bool>()) << after;
  // Without a PreviousKernel the wait holds nothing.
  x.fill_(2.f);
  emu::launch(read_around_wait, dim3(5), dim3(64), x.data_ptr<float>(), before.data_ptr<float>(),
              after.data_ptr<float>());
  EXPECT_TRUE(before.eq(2).all().item<bool>());
  // A kernel that never waits reads stale memory; the writes still land once its blocks exit.
  x.zero_();
  at::Tensor out = at::full({3}, -1.f);
  {
    emu::PreviousKernel previous([&] { x.fill_(1.f); });
    emu::launch(never_waits, dim3(3), dim3(32), x.data_ptr<float>(), out.data_ptr<float>());
    EXPECT_TRUE(previous.ran());
  }
  EXPECT_TRUE(out.eq(0).all().item<bool>());
  EXPECT_TRUE(x.eq(1).all().item<bool>());
}

// The step's attention after its q/k/v kernel: q and each row's fresh cache column are that kernel's outputs,
// written at the wait; every other column is an earlier step's. D 64 takes the vectorised kernel (early loads),
// D 24 the scalar one (which ignores fresh and loads after the wait). At 4 splits (resident 32) a warp's first
// iteration takes columns [0, 64) and [64, 128): the fresh columns are in its first half (36, 45), its second
// (100), and a later iteration (170); at one split (resident 8) all are in later iterations.
TEST(EmulatedKernels, AttentionLoadsEarlierColumnsBeforeItsWaitAndTheFreshOneAfter) {
  for (at::ScalarType dtype : kHalfTypes)
    for (auto [D, resident] : std::vector<std::tuple<int64_t, int64_t>>{{64, 32}, {64, 8}, {24, 32}}) {
      const int64_t B = 4, H = 2, Hkv = 1, S = 200;
      const emu::Launcher launch{resident};  // splits: resident / (B * H)
      at::manual_seed(31);
      const at::Tensor q = at::randn({B, H, D}, dtype), kc = at::randn({B, Hkv, S, D}, dtype);
      const at::Tensor vc = at::randn({B, Hkv, S, D}, dtype);
      const at::Tensor lengths = at::tensor(std::vector<int64_t>{200, 37, 60, 200}, at::kLong);
      const at::Tensor want = model::fused::decode_attention(q, kc, vc, lengths, kRef);
      // Attention told `told` is the fresh column while the kernel before writes `fresh`.
      auto run = [&](const std::vector<int64_t>& fresh, const std::vector<int64_t>& told) {
        at::Tensor qa = at::full_like(q, 30), ka = kc.clone(), va = vc.clone();
        for (int64_t b = 0; b < B; ++b) {  // stale until the wait: a key that takes the softmax, a far value
          ka[b].select(1, fresh[b]).copy_((q[b].sum(0) * 10).expand({Hkv, D}));
          va[b].select(1, fresh[b]).fill_(30);
        }
        at::Tensor out = at::empty({B, H * D}, dtype), counters = at::zeros({B * H}, at::kInt);
        emu::PreviousKernel previous([&] {
          qa.copy_(q);
          for (int64_t b = 0; b < B; ++b) {
            ka[b].select(1, fresh[b]).copy_(kc[b].select(1, fresh[b]));
            va[b].select(1, fresh[b]).copy_(vc[b].select(1, fresh[b]));
          }
        });
        launchers::decode_attention(launch, qa, ka, va, lengths, counters, out, at::tensor(told, at::kLong));
        EXPECT_TRUE(previous.ran());
        return out;
      };
      const std::vector<int64_t> fresh = {100, 36, 45, 170};
      const std::string where = c10::str(dtype, " D ", D, " resident ", resident);
      EXPECT_LE(rel_diff(run(fresh, fresh), want), kernel_tolerance(dtype, 2)) << where;
      if (D == 64 && resident == 32) {  // told column 0 instead: the fresh columns loaded early are stale
        const at::Tensor wrong = run(fresh, {0, 0, 0, 0}).view({B, H, D});
        for (int64_t b = 0; b < 3; ++b)
          EXPECT_GT(rel_diff(wrong[b], want.view({B, H, D})[b]), 0.1) << where << " row " << b;
        EXPECT_LE(rel_diff(wrong[3], want.view({B, H, D})[3]), kernel_tolerance(dtype, 2)) << where << " row 3";
      }
    }
}

// The projections' kernels load weights before the wait (the skinny GEMM's first chunks, the staged GEMV's
// first 8 KB a warp, the tile GEMM's first stages); their input is the kernel before's output: x, or the residual
// and the delta a folded projection normalises (here the LM head with the final norm).
TEST(EmulatedKernels, ProjectionsReadTheirInputOnlyAfterTheWait) {
  for (int64_t resident : {1, 1000}) {
    const emu::Launcher launch{resident};
    for (at::ScalarType dtype : kHalfTypes)
      for (int64_t M : {1, 2}) {
        at::manual_seed(33);
        const int64_t N = 24, K = 264;
        const at::Tensor x = at::randn({M, K}, dtype), w = at::randn({N, K}, dtype) * 0.05;
        const at::Tensor want = at::linear(x, w);
        const std::string where = c10::str(dtype, " M ", M, " resident ", resident);
        for (const char* kind : {"skinny", "staged", "tile"}) {
          at::Tensor xa = at::full_like(x, 30), out = at::empty({M, N}, dtype);
          emu::PreviousKernel previous([&] { xa.copy_(x); });
          if (kind == std::string("staged")) launchers::staged_linear(launch, xa, w, out);
          else if (kind == std::string("tile")) launchers::tile_linear(launch, xa, {w}, out);
          else launchers::skinny_linear(launch, xa, {w}, out);
          EXPECT_TRUE(previous.ran());
          EXPECT_LE(rel_diff(out, want), kernel_tolerance(dtype, 2)) << where << " " << kind;
        }
        const at::Tensor r = at::randn({M, K}, dtype), delta = at::randn({M, K}, dtype), nw = at::rand({K}, dtype) + 0.5;
        at::Tensor want_logits = at::empty({M, N}, at::kFloat);
        const model::fused::NormedInput in_ref{r, delta, nw, at::empty_like(r), 1e-5};
        model::fused::lm_head_logits(in_ref, w, want_logits, kRef);
        const model::fused::NormedInput in{at::full_like(r, 30), at::full_like(delta, -30), nw, at::empty_like(r), 1e-5};
        at::Tensor logits = at::empty({M, N}, at::kFloat);
        emu::PreviousKernel previous([&] {
          in.residual_in.copy_(r);
          in.delta.copy_(delta);
        });
        launchers::skinny_logits(launch, in, w, logits);
        EXPECT_TRUE(previous.ran());
        EXPECT_LE(rel_diff(logits, want_logits), kernel_tolerance(dtype, 2)) << where << " folded LM head";
        EXPECT_TRUE(in.residual_out.equal(in_ref.residual_out)) << where << ": residual_out";
      }
  }
}

// The folded q/k/v projection: its rotary table (positions, columns: the step's inputs) is filled before the wait,
// the residual and delta it normalises are the kernel before's outputs.
TEST(EmulatedKernels, FoldedQkvFillsItsRotaryTableEarlyAndNormalisesAfterTheWait) {
  for (int64_t resident : {1, 3}) {
    const emu::Launcher launch{resident};
    for (at::ScalarType dtype : kHalfTypes)
      for (int64_t M : {1, 2}) {
        const int64_t H = 4, Hkv = 2, D = 16, C = H * D, S = 5;
        at::manual_seed(35);
        const at::Tensor r = at::randn({M, C}, dtype), delta = at::randn({M, C}, dtype), nw = at::rand({C}, dtype) + 0.5;
        const at::Tensor wq = at::randn({H * D, C}, dtype) * 0.1, wk = at::randn({Hkv * D, C}, dtype) * 0.1,
                         wv = at::randn({Hkv * D, C}, dtype) * 0.1;
        const at::Tensor positions = at::tensor(std::vector<int64_t>{17, 2}, at::kLong).narrow(0, 0, M);
        const at::Tensor columns = at::tensor(std::vector<int64_t>{1, 4}, at::kLong).narrow(0, 0, M);
        model::RotaryEmbedding rope(D, 10000, at::kCPU);
        at::Tensor kc = at::randn({M, Hkv, S, D}, dtype), vc = at::randn({M, Hkv, S, D}, dtype);
        at::Tensor kc_ref = kc.clone(), vc_ref = vc.clone(), q_out = at::empty({M, H, D}, dtype);
        const model::fused::NormedInput in_ref{r, delta, nw, at::empty_like(r), 1e-5};
        const at::Tensor want = model::fused::qkv_rope_append(in_ref, wq, wk, wv, positions, columns, rope.inv_freq(),
                                                              kc_ref, vc_ref, kRef);
        const model::fused::NormedInput in{at::full_like(r, 30), at::full_like(delta, -30), nw, at::empty_like(r), 1e-5};
        emu::PreviousKernel previous([&] {
          in.residual_in.copy_(r);
          in.delta.copy_(delta);
        });
        launchers::skinny_qkv_rope(launch, in, wq, wk, wv, positions, columns, rope.inv_freq(), kc, vc, q_out);
        EXPECT_TRUE(previous.ran());
        testing::expect_qkv_near(q_out, want, kc, kc_ref, vc, vc_ref, dtype,
                                 c10::str(dtype, " M ", M, " resident ", resident));
      }
  }
}

}  // namespace
}  // namespace chatmill
