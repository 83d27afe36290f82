// The fused decode kernels one by one on a 7B-shaped bf16 decode (CUDA builds only; scripts/gpu_check.sh
// runs it): each kernel against the LibTorch ops it replaces, in the same run, with the bytes it must move
// turned into GB/s against the measured device-to-device copy bandwidth; the fused op also as the decode step
// runs it, back to back in a CUDA graph (no launch costs, each kernel overlapping the one before through PDL).
// Prints a markdown table; --out appends one JSON line per case.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "model/cuda/persistent_kernels.h"
#include "block_gemv.h"
#include "read_streams.h"
#include "model/fused_ops.h"
#include "model/rope.h"

namespace {

// (N, K) of the 7B decode step's weights: q/k/v/o, gate/up, down, the LM head.
const std::vector<std::pair<int64_t, int64_t>> k7BShapes{{4096, 4096}, {11008, 4096}, {4096, 11008}, {32000, 4096}};

using namespace chatmill;
using model::fused::ForceReference;

// Mean seconds per call over `iters` back-to-back calls after warm-up.
double seconds_per_call(const std::function<void()>& f, int iters) {
  for (int i = 0; i < 3; ++i) f();
  c10::cuda::device_synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  c10::cuda::device_synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
}

// Mean seconds per call of `iters` calls captured in one CUDA graph, over 5 replays.
double seconds_per_call_in_graph(const std::function<void()>& f, int iters) {
  const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
  const c10::cuda::CUDAStreamGuard guard(stream);
  f();
  c10::cuda::device_synchronize();
  at::cuda::CUDAGraph graph;
  graph.capture_begin();
  for (int i = 0; i < iters; ++i) f();
  graph.capture_end();
  graph.replay();
  c10::cuda::device_synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < 5; ++r) graph.replay();
  c10::cuda::device_synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / (5.0 * iters);
}

// The persistent step's stages apart (PersistentStep::stages): 8 layers of the 7B shape at one row, bf16, a
// 256-column cache at the decode benchmark's mean length (192), each mask's step in a CUDA graph. Every mask
// keeps all barriers, so a stage's cost is its mask's time less the barriers-only time: what the stage adds
// inside the step, its first loads already in flight at its barrier. The masked kernel spills a little where
// the step's does not; "every stage, masked kernel" against "the step" says what that costs.
void persistent_stages(const at::Device& dev, double copy_bw, std::ofstream& out) {
  namespace mf = model::fused;
  const int64_t L = 8, C = 4096, F = 11008, H = 32, D = 128, S = 256, len = 192;
  auto bf16 = at::TensorOptions().dtype(at::kBFloat16).device(dev);
  auto longs = at::TensorOptions().dtype(at::kLong).device(dev);
  std::vector<at::Tensor> keep;  // the tensors the table points at
  at::Tensor table = at::empty({L, 11}, at::kLong);
  auto rows = table.accessor<int64_t, 2>();
  for (int64_t l = 0; l < L; ++l) {
    const std::vector<at::Tensor> t = {
        at::randn({H * D, C}, bf16) * 0.02, at::randn({H * D, C}, bf16) * 0.02, at::randn({H * D, C}, bf16) * 0.02,
        at::randn({C, H * D}, bf16) * 0.02, at::randn({F, C}, bf16) * 0.02,     at::randn({F, C}, bf16) * 0.02,
        at::randn({C, F}, bf16) * 0.02,     at::ones({C}, bf16),                at::ones({C}, bf16),
        at::randn({1, H, S, D}, bf16),      at::randn({1, H, S, D}, bf16)};
    for (size_t i = 0; i < t.size(); ++i) {
      rows[l][static_cast<int64_t>(i)] = static_cast<int64_t>(reinterpret_cast<uintptr_t>(t[i].data_ptr()));
      keep.push_back(t[i]);
    }
  }
  model::RotaryEmbedding rope(D, 10000, dev);
  mf::PersistentStep s;
  s.table = table.to(dev);
  s.barrier = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(dev));
  s.x = at::randn({1, C}, bf16);
  s.delta = at::zeros({1, C}, bf16);
  s.positions = s.columns = at::full({1}, len - 1, longs);
  s.lengths = at::full({1}, len, longs);
  s.inv_freq = rope.inv_freq();
  s.counters = at::zeros({H}, at::TensorOptions().dtype(at::kInt).device(dev));
  s.H = s.Hkv = H;
  s.D = D;
  s.F = F;
  s.S = S;
  auto time = [&](unsigned stages) {
    s.stages = stages;
    return seconds_per_call_in_graph([&] { mf::cuda::persistent_step(s); }, 20);
  };
  const double t0 = time(0), barriers = 5.0 * L - 1;
  std::cout << "\npersistent step by stage (" << L << " layers of 7B, one row, bf16, length " << len << " of " << S
            << "; " << barriers << " barriers: " << t0 * 1e6 / barriers << " us each with nothing between them)\n\n";
  std::cout << "| stages | bytes a layer | us a step | us a layer beyond the barriers | GB/s | % of copy bandwidth |\n";
  std::cout << "|---|---|---|---|---|---|\n";
  const double qkv = 2.0 * 3 * H * D * C, o = 2.0 * C * H * D, gu = 2.0 * 2 * F * C, down = 2.0 * C * F;
  const double attn = 2.0 * 2 * H * len * D;
  const std::vector<std::tuple<std::string, unsigned, double>> masks = {
      {"none (barriers only)", 0u, 0.0},
      {"q,k,v", mf::kQkvStage, qkv},
      {"attention", mf::kAttentionStage, attn},
      {"o", mf::kOStage, o},
      {"attention + o (o prefetched during attention)", mf::kAttentionStage | mf::kOStage, attn + o},
      {"gate,up", mf::kGateUpStage, gu},
      {"down", mf::kDownStage, down},
      {"every stage, masked kernel", mf::kAllStages | mf::kStagedKernel, qkv + attn + o + gu + down},
      {"the step", mf::kAllStages, qkv + attn + o + gu + down}};
  for (const auto& [name, stages, bytes] : masks) {
    const double t = stages == 0 ? t0 : time(stages), per_layer = (t - t0) / L;
    const double gbs = per_layer > 0 ? bytes / per_layer / 1e9 : 0.0;
    std::cout << "| " << name << " | " << bytes / 1e6 << " MB | " << t * 1e6 << " | " << per_layer * 1e6 << " | "
              << gbs << " | " << 100 * gbs * 1e9 / copy_bw << "% |\n";
    if (out.is_open())
      out << nlohmann::json{{"case", "persistent stages: " + name}, {"stages", stages}, {"layers", L},
                            {"step_s", t}, {"barriers_only_s", t0}, {"bytes_per_layer", bytes}}.dump()
          << "\n";
  }
}

// Read bandwidth by access pattern (bench/read_streams.h), 1 GiB read once a call: what the skinny GEMM's way of
// streaming rows leaves against a sweep of the same bytes, and what bulk copies into shared memory reach. Last in
// the run: a kernel here that fails leaves the rows above intact.
void read_patterns(const at::Device& dev, double copy_bw, std::ofstream& out) {
  at::Tensor buf = at::zeros({int64_t{1} << 30}, at::TensorOptions().dtype(at::kByte).device(dev));
  at::Tensor sink = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(dev));
  std::cout << "\nread bandwidth by pattern (1 GiB, read only)\n\n| pattern | GB/s | % of copy bandwidth |\n|---|---|---|\n";
  for (auto p : {bench::ReadPattern::Sweep, bench::ReadPattern::Rows, bench::ReadPattern::RowsDeep,
                 bench::ReadPattern::RowPairs, bench::ReadPattern::BlockRows, bench::ReadPattern::Bulk}) {
    const double t = seconds_per_call(
        [&] {
          bench::read_once(p, buf.data_ptr(), static_cast<size_t>(buf.nbytes()), sink.data_ptr<float>(),
                           at::cuda::getCurrentCUDAStream());
        },
        10);
    const double gbs = static_cast<double>(buf.nbytes()) / t / 1e9;
    std::cout << "| " << bench::describe(p) << " | " << gbs << " | " << 100 * gbs * 1e9 / copy_bw << "% |\n";
    if (out.is_open())
      out << nlohmann::json{{"case", std::string("read pattern: ") + bench::describe(p)}, {"seconds", t},
                            {"bytes", buf.nbytes()}, {"copy_bandwidth", copy_bw}}.dump()
          << "\n";
  }
}

// The skinny GEMM against a GEMV in block order (bench/block_gemv.h), one row, bf16, on the 7B shapes, each in a
// CUDA graph of 50 calls that cycles through copies of the weight worth over 256 MB, so that L2 does not serve
// them (as in a real step, where the other layers' weights pass through it in between).
void block_order_gemv(const at::Device& dev, double copy_bw, std::ofstream& out) {
  auto bf16 = at::TensorOptions().dtype(at::kBFloat16).device(dev);
  std::cout << "\none-row GEMV, skinny (a warp a row) against block order (a block's warps 8 rows together), "
               "weights cycled past L2\n\n| shape | copies | skinny us | skinny % of copy | block us | block % of copy "
               "| block vs skinny | block rel. error vs at::linear |\n|---|---|---|---|---|---|---|---|\n";
  for (auto [N, K] : k7BShapes) {
    const double bytes = 2.0 * N * K;
    const int copies = std::max(2, static_cast<int>(std::ceil(256e6 / bytes)));
    std::vector<at::Tensor> ws;
    for (int i = 0; i < copies; ++i) ws.push_back(at::randn({N, K}, bf16) * 0.02);
    at::Tensor x = at::randn({1, K}, bf16), y = at::empty({N}, bf16);
    int next = 0;
    const double ts = seconds_per_call_in_graph([&] { model::fused::linear(x, ws[next++ % copies]); }, 50);
    next = 0;
    const double tb = seconds_per_call_in_graph(
        [&] {
          bench::block_gemv_bf16(ws[next++ % copies].data_ptr(), x.data_ptr(), y.data_ptr(), N, K,
                                 at::cuda::getCurrentCUDAStream());
        },
        50);
    bench::block_gemv_bf16(ws[0].data_ptr(), x.data_ptr(), y.data_ptr(), N, K, at::cuda::getCurrentCUDAStream());
    const at::Tensor want = at::linear(x, ws[0]).reshape({N}).to(at::kFloat);
    const double err = ((y.to(at::kFloat) - want).abs().max() / want.abs().max()).item<double>();
    const std::string shape = std::to_string(N) + "x" + std::to_string(K);
    std::cout << "| " << shape << " | " << copies << " | " << ts * 1e6 << " | " << 100 * bytes / ts / copy_bw << "% | "
              << tb * 1e6 << " | " << 100 * bytes / tb / copy_bw << "% | " << ts / tb << "x | " << err << " |\n";
    if (out.is_open())
      out << nlohmann::json{{"case", "gemv order " + shape}, {"bytes", bytes}, {"skinny_in_graph_s", ts},
                            {"block_in_graph_s", tb}, {"block_rel_error", err}, {"copy_bandwidth", copy_bw}}.dump()
          << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = argc > 2 && std::string(argv[1]) == "--out" ? argv[2] : "";
  if (!at::hasCUDA()) {
    std::cerr << "bench_kernels needs a CUDA device\n";
    return 1;
  }
  c10::InferenceMode inference;
  const at::Device dev("cuda:0");
  auto bf16 = at::TensorOptions().dtype(at::kBFloat16).device(dev);
  auto longs = at::TensorOptions().dtype(at::kLong).device(dev);
  std::ofstream out;
  if (!out_path.empty()) out.open(out_path, std::ios::app);

  at::Tensor big = at::empty({1 << 30}, bf16), big2 = at::empty_like(big);
  const double copy_bw = 2.0 * big.nbytes() / seconds_per_call([&] { big2.copy_(big); }, 20);
  big = big2 = at::Tensor();
  std::cout << "device-to-device copy: " << copy_bw / 1e9 << " GB/s (read + write)\n\n";
  std::cout << "| case | bytes moved | fused us | LibTorch us | speed-up | fused GB/s | % of copy bandwidth | fused us "
               "in a graph | % of copy bandwidth in a graph |\n";
  std::cout << "|---|---|---|---|---|---|---|---|---|\n";
  auto row = [&](const std::string& name, double bytes, const std::function<void()>& fused,
                 const std::function<void()>& torch_ops, int iters) {
    const double tf = seconds_per_call(fused, iters), tt = seconds_per_call(torch_ops, iters);
    const double tg = seconds_per_call_in_graph(fused, std::min(iters, 50));
    const double gbs = bytes / tf / 1e9;
    std::cout << "| " << name << " | " << bytes / 1e6 << " MB | " << tf * 1e6 << " | " << tt * 1e6 << " | " << tt / tf
              << "x | " << gbs << " | " << 100 * bytes / tf / copy_bw << "% | " << tg * 1e6 << " | "
              << 100 * bytes / tg / copy_bw << "% |\n";
    if (out.is_open())
      out << nlohmann::json{{"case", name}, {"bytes", bytes}, {"fused_s", tf}, {"libtorch_s", tt},
                            {"fused_in_graph_s", tg}, {"copy_bandwidth", copy_bw}}.dump()
          << "\n";
  };

  // Projections of a 7B layer and the LM head, at decode's row counts.
  // Rows 1 and 2 (fused::kSkinnyRows, chosen from this table when it ran to 8 rows; bench/README.md).
  for (int64_t M : {1, 2}) {
    for (auto [N, K] : k7BShapes) {
      at::Tensor w = at::randn({N, K}, bf16), x = at::randn({M, K}, bf16);
      row("linear M " + std::to_string(M) + " " + std::to_string(N) + "x" + std::to_string(K),
          2.0 * (N * K + M * K + M * N), [&] { model::fused::linear(x, w); }, [&] { at::linear(x, w); }, 200);
    }
  }
  // Projections that share their input in one launch (fused::linear_parts) against one at::linear each.
  for (int64_t M : {1, 2}) {
    for (const auto& [name, Ns] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
             {"q,k,v", {4096, 4096, 4096}}, {"gate,up", {11008, 11008}}}) {
      std::vector<at::Tensor> ws;
      int64_t rows = 0;
      for (int64_t N : Ns) {
        ws.push_back(at::randn({N, 4096}, bf16));
        rows += N;
      }
      at::Tensor x = at::randn({M, 4096}, bf16);
      row("linear_parts M " + std::to_string(M) + " " + name, 2.0 * (rows * 4096 + M * 4096 + M * rows),
          [&] { model::fused::linear_parts(x, ws); },
          [&] {
            for (const at::Tensor& w : ws) at::linear(x, w);
          },
          200);
    }
  }
  // The tile GEMM (3 to 16 rows, LaunchOptions::tile_gemm) against cuBLAS at 8 and 16 rows: the projections and
  // LM head, then with its epilogues against the kernels they replace (cuBLAS + rope_append, cuBLAS + silu_mul).
  model::fused::LaunchOptions tiled;
  tiled.tile_gemm = true;
  tiled.tile_min_rows = 1;
  // At one row against the skinny GEMM (FusedStepOptions::tile_min_rows 1): block-ordered reads (a block's 8
  // warps over 16 rows, 512 bytes of each a round) against row-ordered ones (a warp an 8 KB row).
  for (auto [N, K] : k7BShapes) {
    at::Tensor w = at::randn({N, K}, bf16), x = at::randn({1, K}, bf16);
    row("tile GEMM vs skinny GEMM, M 1 " + std::to_string(N) + "x" + std::to_string(K), 2.0 * (N * K + K + N),
        [&] { model::fused::linear(x, w, {}, tiled); }, [&] { model::fused::linear(x, w); }, 200);
  }
  for (int64_t M : {8, 16}) {
    for (auto [N, K] : k7BShapes) {
      at::Tensor w = at::randn({N, K}, bf16), x = at::randn({M, K}, bf16);
      row("tile GEMM vs cuBLAS, M " + std::to_string(M) + " " + std::to_string(N) + "x" + std::to_string(K),
          2.0 * (N * K + M * K + M * N), [&] { model::fused::linear(x, w, {}, tiled); }, [&] { at::linear(x, w); }, 200);
    }
    const int64_t C = 4096, F = 11008, H = 32, D = 128, S = 256;
    at::Tensor x = at::randn({M, C}, bf16);
    std::vector<at::Tensor> qkv_w, gu_w;
    for (int i = 0; i < 3; ++i) qkv_w.push_back(at::randn({H * D, C}, bf16) * 0.02);
    for (int i = 0; i < 2; ++i) gu_w.push_back(at::randn({F, C}, bf16) * 0.02);
    at::Tensor kc = at::zeros({M, H, S, D}, bf16), vc = at::zeros({M, H, S, D}, bf16), pos = at::full({M}, 100, longs);
    model::RotaryEmbedding rope(D, 10000, dev);
    row("tile q,k,v+rope vs cuBLAS + rope_append, M " + std::to_string(M), 2.0 * (3 * H * D * C + 4 * M * C),
        [&] { model::fused::qkv_rope_append(x, qkv_w[0], qkv_w[1], qkv_w[2], pos, pos, rope.inv_freq(), kc, vc, {}, tiled); },
        [&] { model::fused::qkv_rope_append(x, qkv_w[0], qkv_w[1], qkv_w[2], pos, pos, rope.inv_freq(), kc, vc); }, 200);
    row("tile gate,up+silu vs cuBLAS + silu_mul, M " + std::to_string(M), 2.0 * (2 * F * C + M * C + M * F),
        [&] { model::fused::gate_up_silu(x, gu_w[0], gu_w[1], {}, tiled); },
        [&] { model::fused::gate_up_silu(x, gu_w[0], gu_w[1]); }, 200);
    // The folded step's pieces (FusedStepOptions::tile_gemm with fold): the o projection with the residual add
    // and row sums in its epilogue against cuBLAS + add_rms_norm (the kernels it replaces), and gate/up
    // normalising x as it loads it against the same on a plain x (what the norm in the loads costs).
    at::Tensor wo = at::randn({C, H * D}, bf16) * 0.02, attn = at::randn({M, H * D}, bf16), nw = at::randn({C}, bf16);
    at::Tensor residual = at::randn({M, C}, bf16);
    at::Tensor sumsq = at::zeros({model::fused::sumsq_parts(C), model::fused::kTileRows}, bf16.dtype(at::kFloat));
    row("tile o + residual add + row sums vs cuBLAS + add_rms_norm, M " + std::to_string(M),
        2.0 * (H * D * C + M * H * D + 2 * M * C), [&] { model::fused::residual_add_linear(residual, attn, wo, sumsq, {}, tiled); },
        [&] { model::fused::add_rms_norm(residual, at::linear(attn, wo), nw, 1e-5); }, 200);
    model::fused::residual_add_linear(residual, attn, wo, sumsq, {}, tiled);  // sums of this residual
    const model::fused::TileNormedInput normed{residual, nw, sumsq, 1e-5};
    row("tile gate,up+silu normalised in the loads vs on a plain x, M " + std::to_string(M),
        2.0 * (2 * F * C + M * C + M * F), [&] { model::fused::gate_up_silu(normed, gu_w[0], gu_w[1], {}, tiled); },
        [&] { model::fused::gate_up_silu(x, gu_w[0], gu_w[1], {}, tiled); }, 200);
  }
  // The folded projections (norm prologue; rotary + cache append or SwiGLU epilogue; fused_ops.h) against the
  // unfolded kernels they replace (the "LibTorch" column here: add_rms_norm, the skinny GEMM, rope_append or
  // silu_mul). 7B's MHA shape.
  for (int64_t M : {1, 2}) {
    const int64_t C = 4096, F = 11008, H = 32, D = 128, S = 256;
    at::Tensor r = at::randn({M, C}, bf16), d = at::randn({M, C}, bf16), nw = at::randn({C}, bf16);
    at::Tensor r_out = at::empty_like(r), r_unfolded = at::empty_like(r);
    std::vector<at::Tensor> qkv_w, gu_w;
    for (int i = 0; i < 3; ++i) qkv_w.push_back(at::randn({H * D, C}, bf16) * 0.02);
    for (int i = 0; i < 2; ++i) gu_w.push_back(at::randn({F, C}, bf16) * 0.02);
    at::Tensor kc = at::zeros({M, H, S, D}, bf16), vc = at::zeros({M, H, S, D}, bf16), pos = at::full({M}, 100, longs);
    model::RotaryEmbedding rope(D, 10000, dev);
    const model::fused::NormedInput in{r, d, nw, r_out, 1e-5};
    auto unfolded_norm = [&] {
      r_unfolded.copy_(r);
      return model::fused::add_rms_norm(r_unfolded, d, nw, 1e-5);
    };
    row("folded q,k,v+rope M " + std::to_string(M), 2.0 * (3 * H * D * C + 4 * M * C),
        [&] { model::fused::qkv_rope_append(in, qkv_w[0], qkv_w[1], qkv_w[2], pos, pos, rope.inv_freq(), kc, vc); },
        [&] {
          auto p = model::fused::linear_parts(unfolded_norm(), qkv_w);
          model::fused::rope_append(p[0], p[1], p[2], pos, pos, rope.inv_freq(), kc, vc);
        },
        200);
    row("folded gate,up+silu M " + std::to_string(M), 2.0 * (2 * F * C + 4 * M * C + M * F),
        [&] { model::fused::gate_up_silu(in, gu_w[0], gu_w[1]); },
        [&] {
          auto p = model::fused::linear_parts(unfolded_norm(), gu_w);
          model::fused::silu_mul(p[0], p[1]);
        },
        200);
    // The LM head with the final norm in its prologue and float32 logits from its epilogue (the engine's since
    // the fifteenth session) against add_rms_norm, the skinny GEMM and the float32 copy.
    const int64_t V = 32000;
    at::Tensor head = at::randn({V, C}, bf16) * 0.02, logits = at::empty({M, V}, bf16.dtype(at::kFloat));
    row("folded LM head + float32 logits M " + std::to_string(M), 2.0 * (V * C + 2 * M * C) + 4.0 * M * V,
        [&] { model::fused::lm_head_logits(in, head, logits); },
        [&] { logits.copy_(model::fused::linear(unfolded_norm(), head)); }, 200);
    // The same kernels with their L2 prefetch (LaunchOptions::l2_prefetch) against without it (the
    // "LibTorch" column here).
    const model::fused::LaunchOptions prefetch{true, true};
    row("folded q,k,v+rope M " + std::to_string(M) + ", L2 prefetch vs none", 2.0 * (3 * H * D * C + 4 * M * C),
        [&] {
          model::fused::qkv_rope_append(in, qkv_w[0], qkv_w[1], qkv_w[2], pos, pos, rope.inv_freq(), kc, vc, {},
                                        prefetch);
        },
        [&] { model::fused::qkv_rope_append(in, qkv_w[0], qkv_w[1], qkv_w[2], pos, pos, rope.inv_freq(), kc, vc); },
        200);
    row("folded gate,up+silu M " + std::to_string(M) + ", L2 prefetch vs none", 2.0 * (2 * F * C + 4 * M * C + M * F),
        [&] { model::fused::gate_up_silu(in, gu_w[0], gu_w[1], {}, prefetch); },
        [&] { model::fused::gate_up_silu(in, gu_w[0], gu_w[1]); }, 200);
  }
  // Attention in the decode benchmark's 256-column cache at its mean length, the combine folded into the split
  // kernel (split counters) against a combine kernel of its own (the "LibTorch" column here).
  for (int64_t B : {1, 16}) {
    const int64_t H = 32, D = 128, S = 256, len = 192;
    at::Tensor kc = at::randn({B, H, S, D}, bf16), vc = at::randn({B, H, S, D}, bf16), q = at::randn({B, H, D}, bf16);
    at::Tensor lengths = at::full({B}, len, longs);
    at::Tensor counters = at::zeros({B * H}, at::TensorOptions().dtype(at::kInt).device(dev));
    row("attention B " + std::to_string(B) + " length 192 of 256, one kernel vs split + combine",
        2.0 * 2 * B * H * len * D, [&] { model::fused::decode_attention(q, kc, vc, lengths, {}, {}, counters); },
        [&] { model::fused::decode_attention(q, kc, vc, lengths); }, 200);
  }
  // Attention over a 4096-column cache (32 heads of 128) at several lengths: the reference reads it all under a mask.
  for (auto [B, len] : std::vector<std::pair<int64_t, int64_t>>{{1, 256}, {1, 2048}, {16, 256}, {16, 2048}}) {
    const int64_t H = 32, D = 128, S = 4096;
    at::Tensor kc = at::randn({B, H, S, D}, bf16), vc = at::randn({B, H, S, D}, bf16), q = at::randn({B, H, D}, bf16);
    at::Tensor lengths = at::full({B}, len, longs);
    row("attention B " + std::to_string(B) + " length " + std::to_string(len) + " of 4096",
        2.0 * 2 * B * H * len * D, [&] { model::fused::decode_attention(q, kc, vc, lengths); },
        [&] { model::fused::decode_attention(q, kc, vc, lengths, ForceReference{true}); }, 50);
  }
  // The small ops of one layer at batch 1 and 16: launch-bound, so the count of kernels is what they save.
  for (int64_t B : {1, 16}) {
    const int64_t C = 4096, F = 11008, H = 32, D = 128, S = 4096;
    at::Tensor r = at::randn({B, C}, bf16), d = at::randn({B, C}, bf16), w = at::randn({C}, bf16);
    row("add_rms_norm B " + std::to_string(B), 2.0 * 4 * B * C, [&] { model::fused::add_rms_norm(r, d, w, 1e-5); },
        [&] { model::fused::add_rms_norm(r, d, w, 1e-5, ForceReference{true}); }, 500);
    at::Tensor g = at::randn({B, F}, bf16), u = at::randn({B, F}, bf16);
    row("silu_mul B " + std::to_string(B), 2.0 * 3 * B * F, [&] { model::fused::silu_mul(g, u); },
        [&] { model::fused::silu_mul(g, u, ForceReference{true}); }, 500);
    at::Tensor q = at::randn({B, H * D}, bf16), k = at::randn({B, H * D}, bf16), v = at::randn({B, H * D}, bf16);
    at::Tensor kc = at::zeros({B, H, S, D}, bf16), vc = at::zeros({B, H, S, D}, bf16), pos = at::full({B}, 100, longs);
    model::RotaryEmbedding rope(D, 10000, dev);
    row("rope_append B " + std::to_string(B), 2.0 * 5 * B * H * D,
        [&] { model::fused::rope_append(q, k, v, pos, pos, rope.inv_freq(), kc, vc); },
        [&] { model::fused::rope_append(q, k, v, pos, pos, rope.inv_freq(), kc, vc, ForceReference{true}); }, 500);
  }

  // What the persistent step's grid barrier costs (model/cuda/grid_sync.cuh): 1000 in one cooperative launch
  // against none, with the step's grid. A kernel boundary of the folded step cost about 3 us (bench/README.md).
  at::Tensor word = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(dev));
  const double t_none = seconds_per_call([&] { model::fused::cuda::grid_barriers(word, 0); }, 50);
  const double t_many = seconds_per_call([&] { model::fused::cuda::grid_barriers(word, 1000); }, 20);
  const double per_barrier = (t_many - t_none) / 1000;
  std::cout << "\ngrid barrier (the persistent step's grid): " << per_barrier * 1e6 << " us each; an empty cooperative "
            << "launch " << t_none * 1e6 << " us\n";
  if (out.is_open())
    out << nlohmann::json{{"case", "grid barrier"}, {"barrier_s", per_barrier}, {"empty_launch_s", t_none}}.dump() << "\n";
  persistent_stages(dev, copy_bw, out);
  read_patterns(dev, copy_bw, out);
  block_order_gemv(dev, copy_bw, out);
  return 0;
}
