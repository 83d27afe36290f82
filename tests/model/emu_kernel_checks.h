// What the emulator's kernel tests (kernels_emu_test.cpp, tile_kernels_emu_test.cpp) share: the reference switch,
// the dtypes the 16-bit kernels take, the comparisons of a GEMM and of a q/k/v projection with their references,
// and the small model and caches of the whole-step tests. Plain ATen and GoogleTest: include it before
// tests/common/cuda_emu.h.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/test_env.h"
#include "model/config.h"
#include "model/fused_ops.h"
#include "model/kv_cache.h"

namespace chatmill::testing {

inline const model::fused::ForceReference kRef{true};
inline const std::vector<at::ScalarType> kHalfTypes = {at::kBFloat16, at::kHalf};  // the GEMM kernels'

// gemm(x, weights, out) for 1 to 3 weights against at::linear of each: one weight at each (N, K) and M, then
// q, k, v in one launch at M = qkv_rows.
template <class Gemm>
inline void expect_gemm_equals_linear(const Gemm& gemm, at::ScalarType dtype,
                               const std::vector<std::pair<int64_t, int64_t>>& shapes, const std::vector<int64_t>& rows,
                               int64_t qkv_rows, const std::string& what) {
  for (auto [N, K] : shapes)
    for (int64_t M : rows) {
      at::Tensor x = at::randn({M, K}, dtype), w = at::randn({N, K}, dtype) * 0.05, out = at::empty({M, N}, dtype);
      gemm(x, std::vector<at::Tensor>{w}, out);
      EXPECT_LE(rel_diff(out, at::linear(x, w)), kernel_tolerance(dtype, 2))
          << what << " " << dtype << " M " << M << " N " << N << " K " << K;
    }
  const int64_t K = 96;
  std::vector<at::Tensor> ws = {at::randn({24, K}, dtype), at::randn({8, K}, dtype), at::randn({8, K}, dtype)};
  at::Tensor x = at::randn({qkv_rows, K}, dtype), out = at::empty({qkv_rows, 40}, dtype);
  gemm(x, ws, out);
  for (int64_t i = 0, col = 0; i < 3; col += ws[i].size(0), ++i)
    EXPECT_LE(rel_diff(out.narrow(1, col, ws[i].size(0)), at::linear(x, ws[i])), kernel_tolerance(dtype, 2))
        << what << " " << dtype << " part " << i;
}

// A q/k/v projection's rotated q and cache writes against the reference's, within two steps of the dtype.
inline void expect_qkv_near(const at::Tensor& q, const at::Tensor& q_ref, const at::Tensor& kc, const at::Tensor& kc_ref,
                     const at::Tensor& vc, const at::Tensor& vc_ref, at::ScalarType dtype, const std::string& where) {
  EXPECT_LE(rel_diff(q, q_ref), kernel_tolerance(dtype, 2)) << where << ": q";
  EXPECT_LE(rel_diff(kc, kc_ref), kernel_tolerance(dtype, 2)) << where << ": k cache";
  EXPECT_LE(rel_diff(vc, vc_ref), kernel_tolerance(dtype, 2)) << where << ": v cache";
}

// The whole-step tests' Llama: 2 layers of hidden H * D, an intermediate size that is no multiple of 16 (partial
// tiles), a rope_theta and eps other than the defaults (a kernel that ignores them would show).
inline model::LlamaConfig emulated_step_config(int64_t H, int64_t Hkv, int64_t D) {
  model::LlamaConfig cfg = model::llama2_debug();
  cfg.hidden_size = H * D;
  cfg.num_heads = H;
  cfg.num_kv_heads = Hkv;
  cfg.intermediate_size = 200;
  cfg.num_layers = 2;
  cfg.rope_theta = 50000;
  cfg.rms_norm_eps = 1e-6;
  return cfg;
}

// A cache of M rows and S columns filled with normal values (from the current seed), and a copy of it for the
// reference step.
inline std::pair<model::KVCache, model::KVCache> random_cache_and_copy(const model::LlamaConfig& cfg, int64_t M,
                                                                       int64_t S, at::ScalarType dtype) {
  model::KVCache cache = model::KVCache::allocate(cfg, M, S, dtype, at::kCPU), ref;
  for (size_t l = 0; l < cache.k.size(); ++l) {
    cache.k[l].normal_();
    cache.v[l].normal_();
    ref.k.push_back(cache.k[l].clone());
    ref.v.push_back(cache.v[l].clone());
  }
  return {std::move(cache), std::move(ref)};
}

// Every layer's k and v cache against the reference step's, within two steps of the dtype.
inline void expect_caches_near(const model::KVCache& cache, const model::KVCache& ref, at::ScalarType dtype,
                               const std::string& where) {
  for (size_t l = 0; l < cache.k.size(); ++l) {
    EXPECT_LE(rel_diff(cache.k[l], ref.k[l]), kernel_tolerance(dtype, 2)) << where << " layer " << l;
    EXPECT_LE(rel_diff(cache.v[l], ref.v[l]), kernel_tolerance(dtype, 2)) << where << " layer " << l;
  }
}

}  // namespace chatmill::testing
