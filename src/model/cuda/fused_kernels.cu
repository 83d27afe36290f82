// The decode step's fused CUDA kernels (model/fused_ops.h says what each computes): the entry points of
// model/cuda/fused_kernels.h, each launching model/cuda/decode_launch.cuh's code on the current stream.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/cuda/decode_launch.cuh"
#include "model/cuda/fused_kernels.h"
#include "model/cuda/launch.cuh"

namespace chatmill::model::fused::cuda {

using cuda_launch::StreamLauncher;

void add_rms_norm(const at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight, double eps,
                  const at::Tensor& out, bool programmatic) {
  const c10::cuda::CUDAGuard guard(residual.device());
  launchers::add_rms_norm(StreamLauncher::current(programmatic), residual, delta, weight, eps, out);
}

void silu_mul(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out, bool programmatic) {
  const c10::cuda::CUDAGuard guard(gate.device());
  launchers::silu_mul(StreamLauncher::current(programmatic), gate, up, out);
}

void rope_append(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                 const at::Tensor& columns, const at::Tensor& inv_freq, const at::Tensor& k_cache,
                 const at::Tensor& v_cache, const at::Tensor& q_out, bool programmatic) {
  const c10::cuda::CUDAGuard guard(q.device());
  launchers::rope_append(StreamLauncher::current(programmatic), q, k, v, positions, columns, inv_freq, k_cache, v_cache,
                         q_out);
}

void skinny_linear(const at::Tensor& x, at::TensorList weights, const at::Tensor& out, LaunchOptions launch) {
  const c10::cuda::CUDAGuard guard(x.device());
  const StreamLauncher launcher = StreamLauncher::current(launch.programmatic);
  if (launch.stage_weights && weights.size() == 1) launchers::staged_linear(launcher, x, weights[0], out);
  else launchers::skinny_linear(launcher, x, weights, out, launch.l2_prefetch);
}

void skinny_qkv_rope(const NormedInput& in, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                     const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                     const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out, LaunchOptions launch) {
  const c10::cuda::CUDAGuard guard(q_out.device());
  launchers::skinny_qkv_rope(StreamLauncher::current(launch.programmatic), in, wq, wk, wv, positions, columns,
                             inv_freq, k_cache, v_cache, q_out, launch.l2_prefetch);
}

void skinny_gate_up_silu(const NormedInput& in, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out,
                         LaunchOptions launch) {
  const c10::cuda::CUDAGuard guard(out.device());
  launchers::skinny_gate_up_silu(StreamLauncher::current(launch.programmatic), in, wg, wu, out, launch.l2_prefetch);
}

void skinny_logits(const NormedInput& in, const at::Tensor& w, const at::Tensor& out, LaunchOptions launch) {
  const c10::cuda::CUDAGuard guard(out.device());
  launchers::skinny_logits(StreamLauncher::current(launch.programmatic), in, w, out, launch.l2_prefetch);
}

void tile_linear(const at::Tensor& x, at::TensorList weights, const at::Tensor& out, LaunchOptions launch) {
  const c10::cuda::CUDAGuard guard(x.device());
  launchers::tile_linear(StreamLauncher::current(launch.programmatic), x, weights, out);
}

namespace {

template <class In>
void qkv_rope_through_tiles(const In& x, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                            const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                            const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out,
                            LaunchOptions launch) {
  const c10::cuda::CUDAGuard guard(q_out.device());
  launchers::tile_qkv_rope(StreamLauncher::current(launch.programmatic), x, wq, wk, wv, positions, columns, inv_freq,
                           k_cache, v_cache, q_out);
}

template <class In>
void gate_up_silu_through_tiles(const In& x, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out,
                                LaunchOptions launch) {
  const c10::cuda::CUDAGuard guard(out.device());
  launchers::tile_gate_up_silu(StreamLauncher::current(launch.programmatic), x, wg, wu, out);
}

}  // namespace

void tile_qkv_rope(const at::Tensor& x, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                   const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                   const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out, LaunchOptions launch) {
  qkv_rope_through_tiles(x, wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, q_out, launch);
}

void tile_qkv_rope(const TileNormedInput& in, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                   const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                   const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out, LaunchOptions launch) {
  qkv_rope_through_tiles(in, wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, q_out, launch);
}

void tile_gate_up_silu(const at::Tensor& x, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out,
                       LaunchOptions launch) {
  gate_up_silu_through_tiles(x, wg, wu, out, launch);
}

void tile_gate_up_silu(const TileNormedInput& in, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out,
                       LaunchOptions launch) {
  gate_up_silu_through_tiles(in, wg, wu, out, launch);
}

void tile_residual_linear(const at::Tensor& residual, const at::Tensor& x, const at::Tensor& w, const at::Tensor& sumsq,
                          LaunchOptions launch) {
  const c10::cuda::CUDAGuard guard(x.device());
  launchers::tile_residual_linear(StreamLauncher::current(launch.programmatic), residual, x, w, sumsq);
}

}  // namespace chatmill::model::fused::cuda
