// Runs this project's CUDA kernels (src/model/cuda/*.cuh) on the CPU, for tests: so that a kernel's index
// math, reductions, shuffles and epilogues are checked against the LibTorch reference here, before a GPU sees
// them. Blocks run one after another, in a shuffled order (seeded per launch); each CUDA thread of a block is a
// fiber (ucontext), switched only at __syncthreads and warp shuffles, so one OS thread runs the block
// deterministically. A cooperative launch (launch_cooperative: kernels that wait for each other's blocks, as
// at a grid barrier) runs every block at once instead, each on an OS thread of its own: `__shared__` is
// thread_local, so each block has its own, and the atomics are real atomics.
//
// It reports what CUDA leaves undefined and a GPU may or may not survive: __syncthreads after some threads of
// the block exited, a shuffle whose warp has exited or diverging lanes, a partial-mask shuffle.
// It cannot see: timing, coalescing, races between blocks (they overlap only in a cooperative launch, and then
// as the OS schedules them), and last-ulp differences of the device math library (host expf and sqrtf stand in).
//
// Include it after the ATen headers and before a kernel header: it defines CUDA's keywords and built-ins as
// macros for the host compiler.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

namespace chatmill::testing::cuda_emu {

// The running fiber's coordinates (per OS thread: a cooperative launch runs its blocks on threads of their own).
extern thread_local uint3 thread_idx, block_idx;
extern thread_local dim3 block_dim, grid_dim;

// __syncthreads: waits until every thread of the block arrives.
void sync_block();
// A full-warp exchange: every lane of the warp offers `bits` and receives those of lane `src` (or its own where
// `src` is out of the warp). Throws for a partial mask.
uint64_t exchange(unsigned mask, uint64_t bits, int src);
// This fiber's lane in its warp.
int lane();

// Runs body() as every thread of every block of the grid. Throws std::runtime_error for undefined behaviour
// (see the file comment) or an exception a thread threw.
void run(dim3 grid, dim3 block, const std::function<void()>& body);

// The same with every block running at once, each on an OS thread of its own (a cooperative launch: blocks may
// wait for one another). If one block fails, the others' spin waits (__nanosleep) throw, and the first error is
// rethrown.
void run_cooperative(dim3 grid, dim3 block, const std::function<void()>& body);

// Inside a spin wait: lets the other blocks' threads run; throws once a block of the launch has failed.
void spin_pause();

// Programmatic dependent launch (model/cuda/pdl.cuh), emulated. While a PreviousKernel is in scope, the next
// launch runs every block at once (as a cooperative launch: at most 64 blocks) and holds each at its
// wait_for_previous_kernel until every block has reached it or exited; then `writes` runs, standing for what the
// kernel before leaves in memory, and the blocks go on. So loads before the wait see the memory before those
// writes, as on a GPU where the kernel before is still running, and a kernel that reads the previous kernel's
// output before its wait reads the stale values. Without a PreviousKernel the wait does nothing.
class PreviousKernel {
 public:
  explicit PreviousKernel(std::function<void()> writes);
  ~PreviousKernel();
  PreviousKernel(const PreviousKernel&) = delete;
  PreviousKernel& operator=(const PreviousKernel&) = delete;
  // Whether a launch has run `writes` (once every block waited or exited).
  bool ran() const { return ran_; }

 private:
  friend void run(dim3, dim3, const std::function<void()>&);
  std::function<void()> writes_;
  bool ran_ = false;
};

// wait_for_previous_kernel on the emulator: the hold above, where a PreviousKernel is in scope. Every thread of the
// block calls it (it synchronises the block).
void programmatic_wait();

// kernel<<<grid, block>>>(args...), on the CPU.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) {
  std::tuple<std::decay_t<Params>...> params(static_cast<Params>(std::forward<Args>(args))...);
  run(grid, block, [&] { std::apply(kernel, params); });
}

// kernel<<<grid, block>>>(args...) as a cooperative launch, on the CPU.
template <typename... Params, typename... Args>
void launch_cooperative(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) {
  std::tuple<std::decay_t<Params>...> params(static_cast<Params>(std::forward<Args>(args))...);
  run_cooperative(grid, block, [&] { std::apply(kernel, params); });
}

// The launcher the kernels' launch code takes (model/cuda/decode_launch.cuh says what a launcher is), on the
// emulator. `resident`: the blocks it says the device holds at once (few, so that the normalised projections'
// blocks each take several items, as on a GPU with more items than resident warps); `max_blocks` cuts every
// grid to at most that many blocks (a kernel's grid-stride loops must then cover the rest).
struct Launcher {
  int64_t resident = 3;
  unsigned max_blocks = 1u << 30;
  template <typename... Params, typename... Args>
  void operator()(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) const {
    grid.x = grid.x < max_blocks ? grid.x : max_blocks;
    launch(kernel, grid, block, std::forward<Args>(args)...);
  }
  // A cooperative launch: grid.x must not exceed `resident`, as a GPU refuses more than it holds at once.
  template <typename... Params, typename... Args>
  void cooperative(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) const {
    if (static_cast<int64_t>(grid.x) * grid.y * grid.z > resident)
      throw std::invalid_argument("cuda_emu: a cooperative launch of more blocks than are resident");
    launch_cooperative(kernel, grid, block, std::forward<Args>(args)...);
  }
  template <typename... Params>
  int64_t resident_blocks(void (*)(Params...), int) const {
    return resident;
  }
};

template <typename T>
T shuffle_as(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>, "shuffles move up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = exchange(mask, bits, src);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

}  // namespace chatmill::testing::cuda_emu

// Kernel headers see that they compile for the emulator (model/cuda/pdl.cuh calls programmatic_wait).
#define CHATMILL_CUDA_EMU 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __launch_bounds__(...)
#define threadIdx ::chatmill::testing::cuda_emu::thread_idx
#define blockIdx ::chatmill::testing::cuda_emu::block_idx
#define blockDim ::chatmill::testing::cuda_emu::block_dim
#define gridDim ::chatmill::testing::cuda_emu::grid_dim

inline void __syncthreads() { ::chatmill::testing::cuda_emu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::chatmill::testing::cuda_emu::exchange(mask, 0, 0); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __nanosleep(unsigned) { ::chatmill::testing::cuda_emu::spin_pause(); }
[[noreturn]] inline void __trap() { throw std::runtime_error("cuda_emu: __trap (the kernel gave up)"); }

template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = ::chatmill::testing::cuda_emu::lane();
  const int src = lane ^ lane_mask;
  return ::chatmill::testing::cuda_emu::shuffle_as(mask, v, src / width == lane / width ? src : lane);
}
template <typename T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  const int lane = ::chatmill::testing::cuda_emu::lane();
  return ::chatmill::testing::cuda_emu::shuffle_as(mask, v, lane / width * width + src_lane % width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = ::chatmill::testing::cuda_emu::lane();
  const int src = lane + static_cast<int>(delta);
  return ::chatmill::testing::cuda_emu::shuffle_as(mask, v, src / width == lane / width ? src : lane);
}

// Plain loads and stores: the cache hints change nothing of the values.
template <typename T>
T __ldg(const T* p) {
  return *p;
}
template <typename T>
T __ldcs(const T* p) {
  return *p;
}
template <typename T>
T __ldcg(const T* p) {
  return *p;
}
template <typename T>
void __stcs(T* p, T v) {
  *p = v;
}

// Real atomics: the blocks of a cooperative launch run on threads of their own.
template <typename T>
T atomicAdd(T* p, T v) {
  static_assert(std::is_integral_v<T>, "cuda_emu emulates integer atomics");
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}

inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
using std::max;
using std::min;
