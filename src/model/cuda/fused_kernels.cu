// The decode step's fused CUDA kernels (model/fused_ops.h says what each computes). Each is one pass over
// memory, accumulating in float32 and rounding to the activations' dtype T exactly where HF's eager ops do,
// so that bf16 results differ from LibTorch's only by reduction order.
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cmath>

#include "model/cuda/device_math.cuh"
#include "model/cuda/fused_kernels.h"
#include "model/cuda/launch.cuh"
#include "model/cuda/reduce.cuh"

namespace chatmill::model::fused::cuda {

namespace {

using cuda_math::rnd;
using cuda_math::rotate_pair;
using cuda_math::block_sum;
using cuda_math::threads_for;
using cuda_math::warp_sum;
using cuda_launch::allow_next_kernel;
using cuda_launch::launch;
using cuda_launch::wait_for_previous_kernel;

// ---- residual add + RMSNorm: one block per row ------------------------------------------------------------
template <typename T>
__global__ void add_rms_norm_kernel(T* __restrict__ residual, const T* __restrict__ delta, int64_t delta_stride,
                                    const T* __restrict__ w, T* __restrict__ out, int64_t C, float eps) {
  wait_for_previous_kernel();
  allow_next_kernel();
  T* r = residual + blockIdx.x * C;
  const T* d = delta ? delta + blockIdx.x * delta_stride : nullptr;
  T* o = out + blockIdx.x * C;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
    float h = static_cast<float>(r[i]);
    if (d) {
      h = rnd<T>(h + static_cast<float>(d[i]));  // HF: residual + hidden, stored in T
      r[i] = static_cast<T>(h);
    }
    ss += h * h;
  }
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(C) + eps);
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {  // each thread rereads what it wrote itself
    const float h = static_cast<float>(r[i]);
    o[i] = static_cast<T>(static_cast<float>(w[i]) * rnd<T>(h * inv));  // normalised in f32, cast, scaled in T
  }
}

// ---- SwiGLU activation: silu(gate) * up -------------------------------------------------------------------
template <typename T>
__global__ void silu_mul_kernel(const T* __restrict__ gate, int64_t gate_stride, const T* __restrict__ up,
                                int64_t up_stride, T* __restrict__ out, int64_t F) {
  wait_for_previous_kernel();
  allow_next_kernel();
  const int64_t row = blockIdx.y;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < F; i += gridDim.x * blockDim.x) {
    const float g = static_cast<float>(gate[row * gate_stride + i]);
    const float act = cuda_math::silu<T>(g);
    out[row * F + i] = static_cast<T>(act * static_cast<float>(up[row * up_stride + i]));
  }
}

// ---- rotary on q and k, k/v into the cache: blocks (row, range of items) ----------------------------------
// One thread per rotated pair or copied v element: a batch-1 step spreads over many SMs, not one block.
// Pairs (j, j + D/2) rotate by angle positions[b] * inv_freq[j]: HF's rotate_half with cos/sin tables in T.
template <typename T>
__global__ void rope_append_kernel(const T* __restrict__ q, int64_t q_stride, const T* __restrict__ k, int64_t k_stride,
                                   const T* __restrict__ v, int64_t v_stride, const int64_t* __restrict__ positions,
                                   const int64_t* __restrict__ columns, const float* __restrict__ inv_freq,
                                   T* __restrict__ k_cache, T* __restrict__ v_cache, T* __restrict__ q_out, int H,
                                   int Hkv, int64_t S, int D) {
  wait_for_previous_kernel();
  allow_next_kernel();
  const int b = blockIdx.x, half = D / 2;
  const float pos = static_cast<float>(positions[b]);
  const int64_t col = columns[b];
  const int q_pairs = H * half, k_pairs = Hkv * half, v_items = Hkv * D;
  for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < q_pairs + k_pairs + v_items; i += gridDim.y * blockDim.x) {
    if (i < q_pairs + k_pairs) {
      const bool is_q = i < q_pairs;
      const int p = is_q ? i : i - q_pairs;
      const int head = p / half, j = p % half;
      const float angle = pos * inv_freq[j];
      const float c = rnd<T>(cosf(angle)), s = rnd<T>(sinf(angle));
      const T* src = is_q ? q + b * q_stride : k + b * k_stride;
      float y1, y2;
      rotate_pair<T>(static_cast<float>(src[head * D + j]), static_cast<float>(src[head * D + j + half]), c, s, c, s,
                     y1, y2);
      T* dst = is_q ? q_out + (static_cast<int64_t>(b) * H + head) * D
                    : k_cache + ((static_cast<int64_t>(b) * Hkv + head) * S + col) * D;
      dst[j] = static_cast<T>(y1);
      dst[j + half] = static_cast<T>(y2);
    } else {
      const int p = i - q_pairs - k_pairs, head = p / D, d = p % D;
      v_cache[((static_cast<int64_t>(b) * Hkv + head) * S + col) * D + d] = v[b * v_stride + p];
    }
  }
}

// ---- skinny GEMM: out (M, N) = x (M, K) [w0; w1; w2]^T, M <= 2 --------------------------------------------
// One warp per weight row: lanes stream the row in 16-byte chunks (8 values), four chunks in flight, each chunk
// multiplied into all M rows of x (read through L1/L2: every warp shares them). The weight, read exactly once,
// is the whole memory traffic at decode's batch sizes. Up to three weights that share x (q, k, v; gate, up) are
// one launch, their outputs side by side in out's columns: fewer launches and tails in a step.
constexpr int kSkinnyWarps = 8;
constexpr int kMaxParts = 3;

template <typename T>
struct SkinnyParts {
  const T* w[kMaxParts];
  int64_t end[kMaxParts];  // end[i]: rows of parts 0..i together; end[count - 1] = N
};

template <typename T, int M>
__global__ void skinny_linear_kernel(const T* __restrict__ x, SkinnyParts<T> parts, T* __restrict__ out, int64_t N,
                                     int64_t K) {
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kSkinnyWarps + threadIdx.x / 32;
  if (n >= N) return;
  // Selects, not parts.w[part]: a dynamic index into the parameter struct would copy it to local memory.
  const bool p0 = n < parts.end[0], p1 = !p0 && n < parts.end[1];
  const T* w = p0 ? parts.w[0] : (p1 ? parts.w[1] : parts.w[2]);
  const int64_t row = p0 ? n : n - (p1 ? parts.end[0] : parts.end[1]);
  const int64_t chunks = K / 8;
  const uint4* wrow = reinterpret_cast<const uint4*>(w + row * K);
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  constexpr int kInFlight = 4;
  // Streamed (never reused). The weights are no earlier kernel's output: the first loads go out before the wait.
  auto load = [&](uint4 (&wv)[kInFlight], int64_t c0) {
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int64_t c = c0 + u * 32;
      wv[u] = c < chunks ? __ldcs(wrow + c) : make_uint4(0, 0, 0, 0);
    }
  };
  uint4 wv[kInFlight];
  load(wv, lane);
  wait_for_previous_kernel();  // x is the previous kernel's output
  allow_next_kernel();
  for (int64_t c0 = lane; c0 < chunks; c0 += 32 * kInFlight) {
    uint4 next[kInFlight];  // the next chunks' loads in flight while these are multiplied
    load(next, c0 + 32 * kInFlight);
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int64_t c = c0 + u * 32;
      if (c >= chunks) break;
      const T* wt = reinterpret_cast<const T*>(&wv[u]);
      float wf[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) wf[e] = static_cast<float>(wt[e]);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + m * K) + c);
        const T* xt = reinterpret_cast<const T*>(&xv);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[m] += wf[e] * static_cast<float>(xt[e]);
      }
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) wv[u] = next[u];
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float total = warp_sum(acc[m]);
    if (lane == 0) out[m * N + n] = static_cast<T>(total);
  }
}

template <typename T, int M>
void launch_skinny(const at::Tensor& x, const SkinnyParts<T>& parts, int64_t N, const at::Tensor& out,
                   cudaStream_t stream, bool programmatic) {
  const int64_t K = x.size(1);
  const auto blocks = static_cast<unsigned>((N + kSkinnyWarps - 1) / kSkinnyWarps);
  launch(skinny_linear_kernel<T, M>, blocks, kSkinnyWarps * 32, stream, programmatic, x.data_ptr<T>(), parts,
         out.data_ptr<T>(), N, K);
}

}  // namespace

void add_rms_norm(const at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight, double eps,
                  const at::Tensor& out, bool programmatic) {
  const int64_t N = residual.size(0), C = residual.size(1);
  if (N == 0) return;
  const c10::cuda::CUDAGuard guard(residual.device());  // its device's stream, not device 0's
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, residual.scalar_type(), "add_rms_norm", [&] {
    const scalar_t* d = delta.defined() ? delta.data_ptr<scalar_t>() : nullptr;
    launch(add_rms_norm_kernel<scalar_t>, static_cast<unsigned>(N), std::min(threads_for(C), 512), stream, programmatic,
           residual.data_ptr<scalar_t>(), d, delta.defined() ? delta.stride(0) : int64_t{0},
           weight.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), C, static_cast<float>(eps));
  });
}

void silu_mul(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out, bool programmatic) {
  const int64_t N = gate.size(0), F = gate.size(1);
  if (N == 0 || F == 0) return;
  const int threads = 256;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((F + threads - 1) / threads, 1024)), static_cast<unsigned>(N));
  const c10::cuda::CUDAGuard guard(gate.device());  // its device's stream, not device 0's
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gate.scalar_type(), "silu_mul", [&] {
    launch(silu_mul_kernel<scalar_t>, grid, threads, stream, programmatic, gate.data_ptr<scalar_t>(), gate.stride(0),
           up.data_ptr<scalar_t>(), up.stride(0), out.data_ptr<scalar_t>(), F);
  });
}

void rope_append(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                 const at::Tensor& columns, const at::Tensor& inv_freq, const at::Tensor& k_cache,
                 const at::Tensor& v_cache, const at::Tensor& q_out, bool programmatic) {
  const int64_t B = q.size(0);
  if (B == 0) return;
  const int D = static_cast<int>(k_cache.size(3)), Hkv = static_cast<int>(k_cache.size(1));
  const int H = static_cast<int>(q.size(1) / D);
  const int64_t S = k_cache.size(2);
  const int64_t work = static_cast<int64_t>(H + Hkv) * (D / 2) + static_cast<int64_t>(Hkv) * D;
  constexpr int kRopeThreads = 256;
  const dim3 grid(static_cast<unsigned>(B), static_cast<unsigned>((work + kRopeThreads - 1) / kRopeThreads));
  const c10::cuda::CUDAGuard guard(q.device());  // its device's stream, not device 0's
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "rope_append", [&] {
    launch(rope_append_kernel<scalar_t>, grid, kRopeThreads, stream, programmatic, q.data_ptr<scalar_t>(), q.stride(0),
           k.data_ptr<scalar_t>(), k.stride(0), v.data_ptr<scalar_t>(), v.stride(0), positions.data_ptr<int64_t>(),
           columns.data_ptr<int64_t>(), inv_freq.data_ptr<float>(), k_cache.data_ptr<scalar_t>(),
           v_cache.data_ptr<scalar_t>(), q_out.data_ptr<scalar_t>(), H, Hkv, S, D);
  });
}

void skinny_linear(const at::Tensor& x, at::TensorList weights, const at::Tensor& out, bool programmatic) {
  TORCH_INTERNAL_ASSERT(!weights.empty() && weights.size() <= kMaxParts, "skinny_linear takes 1 to 3 weights");
  const int64_t N = out.size(1);
  if (N == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());  // its device's stream, not device 0's
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_REDUCED_FLOATING_TYPES(x.scalar_type(), "skinny_linear", [&] {
    SkinnyParts<scalar_t> parts{};
    int64_t end = 0;
    for (size_t i = 0; i < kMaxParts; ++i) {
      const size_t j = std::min(i, weights.size() - 1);  // unused parts repeat the last, empty
      if (i == j) end += weights[i].size(0);
      parts.w[i] = weights[j].data_ptr<scalar_t>();
      parts.end[i] = end;
    }
    TORCH_INTERNAL_ASSERT(end == N, "skinny_linear: out has ", N, " columns for ", end, " weight rows");
    switch (x.size(0)) {
      case 1: launch_skinny<scalar_t, 1>(x, parts, N, out, stream, programmatic); break;
      case 2: launch_skinny<scalar_t, 2>(x, parts, N, out, stream, programmatic); break;
      default: TORCH_INTERNAL_ASSERT(false, "skinny_linear takes 1 or 2 rows, got ", x.size(0));
    }
  });
}

}  // namespace chatmill::model::fused::cuda
