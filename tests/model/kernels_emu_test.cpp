// The CUDA kernels (src/model/cuda/*.cuh: the decode step's, and the training ops' of fused_autograd.h) and their
// launch code (decode_launch.cuh, autograd_kernels.cuh), run on the
// CPU under the fiber emulator of tests/common/cuda_emu.h, against the reference ops (model/fused_ops.h with
// ForceReference) on the same tensors. The same comparisons run on the GPU in fused_ops_test.cpp (GpuFused);
// these catch index, reduction and epilogue mistakes on a machine without one.
// The tile GEMM's tests are in tile_kernels_emu_test.cpp; both share emu_kernel_checks.h.
//
// Tolerances, relative to the reference's largest magnitude: float32 1e-5 (reduction order); bf16/fp16 one or
// two steps of the dtype (the kernels round where HF rounds, so most elements are equal).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "common/test_env.h"
#include "model/emu_kernel_checks.h"
#include "model/fused_autograd.h"
#include "model/fused_decode.h"
#include "model/fused_ops.h"
#include "model/kv_cache.h"
#include "model/persistent_decode.h"
#include "model/rope.h"
#include "model/transformer.h"
#include "model/weights.h"
// After every ATen header: the emulator defines CUDA's keywords as macros.
#include "common/cuda_emu.h"
#include "model/cuda/autograd_kernels.cuh"
#include "model/cuda/decode_launch.cuh"
#include "model/cuda/grid_sync.cuh"
#include "model/cuda/persistent_launch.cuh"

namespace chatmill {
namespace {

namespace emu = testing::cuda_emu;
namespace launchers = model::fused::launchers;
using model::fused::ForceReference;
using testing::max_abs_diff;
using testing::rel_diff;

using testing::kernel_tolerance;
using testing::expect_gemm_equals_linear;
using testing::expect_qkv_near;
using testing::kHalfTypes;
using testing::kRef;

// ---- the emulator itself ---------------------------------------------------------------------------------

// out[block] = the block's sum (block_sum); swapped[i] = in of lane i ^ 1 of the same warp (a shuffle).
__global__ void sums_and_swaps(const float* in, float* out, float* swapped) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const float total = model::cuda_math::block_sum(in[i]);
  if (threadIdx.x == 0) out[blockIdx.x] = total;
  swapped[i] = __shfl_xor_sync(0xffffffffu, in[i], 1);
}

__global__ void sync_after_exit(int* hits) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  atomicAdd(hits, 1);
}

__global__ void half_warp_shuffle(float* out) {
  if (threadIdx.x % 32 < 16) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1);
}

TEST(CudaEmu, RunsBlockReductionsAndShufflesLikeTheGpu) {
  at::Tensor in = at::randn({4 * 96}), out = at::zeros({4}), swapped = at::zeros({4 * 96});
  emu::launch(sums_and_swaps, dim3(4), dim3(96), in.data_ptr<float>(), out.data_ptr<float>(), swapped.data_ptr<float>());
  EXPECT_LE(max_abs_diff(out, in.view({4, 96}).sum(1)), 1e-5);
  at::Tensor idx = at::arange(4 * 96).bitwise_xor(1);
  EXPECT_TRUE(swapped.equal(in.index_select(0, idx)));
}

TEST(CudaEmu, ReportsWhatAGpuLeavesUndefined) {
  at::Tensor hits = at::zeros({1}, at::kInt);
  try {
    emu::launch(sync_after_exit, dim3(1), dim3(64), hits.data_ptr<int>());
    ADD_FAILURE() << "a __syncthreads after an exit ran";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("__syncthreads reached after some threads of the block exited"),
              std::string::npos)
        << e.what();
  }
  at::Tensor out = at::zeros({64});
  try {
    emu::launch(half_warp_shuffle, dim3(1), dim3(64), out.data_ptr<float>());
    ADD_FAILURE() << "a shuffle by half a warp ran";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("can never complete"), std::string::npos) << e.what();
  }
  // The emulator is usable again after a failed launch.
  at::Tensor in = at::ones({32}), sums = at::zeros({1}), swapped = at::zeros({32});
  emu::launch(sums_and_swaps, dim3(1), dim3(32), in.data_ptr<float>(), sums.data_ptr<float>(), swapped.data_ptr<float>());
  EXPECT_EQ(sums.item<float>(), 32.f);
}

// Rounds of: each block writes its slot, a grid barrier, every block checks every slot. `mine` is __shared__:
// each block must keep its own across the barriers. bad[block] counts what a block saw wrong.
__global__ void barrier_rounds(unsigned* bar, int* slots, int* bad, int rounds) {
  __shared__ int mine;
  const int blocks = static_cast<int>(gridDim.x);
  for (int r = 0; r < rounds; ++r) {
    if (threadIdx.x == 0) {
      mine = r * 1000 + static_cast<int>(blockIdx.x);
      slots[blockIdx.x] = mine;
    }
    model::cuda_launch::grid_sync(bar);
    for (int b = threadIdx.x; b < blocks; b += blockDim.x)
      if (slots[b] != r * 1000 + b) atomicAdd(bad + blockIdx.x, 1);
    if (mine != r * 1000 + static_cast<int>(blockIdx.x)) atomicAdd(bad + blockIdx.x, 1);
    model::cuda_launch::grid_sync(bar);  // nobody overwrites a slot that another block still reads
  }
}

// Block 1 breaks a __syncthreads while the others wait at a grid barrier for it.
__global__ void barrier_with_a_broken_block(unsigned* bar) {
  if (blockIdx.x == 1) {
    if (threadIdx.x == 0) return;
    __syncthreads();
  }
  model::cuda_launch::grid_sync(bar);
}

TEST(CudaEmu, CooperativeLaunchRunsBlocksTogetherThroughGridBarriers) {
  for (unsigned blocks : {1u, 3u, 7u}) {
    at::Tensor bar = at::zeros({1}, at::kInt), slots = at::full({blocks}, -1, at::kInt), bad = at::zeros({blocks}, at::kInt);
    auto* b = reinterpret_cast<unsigned*>(bar.data_ptr<int>());
    for (int rounds : {5, 2, 3}) {  // 10, 4 and 6 barriers: the word flips its top bit at each
      emu::launch_cooperative(barrier_rounds, dim3(blocks), dim3(64), b, slots.data_ptr<int>(), bad.data_ptr<int>(), rounds);
      EXPECT_EQ(bad.sum().item<int>(), 0) << blocks << " blocks";
      EXPECT_EQ(*b, 0u) << "an even number of barriers leaves the word at zero";
    }
    emu::launch_cooperative(barrier_rounds, dim3(blocks + 1), dim3(32), b, slots.data_ptr<int>(), bad.data_ptr<int>(), 1);
    EXPECT_EQ(bad.sum().item<int>(), 0) << blocks + 1 << " blocks after " << blocks;
  }
  // Plain launches still run the blocks one after another: a cooperative kernel there would wait forever, so
  // the launcher refuses a grid the device does not hold at once.
  const emu::Launcher launch{/*resident=*/2};
  at::Tensor bar = at::zeros({1}, at::kInt), slots = at::zeros({3}, at::kInt), bad = at::zeros({3}, at::kInt);
  EXPECT_THROW(launch.cooperative(barrier_rounds, dim3(3), dim3(32), reinterpret_cast<unsigned*>(bar.data_ptr<int>()),
                                  slots.data_ptr<int>(), bad.data_ptr<int>(), 1),
               std::invalid_argument);
}

// Block 1 leaves without reaching the barrier that the others wait at (which gives up after 1000 polls here,
// not the GPU's million).
__global__ void barrier_one_block_skips(unsigned* bar) {
  if (blockIdx.x == 1) return;
  model::cuda_launch::grid_sync(bar, 1000);
}

// A cooperative launch of `kernel` on `blocks` blocks of 32 threads with a fresh barrier word must fail with an
// error that names `part`.
void expect_cooperative_failure(void (*kernel)(unsigned*), unsigned blocks, const std::string& part) {
  at::Tensor bar = at::zeros({1}, at::kInt);
  try {
    emu::launch_cooperative(kernel, dim3(blocks), dim3(32), reinterpret_cast<unsigned*>(bar.data_ptr<int>()));
    ADD_FAILURE() << "the launch returned; expected an error naming: " << part;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(CudaEmu, ABarrierSomeBlockNeverReachesTrapsInsteadOfHanging) {
  expect_cooperative_failure(barrier_one_block_skips, 3, "__trap");
}

TEST(CudaEmu, CooperativeLaunchReportsABrokenBlockInsteadOfHanging) {
  expect_cooperative_failure(barrier_with_a_broken_block, 4, "__syncthreads reached after some threads of the block exited");
}

// ---- the decode kernels ----------------------------------------------------------------------------------

const std::vector<at::ScalarType> kAllTypes = {at::kFloat, at::kBFloat16, at::kHalf};

TEST(EmulatedKernels, AddRmsNormAndSiluMulEqualTheReference) {
  const emu::Launcher launch;
  for (at::ScalarType dtype : kAllTypes) {
    at::manual_seed(3);
    for (int64_t C : {72, 1000, 1001}) {  // 16-byte loads, then (1001) one element at a time
      at::Tensor r = at::randn({3, C}, dtype), w = at::randn({C}, dtype);
      at::Tensor wide = at::randn({3, 2 * C}, dtype), d = wide.narrow(1, C, C);  // rows 2C apart
      at::Tensor r_ref = r.clone(), out = at::empty_like(r);
      launchers::add_rms_norm(launch, r, d, w, 1e-5, out);
      at::Tensor want = model::fused::add_rms_norm(r_ref, d, w, 1e-5, kRef);
      EXPECT_LE(max_abs_diff(r, r_ref), 0.0) << dtype << " C " << C << ": the residual add rounds as HF's";
      EXPECT_LE(rel_diff(out, want), kernel_tolerance(dtype, 1)) << dtype << " C " << C;
      launchers::add_rms_norm(launch, r, at::Tensor(), w, 1e-6, out);  // the norm alone
      EXPECT_LE(rel_diff(out, model::fused::add_rms_norm(r_ref, at::Tensor(), w, 1e-6, kRef)), kernel_tolerance(dtype, 1));
    }
    at::Tensor gu = at::randn({2, 2 * 300}, dtype) * 4;
    at::Tensor g = gu.narrow(1, 0, 300), u = gu.narrow(1, 300, 300), out = at::empty({2, 300}, dtype);
    launchers::silu_mul(launch, g, u, out);
    EXPECT_LE(rel_diff(out, model::fused::silu_mul(g, u, kRef)), kernel_tolerance(dtype, 1)) << dtype;
  }
}

TEST(EmulatedKernels, RopeAppendEqualsTheReference) {
  const emu::Launcher launch;
  for (at::ScalarType dtype : kAllTypes)
    for (auto [H, Hkv, D] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{4, 2, 16}, {2, 2, 64}}) {
      const int64_t B = 2, S = 7;
      at::manual_seed(4);
      at::Tensor qkv = at::randn({B, (H + 2 * Hkv) * D}, dtype);
      at::Tensor q = qkv.narrow(1, 0, H * D), k = qkv.narrow(1, H * D, Hkv * D), v = qkv.narrow(1, (H + Hkv) * D, Hkv * D);
      at::Tensor positions = at::tensor({3000, 5}, at::kLong), columns = at::tensor({6, 0}, at::kLong);
      model::RotaryEmbedding rope(D, 10000, at::kCPU);
      at::Tensor kc = at::randn({B, Hkv, S, D}, dtype), vc = at::randn({B, Hkv, S, D}, dtype);
      at::Tensor kc_ref = kc.clone(), vc_ref = vc.clone(), q_out = at::empty({B, H, D}, dtype);
      launchers::rope_append(launch, q, k, v, positions, columns, rope.inv_freq(), kc, vc, q_out);
      at::Tensor want = model::fused::rope_append(q, k, v, positions, columns, rope.inv_freq(), kc_ref, vc_ref, kRef);
      const std::string where = c10::str(dtype, " H ", H, " Hkv ", Hkv, " D ", D);
      EXPECT_LE(rel_diff(q_out, want), kernel_tolerance(dtype, 1)) << where;
      EXPECT_LE(rel_diff(kc, kc_ref), kernel_tolerance(dtype, 1)) << where;
      EXPECT_LE(max_abs_diff(vc, vc_ref), 0.0) << where;
    }
}

TEST(EmulatedKernels, SkinnyGemmEqualsATLinear) {
  const emu::Launcher launch;
  for (at::ScalarType dtype : kHalfTypes) {
    at::manual_seed(5);
    // Widths that leave a partial last block of rows or of in-flight chunks, and one past a whole round.
    expect_gemm_equals_linear(
        [&](const at::Tensor& x, const std::vector<at::Tensor>& ws, const at::Tensor& out) {
          launchers::skinny_linear(launch, x, ws, out);
        },
        dtype, {{13, 264}, {40, 64}, {9, 1040}}, {1, 2}, 2, "skinny");
  }
}

// The staged GEMV (LaunchOptions::stage_weights) against at::linear: rows shorter than the 8 KB a warp stages,
// longer (the rest streamed), a warp with a second, unstaged row (one resident block), and more warps than rows.
TEST(EmulatedKernels, StagedGemvEqualsATLinear) {
  for (int64_t resident : {1, 1000}) {
    const emu::Launcher launch{resident};
    for (at::ScalarType dtype : kHalfTypes)
      for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{13, 264}, {9, 4104}})
        for (int64_t M : {1, 2}) {
          at::manual_seed(15);
          at::Tensor x = at::randn({M, K}, dtype), w = at::randn({N, K}, dtype) * 0.05;
          at::Tensor out = at::full({M, N}, NAN, dtype);
          launchers::staged_linear(launch, x, w, out);
          EXPECT_LE(rel_diff(out, at::linear(x, w)), kernel_tolerance(dtype, 2))
              << "staged " << dtype << " M " << M << " N " << N << " K " << K << " resident " << resident;
        }
  }
}

// The folded projections (and the LM head with the final norm folded) against the unfolded composition
// (fused_ops.h's reference).
TEST(EmulatedKernels, FoldedProjectionsEqualTheUnfoldedOps) {
  for (int64_t resident : {1, 3, 1000}) {  // one block for all items, a few, one item per warp
    const emu::Launcher launch{resident};
    for (at::ScalarType dtype : kHalfTypes)
      // The last: rows of 130 chunks, so a lane's last round of an item (where the next item's loads start)
      // falls at different rounds across the warp.
      for (auto [H, Hkv, D] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{4, 2, 16}, {2, 2, 64}, {2, 1, 520}})
        for (int64_t M : {1, 2}) {
          const int64_t C = H * D, F = 40, S = 5;
          const std::string where = c10::str(dtype, " M ", M, " H ", H, " Hkv ", Hkv, " D ", D, " resident ", resident);
          at::manual_seed(6);
          at::Tensor r = at::randn({M, C}, dtype), wide = at::randn({M, 2 * C}, dtype), nw = at::randn({C}, dtype);
          at::Tensor wq = at::randn({H * D, C}, dtype) * 0.1, wk = at::randn({Hkv * D, C}, dtype) * 0.1,
                     wv = at::randn({Hkv * D, C}, dtype) * 0.1;
          at::Tensor positions = at::tensor(std::vector<int64_t>{17, 2}, at::kLong).narrow(0, 0, M);
          at::Tensor columns = at::tensor(std::vector<int64_t>{1, 4}, at::kLong).narrow(0, 0, M);
          model::RotaryEmbedding rope(D, 10000, at::kCPU);
          for (bool with_delta : {true, false}) {
            const at::Tensor delta = with_delta ? wide.narrow(1, C, C) : at::Tensor();
            const model::fused::NormedInput in{r, delta, nw, at::empty_like(r), 1e-5};
            const model::fused::NormedInput in_ref{r, delta, nw, at::empty_like(r), 1e-5};
            const at::Tensor r0 = r.clone();
            at::Tensor kc = at::randn({M, Hkv, S, D}, dtype), vc = at::randn({M, Hkv, S, D}, dtype);
            at::Tensor kc_ref = kc.clone(), vc_ref = vc.clone(), q_out = at::empty({M, H, D}, dtype);
            launchers::skinny_qkv_rope(launch, in, wq, wk, wv, positions, columns, rope.inv_freq(), kc, vc, q_out);
            at::Tensor want = model::fused::qkv_rope_append(in_ref, wq, wk, wv, positions, columns, rope.inv_freq(),
                                                            kc_ref, vc_ref, kRef);
            const std::string w2 = where + (with_delta ? " with delta" : " norm alone");
            EXPECT_TRUE(r.equal(r0)) << w2 << ": residual_in is left alone";
            EXPECT_LE(max_abs_diff(in.residual_out, in_ref.residual_out), 0.0) << w2 << ": residual_out";
            expect_qkv_near(q_out, want, kc, kc_ref, vc, vc_ref, dtype, w2);

            at::Tensor wg = at::randn({F, C}, dtype) * 0.1, wu = at::randn({F, C}, dtype) * 0.1;
            at::Tensor act = at::empty({M, F}, dtype);
            launchers::skinny_gate_up_silu(launch, in, wg, wu, act);
            EXPECT_LE(rel_diff(act, model::fused::gate_up_silu(in_ref, wg, wu, kRef)), kernel_tolerance(dtype, 2))
                << w2 << ": gate_up_silu";
            // The LM head of the same input, widened to float32 (an odd width: a last partial round of items).
            at::Tensor wh = at::randn({37, C}, dtype) * 0.1;
            at::Tensor logits = at::empty({M, 37}, at::kFloat), logits_ref = at::empty_like(logits);
            const model::fused::NormedInput head_in{r, delta, nw, at::empty_like(r), 1e-5};
            launchers::skinny_logits(launch, head_in, wh, logits);
            EXPECT_LE(max_abs_diff(head_in.residual_out, in_ref.residual_out), 0.0) << w2 << ": head's residual_out";
            model::fused::lm_head_logits(in_ref, wh, logits_ref, kRef);
            EXPECT_LE(rel_diff(logits, logits_ref), kernel_tolerance(dtype, 2)) << w2 << ": lm_head_logits";
            EXPECT_TRUE(logits.equal(logits.to(dtype).to(at::kFloat))) << w2 << ": logits are the dtype's values";
          }
        }
  }
}

TEST(EmulatedKernels, DecodeAttentionEqualsTheReferenceWithAndWithoutCounters) {
  const emu::Launcher launch{4096};  // a device holding 4096 split blocks: the splits below, not one
  for (at::ScalarType dtype : kAllTypes)
    // D 16 and 64: the vectorised kernel (two and eight lanes a column in bf16); 24: the scalar one. S 200: 13
    // splits, several columns each, and empty ones; 640: 40 splits, more than the combine kernel's 32 threads
    // (at D 24 and length 200 each split has columns: the combine's threads merge two partials each).
    for (auto [H, Hkv, D, S] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
             {2, 1, 16, 640}, {2, 1, 64, 200}, {3, 3, 24, 200}, {2, 1, 24, 640}}) {
      const int64_t B = 2;
      at::manual_seed(7);
      at::Tensor q = at::randn({B, H, D}, dtype), kc = at::randn({B, Hkv, S, D}, dtype), vc = at::randn({B, Hkv, S, D}, dtype);
      for (std::vector<int64_t> lens : {std::vector<int64_t>{200, 3}, std::vector<int64_t>{1, 130}}) {
        at::Tensor lengths = at::tensor(lens, at::kLong);
        const at::Tensor want = model::fused::decode_attention(q, kc, vc, lengths, kRef);
        const std::string where = c10::str(dtype, " H ", H, " Hkv ", Hkv, " D ", D, " S ", S, " lengths ", lens);
        at::Tensor out = at::empty({B, H * D}, dtype);
        launchers::decode_attention(launch, q, kc, vc, lengths, at::Tensor(), out);
        EXPECT_LE(rel_diff(out, want), kernel_tolerance(dtype, 2)) << where << ", combine kernel";
        at::Tensor counters = at::zeros({B * H + 3}, at::kInt), out2 = at::empty({B, H * D}, dtype);
        for (int rep = 0; rep < 2; ++rep) {  // the counters serve the next launch as they are left
          launchers::decode_attention(launch, q, kc, vc, lengths, counters, out2);
          EXPECT_LE(rel_diff(out2, want), kernel_tolerance(dtype, 2)) << where << ", last-block combine, launch " << rep;
          EXPECT_EQ(counters.count_nonzero().item<int64_t>(), 0) << where << ": counters left at zero";
        }
      }
    }
}

// The vectorised split kernel with few splits, so that each warp runs many iterations and the pipelined loads
// (each iteration's issued before the previous one's arithmetic) carry across them; launched directly, as the
// launch code picks many splits at these sizes. The last split block combines (counters).
TEST(EmulatedKernels, PipelinedSplitAttentionOverManyIterationsEqualsTheReference) {
  namespace fk = model::fused::kernels;
  for (at::ScalarType dtype : kHalfTypes) {
    const int64_t B = 2, H = 2, Hkv = 1, D = 64, S = 200;
    at::manual_seed(12);
    at::Tensor q = at::randn({B, H, D}, dtype), kc = at::randn({B, Hkv, S, D}, dtype), vc = at::randn({B, Hkv, S, D}, dtype);
    for (int64_t splits : {1, 2, 3}) {
      const at::Tensor lengths = at::tensor(std::vector<int64_t>{200, 37}, at::kLong);
      const at::Tensor want = model::fused::decode_attention(q, kc, vc, lengths, kRef);
      at::Tensor part_acc = at::empty({B * H * splits, D}, at::kFloat), part_ml = at::empty({B * H * splits, 2}, at::kFloat);
      at::Tensor out = at::empty({B, H * D}, dtype), counters = at::zeros({B * H}, at::kInt);
      AT_DISPATCH_REDUCED_FLOATING_TYPES(dtype, "pipelined attention", [&] {
        emu::launch(fk::split_vec_kernel<scalar_t, 8>, dim3(B * H, splits), dim3(fk::kWarps * 32),
                    q.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(), vc.data_ptr<scalar_t>(),
                    lengths.data_ptr<int64_t>(), static_cast<const int64_t*>(nullptr),  // no fresh columns
                    part_acc.data_ptr<float>(), part_ml.data_ptr<float>(), out.data_ptr<scalar_t>(),
                    counters.data_ptr<int>(), static_cast<int>(H), static_cast<int>(Hkv), S,
                    1.f / std::sqrt(static_cast<float>(D)));
      });
      EXPECT_LE(rel_diff(out, want), kernel_tolerance(dtype, 2)) << dtype << " splits " << splits;
      EXPECT_EQ(counters.count_nonzero().item<int64_t>(), 0) << dtype << " splits " << splits;
    }
  }
}

// The persistent step's arguments for model m and cache at the tokens ids (M), each written at and attending
// up to its position: the step's own (persistent_step_args), with zero deltas, so that a stage mask's untouched
// outputs are known.
model::fused::PersistentStep persistent_step_of(const model::Model& m, model::KVCache& cache, const at::Tensor& ids,
                                                const at::Tensor& positions, const at::Tensor& lengths) {
  model::fused::prepare_persistent(m, cache);
  model::fused::PersistentStep s = model::fused::persistent_step_args(
      m, cache, at::embedding(m.weights.embed, ids).contiguous(), positions, positions, lengths);
  s.delta.zero_();
  return s;
}

// The persistent step (every layer in one cooperative kernel, grid barriers between its stages) against the
// step's reference composition (fused_decode_hidden on the CPU): the final hidden states, and every cache
// column (the written one within rounding, the others untouched). Blocks: one for everything, a few, and more
// than some stages have work for; rows of different lengths, over more than one attention split.
TEST(EmulatedKernels, PersistentStepEqualsTheReferenceStep) {
  for (at::ScalarType dtype : kHalfTypes)
    for (auto [H, Hkv, D] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{2, 1, 64}, {2, 2, 128}})
      for (int64_t M : {1, 2})
        for (int64_t resident : {1, 3, 8}) {
          if (D == 128 && resident == 3) continue;  // covered by D 64; saves emulator time
          const model::LlamaConfig cfg = testing::emulated_step_config(H, Hkv, D);
          const std::string where = c10::str(dtype, " M ", M, " H ", H, " Hkv ", Hkv, " D ", D, " blocks ", resident);
          model::Model m(cfg, model::init_weights(cfg, 0.05, 7, dtype, at::kCPU));
          const int64_t S = 72;
          at::manual_seed(8);
          auto [cache, ref] = testing::random_cache_and_copy(cfg, M, S, dtype);
          const at::Tensor positions = at::tensor(std::vector<int64_t>{37, 5}, at::kLong).narrow(0, 0, M);
          const at::Tensor lengths = positions + 1;
          const at::Tensor ids = at::tensor(std::vector<int64_t>{11, 200}, at::kLong).narrow(0, 0, M);
          const at::Tensor want = model::fused_decode_hidden(m, ids, positions, positions, lengths, ref);  // (M, C)

          model::fused::PersistentStep s = persistent_step_of(m, cache, ids, positions, lengths);
          launchers::persistent_step(emu::Launcher{resident}, s);
          const at::Tensor got = model::fused::add_rms_norm(s.x, s.delta, m.weights.norm, cfg.rms_norm_eps, kRef);
          // Two layers of one-ulp differences (matmul and attention reduction orders) through the norms.
          EXPECT_LE(rel_diff(got, want), kernel_tolerance(dtype, 4)) << where;
          testing::expect_caches_near(cache, ref, dtype, where);
          for (size_t l = 0; l < cache.k.size(); ++l) {
            for (int64_t b = 0; b < M; ++b) {
              const int64_t c = positions[b].item<int64_t>();
              at::Tensor keep = at::ones({S}, at::kBool);
              keep[c] = false;
              EXPECT_TRUE(cache.k[l][b].index({at::indexing::Slice(), keep}).equal(ref.k[l][b].index({at::indexing::Slice(), keep})))
                  << where << ": a column other than the written one changed";
            }
          }
          EXPECT_EQ(s.counters.count_nonzero().item<int64_t>(), 0) << where << ": attention leaves its counters at zero";
          // Five barriers a layer, the last one the kernel's end: 9, an odd number of top-bit flips.
          EXPECT_EQ(static_cast<unsigned>(s.barrier[0].item<int>()), 0x80000000u) << where;
        }
}

// A stage mask (bench_kernels times the stages apart with it): the masked kernel with every stage computes the
// step; with the q,k,v stage alone, the first layer writes its cache column as the step does, and nothing else
// moves; with no stage, nothing moves; every barrier is kept (the word's final value).
TEST(EmulatedKernels, PersistentStepStageMaskRunsOnlyTheStagesItNames) {
  namespace mf = model::fused;
  model::LlamaConfig cfg = model::llama2_debug();
  cfg.num_heads = 2;
  cfg.num_kv_heads = 1;
  cfg.hidden_size = 256;  // head dim 128: the masked kernel's one instantiation
  cfg.intermediate_size = 200;
  cfg.num_layers = 2;
  const at::ScalarType dtype = at::kBFloat16;
  model::Model m(cfg, model::init_weights(cfg, 0.05, 7, dtype, at::kCPU));
  const at::Tensor ids = at::tensor(std::vector<int64_t>{11}, at::kLong), positions = at::tensor(std::vector<int64_t>{9}, at::kLong);
  const at::Tensor lengths = positions + 1;
  auto fresh_cache = [&] {
    model::KVCache c = model::KVCache::allocate(cfg, 1, 16, dtype, at::kCPU);
    at::manual_seed(9);
    for (size_t l = 0; l < c.k.size(); ++l) {
      c.k[l].normal_();
      c.v[l].normal_();
    }
    return c;
  };
  model::KVCache ref = fresh_cache();
  const at::Tensor want = model::fused_decode_hidden(m, ids, positions, positions, lengths, ref);
  for (unsigned stages : {mf::kAllStages | mf::kStagedKernel, unsigned{mf::kQkvStage}, 0u}) {
    const std::string where = c10::str("stages ", stages);
    model::KVCache cache = fresh_cache(), before = fresh_cache();
    mf::PersistentStep s = persistent_step_of(m, cache, ids, positions, lengths);
    s.stages = stages;
    const at::Tensor x0 = s.x.clone();
    launchers::persistent_step(emu::Launcher{3}, s);
    EXPECT_EQ(static_cast<unsigned>(s.barrier[0].item<int>()), 0x80000000u) << where << ": every barrier kept";
    if (stages & mf::kDownStage) {
      const at::Tensor got = mf::add_rms_norm(s.x, s.delta, m.weights.norm, cfg.rms_norm_eps, kRef);
      EXPECT_LE(rel_diff(got, want), kernel_tolerance(dtype, 4)) << where;
      continue;
    }
    EXPECT_TRUE(s.x.equal(x0)) << where << ": the residual moved";
    EXPECT_EQ(s.delta.count_nonzero().item<int64_t>(), 0) << where << ": the MLP ran";
    const bool qkv = stages & mf::kQkvStage;
    EXPECT_LE(rel_diff(cache.k[0], qkv ? ref.k[0] : before.k[0]), kernel_tolerance(dtype, 2)) << where << ": layer 0 k";
    EXPECT_LE(rel_diff(cache.v[0], qkv ? ref.v[0] : before.v[0]), kernel_tolerance(dtype, 2)) << where << ": layer 0 v";
    if (!qkv) EXPECT_TRUE(cache.k[0].equal(before.k[0]) && cache.k[1].equal(before.k[1])) << where << ": a cache moved";
  }
}

// The training ops' kernels (model/fused_autograd.h) against the ops' CPU forms, forward and backward (the
// backward's reference: autograd through the CPU forward).
TEST(EmulatedKernels, TrainingRotaryAndSwigluEqualTheReference) {
  const emu::Launcher launch;
  namespace ac = model::autograd_cuda;
  for (at::ScalarType dtype : kAllTypes) {
    const int64_t B = 2, T = 3, H = 4, Hkv = 2, D = 16, W = (H + 2 * Hkv) * D, F = 40, N = B * T;
    at::manual_seed(8);
    model::RotaryEmbedding rope(D, 10000, at::kCPU);
    const model::RopeTables tables = rope.tables(at::randint(0, 500, {B, T}, at::kLong), dtype);  // (B, T, D)
    const at::Tensor cos = tables.cos.reshape({N, D}).contiguous(), sin = tables.sin.reshape({N, D}).contiguous();
    at::Tensor qkv = at::randn({B, T, W}, dtype).requires_grad_(true);
    const model::QkvHeads want = model::qkv_rotary_fused(qkv, tables.cos, tables.sin, H, Hkv);
    at::Tensor q = at::empty({N, H, D}, dtype), k = at::empty({N, Hkv, D}, dtype), v = at::empty({N, Hkv, D}, dtype);
    ac::qkv_rotary<true>(launch, qkv.detach().reshape({N, W}), q, k, v, cos, sin);
    EXPECT_LE(rel_diff(q, want.q.detach().reshape({N, H, D})), kernel_tolerance(dtype, 1)) << dtype << " rotary q";
    EXPECT_LE(rel_diff(k, want.k.detach().reshape({N, Hkv, D})), kernel_tolerance(dtype, 1)) << dtype << " rotary k";
    EXPECT_LE(max_abs_diff(v, want.v.detach().reshape({N, Hkv, D})), 0.0) << dtype << " v";
    at::Tensor gq = at::randn({N, H, D}, dtype), gk = at::randn({N, Hkv, D}, dtype), gv = at::randn({N, Hkv, D}, dtype);
    torch::autograd::backward({want.q, want.k, want.v},
                           {gq.view({B, T, H, D}), gk.view({B, T, Hkv, D}), gv.view({B, T, Hkv, D})});
    at::Tensor d_qkv = at::empty({N, W}, dtype);
    ac::qkv_rotary<false>(launch, d_qkv, gq, gk, gv, cos, sin);
    EXPECT_LE(rel_diff(d_qkv, qkv.grad().reshape({N, W})), kernel_tolerance(dtype, 1)) << dtype << " rotary backward";

    at::Tensor gate_up = (at::randn({N, 2 * F}, dtype) * 3).requires_grad_(true);
    const at::Tensor y = model::swiglu_fused(gate_up);
    at::Tensor out = at::empty({N, F}, dtype);
    ac::swiglu_forward(launch, gate_up.detach(), out);
    EXPECT_LE(rel_diff(out, y.detach()), kernel_tolerance(dtype, 1)) << dtype << " swiglu";
    at::Tensor dy = at::randn({N, F}, dtype), d_gate_up = at::empty({N, 2 * F}, dtype);
    y.backward(dy);
    ac::swiglu_backward(launch, gate_up.detach(), dy, d_gate_up);
    EXPECT_LE(rel_diff(d_gate_up, gate_up.grad()), kernel_tolerance(dtype, 1)) << dtype << " swiglu backward";
  }
}

}  // namespace
}  // namespace chatmill
