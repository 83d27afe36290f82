// The skinny GEMM of decode's projections (model/fused_ops.h: linear, linear_parts, qkv_rope_append,
// gate_up_silu): out = x W^T for M <= 2 rows of x, where streaming W once is the whole memory traffic.
//
// One warp per work item. An item is one weight row, or (a plan's kRows = 2) a pair of rows whose results the
// plan's epilogue combines (gate and up -> silu(gate) * up; the two halves of a rotary pair -> rotated q or k):
// so the SwiGLU product and the rotary embedding with the cache append need no kernel of their own. Lanes
// stream each row in 16-byte chunks (8 values), four chunks per row in flight, each chunk multiplied into all
// M rows of x. kRows is fixed per plan, so that a one-row plan keeps the registers (and the occupancy) of one row.
//
// A warp's loads run ahead across its items: the last round of one item loads the first chunks of the next, so
// the pipeline does not drain between items. Before waiting for the previous kernel, each warp can also ask L2
// for more of its first item's rows than its registers hold (`l2_lines`), so that DRAM keeps streaming while the
// previous kernel finishes and this one normalises x; off by default, as the step measured slower with it
// (bench/README.md).
//
// x comes from global memory (read through L1/L2: every warp shares it), or, with a NormIn, is computed by
// each block into shared memory as rms_norm(residual + delta): the residual add and the norm of the step then
// need no kernel of their own either. Block 0 also writes residual + delta to a second buffer (the other
// blocks still read the first), which the next normalised projection reads.
//
// Plain device code: compiled by nvcc (fused_kernels.cu) and, in the tests, for the CPU emulator.
// Shape legend: M rows of x, K inner dim, H heads, Hkv kv heads, D head dim, S cache columns, F intermediate.
#pragma once
#include <cstdint>
#include <type_traits>

#include "model/cuda/device_math.cuh"
#include "model/cuda/pdl.cuh"
#include "model/cuda/reduce.cuh"
#include "model/cuda/rms_norm_row.cuh"

namespace chatmill::model::fused::kernels {

constexpr int kSkinnyWarps = 8;   // warps per block
constexpr int kMaxParts = 3;      // weights one plain launch multiplies (q, k, v)
constexpr int kInFlight = 4;      // 16-byte chunks of each row in flight per lane
constexpr int64_t kMaxNormK = 8192;  // widest x a NormIn holds in shared memory (M * K * 2 bytes <= 32 KB)

// x = rms_norm(residual_in + delta) * weight, row by row, rounded as fused::add_rms_norm rounds.
template <typename T>
struct NormIn {
  const T* residual_in = nullptr;  // (M, K)
  const T* delta = nullptr;        // (M, K), rows delta_stride apart; null: the norm of residual_in alone
  int64_t delta_stride = 0;
  const T* weight = nullptr;       // (K)
  T* residual_out = nullptr;       // (M, K): residual_in + delta, written by block 0
  float eps = 0.f;
};

// ---- plans: which weight rows an item multiplies, and where its results go --------------------------------

// out (M, N) = x [w0; w1; w2]^T: the weights' outputs side by side, rounded to T (then widened where Out is
// float32: an LM head's logits as lm_logits gives them, without a copy). One row per item.
template <typename T, typename Out = T>
struct PartsPlan {
  const T* w[kMaxParts];
  int64_t end[kMaxParts];  // end[i]: rows of parts 0..i together; end[kMaxParts - 1] = N
  Out* out;
  int64_t N;

  static constexpr int kRows = 1;
  __host__ __device__ __forceinline__ int64_t items() const { return N; }
  __device__ __forceinline__ void rows(int64_t n, int64_t K, const T*& r0, const T*& r1) const {
    // Selects, not w[part]: a dynamic index into the parameter struct would copy it to local memory.
    const bool p0 = n < end[0], p1 = !p0 && n < end[1];
    const T* base = p0 ? w[0] : (p1 ? w[1] : w[2]);
    r0 = base + (p0 ? n : n - (p1 ? end[0] : end[1])) * K;
    r1 = r0;
  }
  __device__ __forceinline__ void store(int64_t n, int m, float a0, float) const {
    out[m * N + n] = static_cast<Out>(static_cast<T>(a0));
  }
};

// out (M, F) = silu(x gate^T) * (x up^T): item n multiplies row n of gate and of up. Rounds as the unfused
// ops: each projection to T, then silu in float32 stored in T, then the product.
template <typename T>
struct SiluPlan {
  const T* gate;  // (F, K)
  const T* up;    // (F, K)
  T* out;         // (M, F)
  int64_t F;

  static constexpr int kRows = 2;
  __host__ __device__ __forceinline__ int64_t items() const { return F; }
  __device__ __forceinline__ void rows(int64_t n, int64_t K, const T*& r0, const T*& r1) const {
    r0 = gate + n * K;
    r1 = up + n * K;
  }
  __device__ __forceinline__ void store(int64_t n, int m, float a0, float a1) const {
    const float g = cuda_math::rnd<T>(a0), u = cuda_math::rnd<T>(a1);
    out[m * F + n] = static_cast<T>(cuda_math::silu<T>(g) * u);
  }
};

// The q, k, v projections of row m's token, q and k rotated at positions[m] (HF's rotate_half: pair (j, j + D/2)
// by angle position * inv_freq[j]), k and v written into cache column columns[m] of row m. Items: the pairs of
// rows (j, j + D/2) of each head, first the H q heads, then the Hkv k heads, then the Hkv v heads (not rotated).
template <typename T>
struct RopePlan {
  const T* wq;  // (H D, K)
  const T* wk;  // (Hkv D, K)
  const T* wv;  // (Hkv D, K)
  const int64_t* positions;  // (M)
  const int64_t* columns;    // (M)
  const float* inv_freq;     // (D/2)
  T* q_out;    // (M, H, D)
  T* k_cache;  // (M, Hkv, S, D)
  T* v_cache;  // (M, Hkv, S, D)
  int H, Hkv, D;
  int64_t S;

  static constexpr int kRows = 2;
  __host__ __device__ __forceinline__ int64_t items() const { return static_cast<int64_t>(H + 2 * Hkv) * (D / 2); }

  // Item n: pair j of head `head` of q (which 0), k (1) or v (2), i.e. rows head * D + j and + D/2 of its weight.
  struct Pair {
    int which;
    int64_t head, j;
  };
  __device__ __forceinline__ Pair pair(int64_t n) const {
    const int64_t half = D / 2, q_pairs = H * half, k_pairs = Hkv * half;
    const int which = n < q_pairs ? 0 : (n < q_pairs + k_pairs ? 1 : 2);
    const int64_t p = n - (which == 0 ? 0 : (which == 1 ? q_pairs : q_pairs + k_pairs));
    return {which, p / half, p % half};
  }
  __device__ __forceinline__ void rows(int64_t n, int64_t K, const T*& r0, const T*& r1) const {
    const Pair p = pair(n);
    const T* w = p.which == 0 ? wq : (p.which == 1 ? wk : wv);
    r0 = w + (p.head * D + p.j) * K;
    r1 = r0 + D / 2 * K;
  }
  __device__ __forceinline__ void store(int64_t n, int m, float a0, float a1) const {
    const Pair p = pair(n);
    store_pair(p, m, a0, a1, rotation(positions[m], inv_freq[p.j]), columns[m]);
  }

  // What the stores of a skinny GEMM's block share: each row's rotation of each pair j and its cache column,
  // computed once a block into shared memory (fill_table, before the wait) instead of in every item's store,
  // where lane 0 loaded positions, columns and inv_freq after the item's stream (a stall of their latency an
  // item) and then ran sinf and cosf alone while the warp's next loads waited. Head dims up to 2 kMaxHalfHead.
  static constexpr int kMaxHalfHead = 128;
  struct Table {
    float cs[2][kMaxHalfHead][2];  // rows m < M (M <= 2): rnd<T>(cos), rnd<T>(sin) of positions[m] * inv_freq[j]
    int64_t column[2];
  };
  // Every thread of the block calls it (it synchronises the block). Returns t, or null (for all) where the head
  // dim does not fit, and then the stores compute for themselves.
  template <int M>
  __device__ __forceinline__ const Table* fill_table(Table& t) const {
    static_assert(M >= 1 && M <= 2, "the skinny GEMM's rows: 1 or 2");
    const int half = D / 2;
    if (half > kMaxHalfHead) return nullptr;
    for (int i = threadIdx.x; i < M * half; i += blockDim.x) {
      const int m = i / half, j = i % half;
      const Rotation r = rotation(positions[m], inv_freq[j]);
      t.cs[m][j][0] = r.c;
      t.cs[m][j][1] = r.s;
    }
    if (threadIdx.x < M) t.column[threadIdx.x] = columns[threadIdx.x];
    __syncthreads();
    return &t;
  }
  // table: fill_table's, or null to compute here.
  __device__ __forceinline__ void store(int64_t n, int m, float a0, float a1, const Table* table) const {
    if (table == nullptr) return store(n, m, a0, a1);
    const Pair p = pair(n);
    store_pair(p, m, a0, a1, {table->cs[m][p.j][0], table->cs[m][p.j][1]}, table->column[m]);
  }

  // What the store of row m of item n reads from memory, loaded early (the tile GEMM's epilogue, tile_kernels.cuh:
  // EpilogueAhead). Positions and columns are below the cache's columns (< 2^31): their low words (little-endian),
  // one register each.
  struct RowAhead {
    int32_t position = 0, column = 0;
    float inv_freq = 0.f;
  };
  __device__ __forceinline__ RowAhead row_ahead(int64_t n, int m) const {
    const Pair p = pair(n);
    RowAhead a;
    if (p.which != 2) {
      a.inv_freq = cuda_math::load_early(inv_freq + p.j);
      a.position = cuda_math::load_early(reinterpret_cast<const int32_t*>(positions + m));
    }
    if (p.which != 0) a.column = cuda_math::load_early(reinterpret_cast<const int32_t*>(columns + m));
    return a;
  }
  __device__ __forceinline__ void store(int64_t n, int m, float a0, float a1, const RowAhead& a) const {
    // v items loaded no position or inv_freq: their rotation is never used.
    store_pair(pair(n), m, a0, a1, rotation(a.position, a.inv_freq), a.column);
  }

 private:
  struct Rotation {
    float c, s;
  };
  // HF's cos and sin at position * inv_freq, each rounded to T. Only q and k items use it.
  template <typename P>
  __device__ __forceinline__ static Rotation rotation(P position, float freq) {
    const float angle = static_cast<float>(position) * freq;
    return {cuda_math::rnd<T>(cosf(angle)), cuda_math::rnd<T>(sinf(angle))};
  }
  __device__ __forceinline__ void store_pair(const Pair& p, int m, float a0, float a1, Rotation r,
                                             int64_t column) const {
    T* dst = p.which == 0 ? q_out + (m * H + p.head) * D
                          : (p.which == 1 ? k_cache : v_cache) + ((m * Hkv + p.head) * S + column) * D;
    float y1 = a0, y2 = a1;  // v goes into the cache as it is
    if (p.which != 2)
      cuda_math::rotate_pair<T>(cuda_math::rnd<T>(a0), cuda_math::rnd<T>(a1), r.c, r.s, r.c, r.s, y1, y2);
    dst[p.j] = static_cast<T>(y1);
    dst[p.j + D / 2] = static_cast<T>(y2);
  }
};

// Plans whose stores share a block table (RopePlan::Table) declare it; the kernels fill it once a block.
template <typename Plan, typename = void>
struct HasTable : std::false_type {};
template <typename Plan>
struct HasTable<Plan, std::void_t<typename Plan::Table>> : std::true_type {};

// ---- the kernel ----------------------------------------------------------------------------------------

// Asks L2 for the 128-byte line holding p: no registers, no wait (a no-op off the GPU).
__device__ __forceinline__ void prefetch_l2(const void* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#else
  (void)p;
#endif
}

constexpr int64_t kFirstLines = 32 * kInFlight / 8;  // the 128-byte lines of a row a warp's first loads cover
// With an L2 prefetch (LaunchOptions::l2_prefetch), the 128-byte lines beyond those an item asks for, shared
// out over its rows: 6 KB a warp.
constexpr int kL2PrefetchLines = 48;

// Lines [from, min(end, the row's)) of R rows of `chunks` 16-byte chunks into L2, spread over the warp's lanes.
template <int R>
__device__ __forceinline__ void prefetch_lines(const uint4* const (&w)[2], int64_t chunks, int lane, int64_t from,
                                               int64_t end) {
  const int64_t row_lines = (chunks + 7) / 8;  // 8 chunks a line
  if (end > row_lines) end = row_lines;
#pragma unroll
  for (int r = 0; r < R; ++r)
    for (int64_t i = from + lane; i < end; i += 32) prefetch_l2(w[r] + i * 8);
}

// Loads chunks c0, c0 + 32, ... (kInFlight of them) of R rows; zeros past the row's end. Streamed: never reused.
template <int R>
__device__ __forceinline__ void load_chunks(const uint4* const (&w)[2], uint4 (&buf)[2][kInFlight], int64_t c0,
                                            int64_t chunks) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int64_t c = c0 + u * 32;
      buf[r][u] = c < chunks ? __ldcs(w[r] + c) : make_uint4(0, 0, 0, 0);
    }
}

// acc[m][r] += x_m . w_r over the lane's chunks; buf holds the first chunks (c0 = lane), already loaded. The
// lane's last round loads the first chunks of the next item's rows w_next (null: none) into buf instead.
// x: M rows of `chunks` 16-byte chunks, in shared memory when kSharedX (else global, through the read-only path).
template <typename T, int M, int R, bool kSharedX>
__device__ __forceinline__ void dot_rows(const uint4* const (&w)[2], const uint4* const (&w_next)[2],
                                         uint4 (&buf)[2][kInFlight], const uint4* __restrict__ x, int64_t chunks,
                                         int lane, float (&acc)[M][2]) {
  for (int64_t c0 = lane; c0 < chunks; c0 += 32 * kInFlight) {
    uint4 next[2][kInFlight];  // the next chunks' loads in flight while these are multiplied
    if (c0 + 32 * kInFlight < chunks) load_chunks<R>(w, next, c0 + 32 * kInFlight, chunks);
    else if (w_next[0] != nullptr) load_chunks<R>(w_next, next, lane, chunks);
    else load_chunks<R>(w, next, chunks, chunks);  // zeros: the warp's last item ends here
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int64_t c = c0 + u * 32;
      if (c >= chunks) break;
      float wf[2][8];
#pragma unroll
      for (int r = 0; r < R; ++r) cuda_math::unpack16<T>(buf[r][u], wf[r]);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float xf[8];
        cuda_math::unpack16<T>(kSharedX ? x[m * chunks + c] : __ldg(x + m * chunks + c), xf);
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[m][r] += wf[r][e] * xf[e];
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) buf[r][u] = next[r][u];
  }
}

// x = rms_norm(residual_in + delta) into xs (shared memory: M rows of K values), by all threads of the block;
// block 0 also writes residual_out. K % 8 == 0, rows and the weight 16-byte aligned.
template <typename T, int M>
__device__ void normalise_into(const NormIn<T>& in, int64_t K, uint4* xs) {
  const int64_t chunks = K / 8;
  for (int m = 0; m < M; ++m)
    cuda_math::add_rms_norm_row<T>(reinterpret_cast<const uint4*>(in.residual_in + m * K),
                                   in.delta ? reinterpret_cast<const uint4*>(in.delta + m * in.delta_stride) : nullptr,
                                   blockIdx.x == 0 ? reinterpret_cast<uint4*>(in.residual_out + m * K) : nullptr,
                                   xs + m * chunks, reinterpret_cast<const uint4*>(in.weight), chunks, in.eps);
  __syncthreads();
}

// Asks this SM's L1 for the 128-byte line holding p: no registers, no wait (a no-op off the GPU).
__device__ __forceinline__ void prefetch_l1(const void* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("prefetch.global.L1 [%0];" ::"l"(p));
#else
  (void)p;
#endif
}

// The norm weight's lines into L1 before the wait (it is no kernel's output), a line a thread: normalise_into
// reads it after its block reduction, where a round trip to L2 would lengthen the prologue after the wait.
template <typename T>
__device__ __forceinline__ void prefetch_norm_weight(const NormIn<T>& in, int64_t K) {
  const char* w = reinterpret_cast<const char*>(in.weight);
  for (int64_t i = threadIdx.x * 128; i < K * static_cast<int64_t>(sizeof(T)); i += blockDim.x * 128)
    prefetch_l1(w + i);
}

// The same into a shared buffer of the block's own (kMaxNormK values a row). Returns it.
template <typename T, int M>
__device__ const uint4* normalise_into_shared(const NormIn<T>& in, int64_t K) {
  __shared__ uint4 xs[M * kMaxNormK * sizeof(T) / 16];
  normalise_into<T, M>(in, K, xs);
  return xs;
}

// A warp's place in a skinny GEMM: its item n, that item's rows, and their first chunks (loaded, or in flight).
struct SkinnyCursor {
  int64_t n;
  const uint4* w[2];
  uint4 buf[2][kInFlight];
};

// Item n's rows, or nulls past the last item.
template <typename T, typename Plan>
__device__ __forceinline__ void item_rows(const Plan& plan, int64_t n, int64_t K, const uint4* (&w)[2]) {
  w[0] = w[1] = nullptr;
  if (n >= plan.items()) return;
  const T *r0 = nullptr, *r1 = nullptr;
  plan.rows(n, K, r0, r1);
  w[0] = reinterpret_cast<const uint4*>(r0);
  w[1] = reinterpret_cast<const uint4*>(r1);
}

// Starts the warp on item `first`: its first chunks' loads go out (and, with l2_lines, L2 prefetches of more of
// its rows). The weights are no kernel's output: this may run before any wait.
template <typename T, typename Plan>
__device__ __forceinline__ void skinny_begin(const Plan& plan, int64_t K, int64_t first, int l2_lines,
                                             SkinnyCursor& c) {
  const int lane = threadIdx.x % 32;
  c.n = first;
  item_rows<T>(plan, first, K, c.w);
  if (c.w[0] != nullptr) {
    load_chunks<Plan::kRows>(c.w, c.buf, lane, K / 8);
    if (l2_lines > 0) prefetch_lines<Plan::kRows>(c.w, K / 8, lane, kFirstLines, kFirstLines + l2_lines);
  }
}

// The warp's items from c.n on, `stride` apart, against x (M rows of K: in shared memory when kSharedX, else
// global, read through the read-only path). extra: what the plan's store takes besides the results (RopePlan:
// the block's table), if anything.
template <typename T, int M, typename Plan, bool kSharedX, typename... Extra>
__device__ __forceinline__ void skinny_items(const uint4* xs, const Plan& plan, int64_t K, int64_t stride,
                                             SkinnyCursor& c, const Extra&... extra) {
  const int lane = threadIdx.x % 32;
  const int64_t items = plan.items(), chunks = K / 8;
  constexpr int R = Plan::kRows;
  for (; c.n < items; c.n += stride) {
    const uint4* w_next[2];
    item_rows<T>(plan, c.n + stride, K, w_next);
    float acc[M][2];
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = 0.f;
    dot_rows<T, M, R, kSharedX>(c.w, w_next, c.buf, xs, chunks, lane, acc);  // buf: then the next item's first chunks
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float a0 = cuda_math::warp_sum(acc[m][0]);
      const float a1 = R == 2 ? cuda_math::warp_sum(acc[m][1]) : 0.f;
      if (lane == 0) plan.store(c.n, m, a0, a1, extra...);
    }
    c.w[0] = w_next[0];
    c.w[1] = w_next[1];
  }
}

// Bytes [from, from + bytes) at p into L2 in one bulk request (Hopper's copy engine; a no-op elsewhere). p and
// bytes: multiples of 16. One instruction a row where per-line prefetches took a lane's instruction per 128 bytes.
__device__ __forceinline__ void prefetch_l2_bulk(const void* p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#else
  (void)p;
  (void)bytes;
#endif
}

// Every byte of the warp's items of `plan` (first, first + stride, ...) into L2, but for the lines of the first
// item that skinny_begin's loads already cover: for a stage that leaves DRAM idle (decode attention), so that the
// projection after it reads from L2. Lane r asks for row r of an item, in one bulk request.
template <typename T, typename Plan>
__device__ __forceinline__ void prefetch_items(const Plan& plan, int64_t K, int64_t first, int64_t stride) {
  const int lane = threadIdx.x % 32;
  if (lane >= Plan::kRows) return;
  const int64_t row_bytes = K * static_cast<int64_t>(sizeof(T));
  for (int64_t n = first; n < plan.items(); n += stride) {
    const uint4* w[2];
    item_rows<T>(plan, n, K, w);
    const int64_t from = n != first ? 0 : kFirstLines * 128 < row_bytes ? kFirstLines * 128 : row_bytes;
    if (from < row_bytes)
      prefetch_l2_bulk(reinterpret_cast<const char*>(w[lane]) + from, static_cast<uint32_t>(row_bytes - from));
  }
}

// Items n = blockIdx.x * kSkinnyWarps + warp, then every gridDim.x * kSkinnyWarps further on. x: (M, K)
// in global memory, unused when kNorm (then `norm` gives it). l2_lines: lines of each first-item row to
// prefetch into L2 beyond the first loads (0: none).
// A plan's block table (RopePlan's rotations and cache columns) is filled before the wait: the step's positions
// and columns are its inputs, never the kernel before's output, so their loads and the sines and cosines leave
// the prologue after the wait (the norm's) shorter.
template <typename T, int M, typename Plan, bool kNorm>
__global__ void skinny_kernel(const T* __restrict__ x, NormIn<T> norm, Plan plan, int64_t K, int l2_lines) {
  SkinnyCursor c;
  skinny_begin<T>(plan, K, static_cast<int64_t>(blockIdx.x) * kSkinnyWarps + threadIdx.x / 32, l2_lines, c);
  if constexpr (kNorm) prefetch_norm_weight(norm, K);
  // After the wait: x (or its norm), then the items; extra: what the plan's store takes (the table), if anything.
  auto rest = [&](const auto&... extra) {
    cuda_launch::wait_for_previous_kernel();  // x (or the residual and delta) come from the kernels before
    cuda_launch::allow_next_kernel();
    const uint4* xs = reinterpret_cast<const uint4*>(x);
    if constexpr (kNorm) xs = normalise_into_shared<T, M>(norm, K);  // every thread of the block, items or not
    skinny_items<T, M, Plan, kNorm>(xs, plan, K, static_cast<int64_t>(gridDim.x) * kSkinnyWarps, c, extra...);
  };
  if constexpr (HasTable<Plan>::value) {
    __shared__ typename Plan::Table table;
    rest(plan.template fill_table<M>(table));  // filled by every thread of the block, before the wait
  } else {
    rest();
  }
}

}  // namespace chatmill::model::fused::kernels
