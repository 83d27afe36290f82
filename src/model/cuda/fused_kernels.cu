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

namespace chatmill::model::fused::cuda {

namespace {

using cuda_math::rnd;
using cuda_math::rotate_pair;

__device__ __forceinline__ float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// Sum over the block; every thread gets the total. blockDim.x is a multiple of 32, at most 1024.
__device__ float block_sum(float x) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = warp_sum(x);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  x = lane < warps ? partial[lane] : 0.f;
  return warp_sum(x);
}

// ---- residual add + RMSNorm: one block per row ------------------------------------------------------------
template <typename T>
__global__ void add_rms_norm_kernel(T* __restrict__ residual, const T* __restrict__ delta, int64_t delta_stride,
                                    const T* __restrict__ w, T* __restrict__ out, int64_t C, float eps) {
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
  const int64_t row = blockIdx.y;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < F; i += gridDim.x * blockDim.x) {
    const float g = static_cast<float>(gate[row * gate_stride + i]);
    const float act = cuda_math::silu<T>(g);
    out[row * F + i] = static_cast<T>(act * static_cast<float>(up[row * up_stride + i]));
  }
}

// ---- rotary on q and k, k/v into the cache: one block per row ----------------------------------------------
// Pairs (j, j + D/2) rotate by angle positions[b] * inv_freq[j]: HF's rotate_half with cos/sin tables in T.
template <typename T>
__global__ void rope_append_kernel(const T* __restrict__ q, int64_t q_stride, const T* __restrict__ k, int64_t k_stride,
                                   const T* __restrict__ v, int64_t v_stride, const int64_t* __restrict__ positions,
                                   const int64_t* __restrict__ columns, const float* __restrict__ inv_freq,
                                   T* __restrict__ k_cache, T* __restrict__ v_cache, T* __restrict__ q_out, int H,
                                   int Hkv, int64_t S, int D) {
  const int b = blockIdx.x, half = D / 2;
  const float pos = static_cast<float>(positions[b]);
  const int64_t col = columns[b];
  const int q_pairs = H * half, k_pairs = Hkv * half, v_items = Hkv * D;
  for (int i = threadIdx.x; i < q_pairs + k_pairs + v_items; i += blockDim.x) {
    if (i < q_pairs + k_pairs) {
      const bool is_q = i < q_pairs;
      const int p = is_q ? i : i - q_pairs;
      const int head = p / half, j = p % half;
      const float angle = pos * inv_freq[j];
      const float c = rnd<T>(cosf(angle)), s = rnd<T>(sinf(angle));
      const T* src = is_q ? q + b * q_stride : k + b * k_stride;
      float y1, y2;
      rotate_pair<T>(static_cast<float>(src[head * D + j]), static_cast<float>(src[head * D + j + half]), c, s, c, s, y1, y2);
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

// ---- decode attention: split over columns, then combined ---------------------------------------------------
// Block (b*H + h, split) takes the groups of kWarps columns numbered split, split + splits, ... below lengths[b],
// one column per warp: interleaved, so every split has work at any length (the split count follows the cache
// capacity, fixed for a CUDA graph, not the length). A lane holds `per_lane` consecutive elements of the head (a
// warp reads whole rows); online softmax in float32. The block writes its unnormalised sum and (max,
// denominator) for the combine kernel, which does not depend on which columns a split took.
constexpr int kWarps = 4;
constexpr int kMaxPerLane = 8;  // head dim up to 256

template <typename T>
__global__ void decode_attention_split_kernel(const T* __restrict__ q, const T* __restrict__ k_cache,
                                              const T* __restrict__ v_cache, const int64_t* __restrict__ lengths,
                                              float* __restrict__ part_acc, float* __restrict__ part_ml, int H,
                                              int Hkv, int64_t S, int D, float scale) {
  __shared__ float s_acc[kWarps][kMaxPerLane * 32];
  __shared__ float s_m[kWarps], s_l[kWarps];
  const int bh = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
  const int b = bh / H, h = bh % H, kvh = h / (H / Hkv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int per_lane = (D + 31) / 32;
  const int64_t len = min(lengths[b], S);
  const int64_t step = static_cast<int64_t>(splits) * kWarps;

  float qv[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e) {
    const int d = lane * per_lane + e;
    qv[e] = (e < per_lane && d < D) ? static_cast<float>(q[static_cast<int64_t>(bh) * D + d]) * scale : 0.f;
    acc[e] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  const int64_t head_base = (static_cast<int64_t>(b) * Hkv + kvh) * S * D;
  for (int64_t s = static_cast<int64_t>(split) * kWarps + warp; s < len; s += step) {
    const T* kr = k_cache + head_base + s * D;
    const T* vr = v_cache + head_base + s * D;
    float dot = 0.f;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int d = lane * per_lane + e;
      if (e < per_lane && d < D) dot += qv[e] * static_cast<float>(kr[d]);
    }
    dot = warp_sum(dot);
    const float m_new = fmaxf(m, dot);
    const float corr = expf(m - m_new);  // 0 on the first column (m = -inf)
    const float p = expf(dot - m_new);
    l = l * corr + p;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int d = lane * per_lane + e;
      if (e < per_lane && d < D) acc[e] = acc[e] * corr + p * static_cast<float>(vr[d]);
    }
    m = m_new;
  }
  // Combine the warps of this block.
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e)
    if (e < per_lane) s_acc[warp][lane * per_lane + e] = acc[e];
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, s_m[w]);
  const int64_t part = static_cast<int64_t>(bh) * splits + split;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float a = 0.f;
    if (M != -INFINITY)
      for (int w = 0; w < kWarps; ++w)
        if (s_m[w] != -INFINITY) a += s_acc[w][d] * expf(s_m[w] - M);
    part_acc[part * D + d] = a;
  }
  if (threadIdx.x == 0) {
    float L = 0.f;
    if (M != -INFINITY)
      for (int w = 0; w < kWarps; ++w)
        if (s_m[w] != -INFINITY) L += s_l[w] * expf(s_m[w] - M);
    part_ml[part * 2] = M;
    part_ml[part * 2 + 1] = L;
  }
}

template <typename T>
__global__ void decode_attention_combine_kernel(const float* __restrict__ part_acc, const float* __restrict__ part_ml,
                                                T* __restrict__ out, int splits, int D) {
  const int64_t bh = blockIdx.x;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, part_ml[(bh * splits + s) * 2]);
  float L = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float ms = part_ml[(bh * splits + s) * 2];
    if (ms != -INFINITY) L += part_ml[(bh * splits + s) * 2 + 1] * expf(ms - M);
  }
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float a = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float ms = part_ml[(bh * splits + s) * 2];
      if (ms != -INFINITY) a += part_acc[(bh * splits + s) * D + d] * expf(ms - M);
    }
    out[bh * D + d] = static_cast<T>(a / L);
  }
}

// ---- skinny GEMM: out (M, N) = x (M, K) weight^T, M <= 8 ----------------------------------------------------
// One warp per weight row: lanes stream the row in 16-byte chunks (8 values), four chunks in flight, each chunk
// multiplied into all M rows of x (read through L1/L2: every warp shares them). The weight, read exactly once,
// is the whole memory traffic at decode's batch sizes.
constexpr int kSkinnyWarps = 8;

template <typename T, int M>
__global__ void skinny_linear_kernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out, int64_t N,
                                     int64_t K) {
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kSkinnyWarps + threadIdx.x / 32;
  if (n >= N) return;
  const int64_t chunks = K / 8;
  const uint4* wrow = reinterpret_cast<const uint4*>(w + n * K);
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  constexpr int kInFlight = 4;
  for (int64_t c0 = lane; c0 < chunks; c0 += 32 * kInFlight) {
    uint4 wv[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int64_t c = c0 + u * 32;
      wv[u] = c < chunks ? __ldcs(wrow + c) : make_uint4(0, 0, 0, 0);  // streamed: never reused
    }
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
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float total = warp_sum(acc[m]);
    if (lane == 0) out[m * N + n] = static_cast<T>(total);
  }
}

template <typename T, int M>
void launch_skinny(const at::Tensor& x, const at::Tensor& w, const at::Tensor& out, cudaStream_t stream) {
  const int64_t N = w.size(0), K = w.size(1);
  const auto blocks = static_cast<unsigned>((N + kSkinnyWarps - 1) / kSkinnyWarps);
  skinny_linear_kernel<T, M><<<blocks, kSkinnyWarps * 32, 0, stream>>>(x.data_ptr<T>(), w.data_ptr<T>(),
                                                                      out.data_ptr<T>(), N, K);
}

int threads_for(int64_t work) {
  int t = 32;
  while (t < work && t < 1024) t *= 2;
  return t;
}

}  // namespace

void add_rms_norm(const at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight, double eps,
                  const at::Tensor& out) {
  const int64_t N = residual.size(0), C = residual.size(1);
  if (N == 0) return;
  const c10::cuda::CUDAGuard guard(residual.device());  // its device's stream, not device 0's
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, residual.scalar_type(), "add_rms_norm", [&] {
    add_rms_norm_kernel<scalar_t><<<N, std::min(threads_for(C), 512), 0, stream>>>(
        residual.data_ptr<scalar_t>(), delta.defined() ? delta.data_ptr<scalar_t>() : nullptr,
        delta.defined() ? delta.stride(0) : 0, weight.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), C,
        static_cast<float>(eps));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void silu_mul(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out) {
  const int64_t N = gate.size(0), F = gate.size(1);
  if (N == 0 || F == 0) return;
  const int threads = 256;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((F + threads - 1) / threads, 1024)), static_cast<unsigned>(N));
  const c10::cuda::CUDAGuard guard(gate.device());  // its device's stream, not device 0's
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gate.scalar_type(), "silu_mul", [&] {
    silu_mul_kernel<scalar_t><<<grid, threads, 0, stream>>>(gate.data_ptr<scalar_t>(), gate.stride(0),
                                                            up.data_ptr<scalar_t>(), up.stride(0),
                                                            out.data_ptr<scalar_t>(), F);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void rope_append(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                 const at::Tensor& columns, const at::Tensor& inv_freq, const at::Tensor& k_cache,
                 const at::Tensor& v_cache, const at::Tensor& q_out) {
  const int64_t B = q.size(0);
  if (B == 0) return;
  const int D = static_cast<int>(k_cache.size(3)), Hkv = static_cast<int>(k_cache.size(1));
  const int H = static_cast<int>(q.size(1) / D);
  const int64_t S = k_cache.size(2);
  const int64_t work = static_cast<int64_t>(H + Hkv) * (D / 2) + static_cast<int64_t>(Hkv) * D;
  const c10::cuda::CUDAGuard guard(q.device());  // its device's stream, not device 0's
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "rope_append", [&] {
    rope_append_kernel<scalar_t><<<B, threads_for(work), 0, stream>>>(
        q.data_ptr<scalar_t>(), q.stride(0), k.data_ptr<scalar_t>(), k.stride(0), v.data_ptr<scalar_t>(), v.stride(0),
        positions.data_ptr<int64_t>(), columns.data_ptr<int64_t>(), inv_freq.data_ptr<float>(),
        k_cache.data_ptr<scalar_t>(), v_cache.data_ptr<scalar_t>(), q_out.data_ptr<scalar_t>(), H, Hkv, S, D);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                      const at::Tensor& lengths, const at::Tensor& out) {
  const int64_t B = q.size(0), H = q.size(1), D = q.size(2);
  const int64_t Hkv = k_cache.size(1), S = k_cache.size(2);
  if (B == 0) return;
  // Enough blocks to fill the GPU at batch 1 (splits over columns), few partials to combine at large batch.
  // Fixed by (B, H, S) only, so a CUDA graph captured once serves every length.
  const int64_t max_splits = std::max<int64_t>(1, (S + 63) / 64);
  const int64_t splits = std::min(max_splits, std::max<int64_t>(1, (1024 + B * H - 1) / (B * H)));
  at::Tensor part_acc = at::empty({B * H * splits, D}, q.options().dtype(at::kFloat));
  at::Tensor part_ml = at::empty({B * H * splits, 2}, q.options().dtype(at::kFloat));
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  const c10::cuda::CUDAGuard guard(q.device());  // its device's stream, not device 0's
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "decode_attention", [&] {
    decode_attention_split_kernel<scalar_t><<<dim3(B * H, splits), kWarps * 32, 0, stream>>>(
        q.data_ptr<scalar_t>(), k_cache.data_ptr<scalar_t>(), v_cache.data_ptr<scalar_t>(),
        lengths.data_ptr<int64_t>(), part_acc.data_ptr<float>(), part_ml.data_ptr<float>(), static_cast<int>(H),
        static_cast<int>(Hkv), S, static_cast<int>(D), scale);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    decode_attention_combine_kernel<scalar_t><<<B * H, threads_for(D), 0, stream>>>(
        part_acc.data_ptr<float>(), part_ml.data_ptr<float>(), out.data_ptr<scalar_t>(), static_cast<int>(splits),
        static_cast<int>(D));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void skinny_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& out) {
  if (weight.size(0) == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());  // its device's stream, not device 0's
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_REDUCED_FLOATING_TYPES(x.scalar_type(), "skinny_linear", [&] {
    switch (x.size(0)) {
      case 1: launch_skinny<scalar_t, 1>(x, weight, out, stream); break;
      case 2: launch_skinny<scalar_t, 2>(x, weight, out, stream); break;
      case 3: launch_skinny<scalar_t, 3>(x, weight, out, stream); break;
      case 4: launch_skinny<scalar_t, 4>(x, weight, out, stream); break;
      case 5: launch_skinny<scalar_t, 5>(x, weight, out, stream); break;
      case 6: launch_skinny<scalar_t, 6>(x, weight, out, stream); break;
      case 7: launch_skinny<scalar_t, 7>(x, weight, out, stream); break;
      default: launch_skinny<scalar_t, 8>(x, weight, out, stream); break;
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace chatmill::model::fused::cuda
