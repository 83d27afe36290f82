// Host side of the persistent decode step (model/persistent_decode.h): scratch buffers, argument packing, and
// one cooperative launch of model/cuda/persistent_kernels.cuh with as many blocks as the device holds at once.
// Generic over the launcher (model/cuda/decode_launch.cuh says what one is), which must also have
//   L.cooperative(kernel, dim3 grid, dim3 block, args...)   a launch whose blocks are all resident together.
#pragma once
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "model/cuda/decode_launch.cuh"
#include "model/cuda/persistent_kernels.cuh"
#include "model/persistent_decode.h"

namespace chatmill::model::fused::launchers {

static_assert(kernels::kLayerRefsWidth * sizeof(void*) == sizeof(kernels::LayerRefs<at::BFloat16>),
              "a table row is the kernel's LayerRefs");

// Attention's splits in the persistent step: one (row, head, split) per block where the blocks allow, each at
// least 32 columns (one iteration of a block's 8 warps), so that the stage is a single round of blocks. Fixed by
// (M, H, S) and the device: one CUDA graph captured at S serves every length.
inline int64_t persistent_splits(int64_t M, int64_t H, int64_t S, int64_t blocks) {
  return std::max<int64_t>(1, std::min(blocks / (M * H), (S + 31) / 32));
}

template <class L>
void persistent_step(const L& launch, const PersistentStep& s) {
  const int64_t M = s.x.size(0), C = s.x.size(1);
  const auto like = s.x.options();
  at::Tensor other = at::empty({M, C}, like), q = at::empty({M, s.H, s.D}, like);
  at::Tensor attn = at::empty({M, s.H * s.D}, like), o = at::empty({M, C}, like), act = at::empty({M, s.F}, like);
  AT_DISPATCH_REDUCED_FLOATING_TYPES(s.x.scalar_type(), "persistent_step", [&] {
    using T = scalar_t;
    constexpr int64_t kVec = 16 / sizeof(T);
    const int64_t G = s.D / kVec;
    TORCH_INTERNAL_ASSERT((M == 1 || M == 2) && (G == 8 || G == 16), "persistent step: rows ", M, ", head dim ", s.D);
    auto kernel = M == 1 ? (G == 8 ? kernels::persistent_step_kernel<T, 1, 8> : kernels::persistent_step_kernel<T, 1, 16>)
                         : (G == 8 ? kernels::persistent_step_kernel<T, 2, 8> : kernels::persistent_step_kernel<T, 2, 16>);
    if (s.stages != kAllStages) {  // timing stages apart: the 7B shape's bf16 one-row step only
      constexpr bool kBf16 = std::is_same_v<T, at::BFloat16>;
      TORCH_CHECK(kBf16 && M == 1 && G == 16,
                  "persistent step: a stage mask times the one-row bf16 step at head dim 128 only");
      if constexpr (kBf16) kernel = kernels::persistent_step_kernel<T, 1, 16, true>;
    }
    const dim3 block(kernels::kSkinnyWarps * 32);
    const int64_t grid = launch.resident_blocks(kernel, static_cast<int>(block.x));
    TORCH_CHECK(grid >= 1, "the persistent decode step does not fit on this device (0 resident blocks)");
    const int64_t splits = persistent_splits(M, s.H, s.S, grid);
    at::Tensor part_acc = at::empty({M * s.H * splits, s.D}, like.dtype(at::kFloat));
    at::Tensor part_ml = at::empty({M * s.H * splits, 2}, like.dtype(at::kFloat));
    kernels::StepRefs<T> a{};
    a.layers = reinterpret_cast<const kernels::LayerRefs<T>*>(s.table.data_ptr<int64_t>());
    a.num_layers = static_cast<int>(s.table.size(0));
    a.x = s.x.data_ptr<T>();
    a.other = other.data_ptr<T>();
    a.delta = s.delta.data_ptr<T>();
    a.q = q.data_ptr<T>();
    a.attn = attn.data_ptr<T>();
    a.o = o.data_ptr<T>();
    a.act = act.data_ptr<T>();
    a.positions = s.positions.data_ptr<int64_t>();
    a.columns = s.columns.data_ptr<int64_t>();
    a.lengths = s.lengths.data_ptr<int64_t>();
    a.inv_freq = s.inv_freq.data_ptr<float>();
    a.part_acc = part_acc.data_ptr<float>();
    a.part_ml = part_ml.data_ptr<float>();
    a.counters = s.counters.data_ptr<int>();
    a.barrier = reinterpret_cast<unsigned*>(s.barrier.data_ptr<int>());
    a.C = C;
    a.F = s.F;
    a.S = s.S;
    a.H = static_cast<int>(s.H);
    a.Hkv = static_cast<int>(s.Hkv);
    a.splits = static_cast<int>(splits);
    a.eps = static_cast<float>(s.eps);
    a.scale = 1.f / std::sqrt(static_cast<float>(s.D));
    a.l2_lines = s.l2_prefetch ? kernels::kL2PrefetchLines / 2 : 0;  // as the folded step's two-row projections
    a.o_prefetch = s.o_prefetch;
    a.stages = s.stages;
    launch.cooperative(kernel, dim3(static_cast<unsigned>(grid)), block, a);
  });
}

}  // namespace chatmill::model::fused::launchers
