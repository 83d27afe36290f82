// Checks and dispatch for model/step_advance.h: the CUDA kernel where built, LibTorch ops otherwise.
#include "model/step_advance.h"

#include <ATen/ATen.h>

#include "common/error.h"
#ifdef CHATMILL_CUDA
#include "model/cuda/fused_kernels.h"
#endif

namespace chatmill::model {

at::Tensor advance_ring(int64_t B, at::Device device) {
  CHATMILL_CHECK(B >= 1, "advance_ring: B must be at least 1, got ", B);
  return at::zeros({2, B}, at::TensorOptions().dtype(at::kLong).pinned_memory(device.is_cuda()));
}

void advance_greedy(const at::Tensor& logits, const at::Tensor& state, const at::Tensor& ring,
                    fused::ForceReference ref) {
  CHATMILL_CHECK(state.dim() == 2 && state.size(0) == 4 && state.scalar_type() == at::kLong && state.is_contiguous(),
                 "advance_greedy: the state must be a contiguous (4, B) int64 tensor (ids, columns, lengths, advance), "
                 "got ", state.sizes(), " ", state.scalar_type());
  const int64_t B = state.size(1);
  CHATMILL_CHECK(logits.dim() == 2 && logits.size(0) >= 1 && logits.size(0) <= B && logits.size(1) >= 1 &&
                     logits.scalar_type() == at::kFloat &&
                     logits.stride(1) == 1 && logits.device() == state.device(),
                 "advance_greedy: logits must be (n, V) float32 with 1 <= n <= ", B, ", V >= 1 and contiguous rows, on ",
                 state.device(), "; got ", logits.sizes(), " ", logits.scalar_type(), " on ", logits.device());
  CHATMILL_CHECK(ring.dim() == 2 && ring.size(0) == 2 && ring.size(1) == B && ring.scalar_type() == at::kLong &&
                     ring.is_contiguous() && ring.device().is_cpu() && (!state.is_cuda() || ring.is_pinned()),
                 "advance_greedy: the ring must be advance_ring(", B, ", ", state.device(), "): (2, ", B,
                 ") int64 host memory, pinned for a CUDA state; got ", ring.sizes(), " ", ring.scalar_type(), " on ",
                 ring.device());
  const int64_t n = logits.size(0);
#ifdef CHATMILL_CUDA
  if (fused::use_kernel(state, ref)) {
    CHATMILL_CHECK(logits.stride(0) == logits.size(1), "advance_greedy: the kernel reads logits rows V apart, got stride ",
                   logits.stride(0), " for V = ", logits.size(1));
    fused::cuda::advance_greedy(logits, state, ring);
    return;
  }
#endif
  (void)ref;
  const at::Tensor ids = logits.argmax(-1);  // (n)
  const at::Tensor columns = state[1].narrow(0, 0, n);
  const at::Tensor moving = state[3].narrow(0, 0, n).ne(0).cpu();  // (n) bool: rows whose ids reach the ring
  ring.index_put_({columns.remainder(2).cpu().masked_select(moving), at::arange(n, ring.options()).masked_select(moving)},
                  ids.cpu().masked_select(moving));
  state[0].narrow(0, 0, n).copy_(ids);
  state.narrow(0, 1, 2).narrow(1, 0, n).add_(state[3].narrow(0, 0, n));
}

}  // namespace chatmill::model
