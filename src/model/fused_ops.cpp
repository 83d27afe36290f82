// Shape checks and dispatch for model/fused_ops.h: CUDA kernels where built, LibTorch ops otherwise.
#include "model/fused_ops.h"

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include "common/error.h"
#include "model/attention.h"
#include "model/kv_cache.h"
#include "model/rms_norm.h"
#include "model/rope.h"
#ifdef CHATMILL_CUDA
#include "model/cuda/fused_kernels.h"
#endif

namespace chatmill::model::fused {

bool use_kernel(const at::Tensor& t, ForceReference ref) { return kernels_built() && t.is_cuda() && !ref.on; }

namespace {

// `like`: the op's first input, whose dtype and device every other input must share (the kernels take raw pointers).
void check_rows(const at::Tensor& t, const char* what, int64_t rows, int64_t cols, const at::Tensor& like) {
  CHATMILL_CHECK(t.dim() == 2 && t.size(0) == rows && t.size(1) == cols, "fused op: ", what, " must be (", rows, ", ",
                 cols, "), got ", t.sizes());
  CHATMILL_CHECK(t.stride(1) == 1, "fused op: ", what, " must have contiguous rows (stride 1 along the last dim)");
  CHATMILL_CHECK(t.scalar_type() == like.scalar_type() && t.device() == like.device(), "fused op: ", what, " is ",
                 t.scalar_type(), " on ", t.device(), ", expected ", like.scalar_type(), " on ", like.device());
}

void check_cache(const at::Tensor& c, const char* what, int64_t B, const at::Tensor& q) {
  CHATMILL_CHECK(c.dim() == 4 && c.size(0) == B && c.is_contiguous(), "fused op: ", what,
                 " must be a contiguous (B, Hkv, S, D) cache with B = ", B, ", got ", c.sizes());
  CHATMILL_CHECK(c.scalar_type() == q.scalar_type() && c.device() == q.device(), "fused op: ", what, " is ",
                 c.scalar_type(), " on ", c.device(), " but the queries are ", q.scalar_type(), " on ", q.device());
}

void check_index(const at::Tensor& t, const char* what, int64_t B, const at::Tensor& like) {
  CHATMILL_CHECK(t.dim() == 1 && t.size(0) == B && t.scalar_type() == at::kLong && t.device() == like.device() &&
                     (B <= 1 || t.stride(0) == 1),
                 "fused op: ", what, " must be a dense (", B, ") int64 tensor on ", like.device(), ", got ", t.sizes(),
                 " with stride ", t.strides(), ", ", t.scalar_type(), " on ", t.device());
}

// The inputs of residual += delta, then rms_norm(residual) * weight (add_rms_norm, a folded projection's norm).
void check_residual_norm(const at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight) {
  CHATMILL_CHECK(residual.defined() && weight.defined(), "fused op: the residual and the norm weight must be given");
  CHATMILL_CHECK(residual.dim() == 2 && residual.is_contiguous(), "fused op: the residual must be contiguous (N, C), got ",
                 residual.sizes());
  const int64_t N = residual.size(0), C = residual.size(1);
  if (delta.defined()) check_rows(delta, "delta", N, C, residual);
  CHATMILL_CHECK(weight.dim() == 1 && weight.size(0) == C && weight.scalar_type() == residual.scalar_type() &&
                     weight.is_contiguous() && weight.device() == residual.device(),
                 "fused op: the norm weight must be contiguous (", C, ") ", residual.scalar_type(), " on ",
                 residual.device(), ", got ", weight.sizes(), " ", weight.scalar_type(), " on ", weight.device());
}

// rope_append's checks on everything but q, k, v themselves, given their widths (qw = H*D, kw = Hkv*D) and
// `like` (q, or the input q is projected from): returns D.
int64_t check_rope_inputs(const at::Tensor& like, int64_t B, int64_t qw, int64_t kw, const at::Tensor& positions,
                          const at::Tensor& columns, const at::Tensor& inv_freq, const at::Tensor& k_cache,
                          const at::Tensor& v_cache) {
  CHATMILL_CHECK(inv_freq.dim() == 1 && inv_freq.scalar_type() == at::kFloat && inv_freq.is_contiguous(),
                 "fused op: inv_freq must be contiguous (D/2) float32, got ", inv_freq.sizes(), " ", inv_freq.scalar_type());
  const int64_t D = 2 * inv_freq.size(0);
  CHATMILL_CHECK(D > 0 && qw % D == 0, "fused op: q must be (B, H*D) with D = ", D, ", got width ", qw);
  const int64_t H = qw / D;
  CHATMILL_CHECK(k_cache.dim() == 4 && k_cache.size(3) == D, "fused op: the k cache must be (B, Hkv, S, ", D, "), got ",
                 k_cache.sizes());
  const int64_t Hkv = k_cache.size(1);
  CHATMILL_CHECK(Hkv > 0 && H % Hkv == 0, "fused op: ", H, " query heads cannot share ", Hkv, " kv heads");
  CHATMILL_CHECK(kw == Hkv * D, "fused op: k and v must be (B, ", Hkv * D, ") for the caches' ", Hkv, " heads of ", D,
                 ", got width ", kw);
  check_cache(k_cache, "the k cache", B, like);
  check_cache(v_cache, "the v cache", B, like);
  CHATMILL_CHECK(v_cache.sizes() == k_cache.sizes(), "fused op: the v cache ", v_cache.sizes(),
                 " differs from the k cache ", k_cache.sizes());
  check_index(positions, "positions", B, like);
  check_index(columns, "columns", B, like);
  CHATMILL_CHECK(inv_freq.device() == like.device(), "fused op: inv_freq is on ", inv_freq.device(), ", q on ",
                 like.device());
  return D;
}

}  // namespace

bool kernels_built() {
#ifdef CHATMILL_CUDA
  return true;
#else
  return false;
#endif
}

at::Tensor add_rms_norm(at::Tensor& residual, const at::Tensor& delta, const at::Tensor& weight, double eps,
                        ForceReference ref, [[maybe_unused]] LaunchOptions launch) {
  check_residual_norm(residual, delta, weight);
  if (!use_kernel(residual, ref)) {
    if (delta.defined()) residual.add_(delta);
    return rms_norm(residual, weight, eps);
  }
#ifdef CHATMILL_CUDA
  at::Tensor out = at::empty_like(residual);
  cuda::add_rms_norm(residual, delta, weight, eps, out, launch.programmatic);
  return out;
#else
  TORCH_INTERNAL_ASSERT(false);
#endif
}

at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up, ForceReference ref,
                    [[maybe_unused]] LaunchOptions launch) {
  CHATMILL_CHECK(gate.dim() == 2, "fused op: gate must be (N, F), got ", gate.sizes());
  check_rows(gate, "gate", gate.size(0), gate.size(1), gate);
  check_rows(up, "up", gate.size(0), gate.size(1), gate);
  if (!use_kernel(gate, ref)) return at::silu(gate) * up;
#ifdef CHATMILL_CUDA
  at::Tensor out = at::empty(gate.sizes(), gate.options());
  cuda::silu_mul(gate, up, out, launch.programmatic);
  return out;
#else
  TORCH_INTERNAL_ASSERT(false);
#endif
}

at::Tensor rope_append(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                       const at::Tensor& columns, const at::Tensor& inv_freq, at::Tensor& k_cache,
                       at::Tensor& v_cache, ForceReference ref, [[maybe_unused]] LaunchOptions launch) {
  CHATMILL_CHECK(q.dim() == 2 && k.dim() == 2, "fused op: q and k must be (B, heads*D), got ", q.sizes(), " and ",
                 k.sizes());
  const int64_t B = q.size(0), D = check_rope_inputs(q, B, q.size(1), k.size(1), positions, columns, inv_freq,
                                                     k_cache, v_cache);
  const int64_t H = q.size(1) / D, Hkv = k_cache.size(1);
  check_rows(q, "q", B, H * D, q);
  check_rows(k, "k", B, Hkv * D, q);
  check_rows(v, "v", B, Hkv * D, q);
  if (!use_kernel(q, ref)) {
    // The model's own rotary code on (B, heads, 1, D) with (B, 1, D) tables.
    const RopeTables tables = rope_tables(inv_freq, positions.unsqueeze(1), q.scalar_type());
    at::Tensor qr = apply_rotary(q.reshape({B, H, 1, D}), tables);    // (B, H, 1, D)
    at::Tensor kr = apply_rotary(k.reshape({B, Hkv, 1, D}), tables);  // (B, Hkv, 1, D)
    write_row_columns(k_cache, v_cache, columns, kr, v.reshape({B, Hkv, 1, D}));
    return qr.view({B, H, D});
  }
#ifdef CHATMILL_CUDA
  at::Tensor q_out = at::empty({B, H, D}, q.options());
  cuda::rope_append(q, k, v, positions, columns, inv_freq, k_cache, v_cache, q_out, launch.programmatic);
  return q_out;
#else
  TORCH_INTERNAL_ASSERT(false);
#endif
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& lengths, ForceReference ref, [[maybe_unused]] LaunchOptions launch,
                            const at::Tensor& counters, const at::Tensor& fresh) {
  CHATMILL_CHECK(q.dim() == 3 && q.is_contiguous(), "fused op: q must be contiguous (B, H, D), got ", q.sizes());
  const int64_t B = q.size(0), H = q.size(1), D = q.size(2);
  check_cache(k_cache, "the k cache", B, q);
  check_cache(v_cache, "the v cache", B, q);
  CHATMILL_CHECK(k_cache.size(3) == D && v_cache.sizes() == k_cache.sizes(), "fused op: caches ", k_cache.sizes(), " and ",
                 v_cache.sizes(), " do not hold ", D, "-wide heads for q ", q.sizes());
  const int64_t Hkv = k_cache.size(1), S = k_cache.size(2);
  CHATMILL_CHECK(Hkv > 0 && H % Hkv == 0, "fused op: ", H, " query heads cannot share ", Hkv, " kv heads");
  check_index(lengths, "lengths", B, q);
  if (fresh.defined()) check_index(fresh, "fresh columns", B, q);
  if (counters.defined())
    CHATMILL_CHECK(counters.dim() == 1 && counters.numel() >= B * H && counters.scalar_type() == at::kInt &&
                       counters.is_contiguous() && counters.device() == q.device(),
                   "fused op: attention's split counters must be contiguous int32 zeros of at least B*H = ", B * H,
                   " on ", q.device(), ", got ", counters.sizes(), " ", counters.scalar_type(), " on ", counters.device());
  if (!use_kernel(q, ref)) {
    at::Tensor out = at::scaled_dot_product_attention(q.unsqueeze(2), repeat_kv(k_cache, H / Hkv),
                                                      repeat_kv(v_cache, H / Hkv), length_mask(lengths, S));  // (B, H, 1, D)
    return out.reshape({B, H * D});
  }
#ifdef CHATMILL_CUDA
  CHATMILL_CHECK(D <= 256, "fused decode attention takes head dims up to 256, got ", D);
  at::Tensor out = at::empty({B, H * D}, q.options());
  cuda::decode_attention(q, k_cache, v_cache, lengths, counters, out, fresh, launch.programmatic);
  return out;
#else
  TORCH_INTERNAL_ASSERT(false);
#endif
}

namespace {

// The layout both GEMM kernels need: 16-bit floats, rows of whole 16-byte chunks, contiguous and aligned.
bool gemm_layout(const at::Tensor& x, at::TensorList weights) {
  bool ok = (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf) && x.size(1) % 8 == 0 &&
            x.is_contiguous() && aligned16(x);
  for (const at::Tensor& w : weights)
    ok = ok && w.scalar_type() == x.scalar_type() && w.device() == x.device() && w.is_contiguous() && aligned16(w);
  return ok;
}

// Whether x w^T for each weight runs as the skinny GEMM (model/cuda/fused_kernels.h's conditions).
bool skinny_applies(const at::Tensor& x, at::TensorList weights, ForceReference ref) {
  return use_kernel(x, ref) && x.size(0) >= 1 && x.size(0) <= kSkinnyRows && gemm_layout(x, weights);
}

void check_multiplies(const at::Tensor& x, const at::Tensor& weight) {
  CHATMILL_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1), "fused linear: x ", x.sizes(),
                 " and weight ", weight.sizes(), " do not multiply (x: (M, K), weight: (N, K))");
}

}  // namespace

bool tile_applies(const at::Tensor& x, const std::vector<at::Tensor>& weights, ForceReference ref,
                  LaunchOptions launch) {
  return launch.tile_gemm && use_kernel(x, ref) && x.dim() == 2 &&
         x.size(0) >= std::max<int64_t>(1, launch.tile_min_rows) && x.size(0) <= kTileRows && gemm_layout(x, weights);
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, ForceReference ref, LaunchOptions launch) {
  return linear_parts(x, {weight}, ref, launch)[0];  // one part: the whole (M, N) output
}

std::vector<at::Tensor> linear_parts(const at::Tensor& x, const std::vector<at::Tensor>& weights, ForceReference ref,
                                     [[maybe_unused]] LaunchOptions launch) {
  CHATMILL_CHECK(!weights.empty() && weights.size() <= 3, "fused linear_parts takes 1 to 3 weights, got ",
                 weights.size());
  for (const at::Tensor& w : weights) check_multiplies(x, w);
  std::vector<at::Tensor> outs;
  const bool tile = tile_applies(x, weights, ref, launch), skinny = !tile && skinny_applies(x, weights, ref);
  if (!skinny && !tile) {
    for (const at::Tensor& w : weights) outs.push_back(at::linear(x, w));
    return outs;
  }
#ifdef CHATMILL_CUDA
  int64_t N = 0;
  for (const at::Tensor& w : weights) N += w.size(0);
  at::Tensor out = at::empty({x.size(0), N}, x.options());
  if (skinny) cuda::skinny_linear(x, weights, out, launch);
  else cuda::tile_linear(x, weights, out, launch);
  int64_t at_col = 0;
  for (const at::Tensor& w : weights) {
    outs.push_back(out.narrow(1, at_col, w.size(0)));
    at_col += w.size(0);
  }
  return outs;
#else
  TORCH_INTERNAL_ASSERT(false);
#endif
}

namespace {

void check_normed_input(const NormedInput& in) {
  const at::Tensor& r = in.residual_in;
  check_residual_norm(r, in.delta, in.weight);
  CHATMILL_CHECK(in.residual_out.defined() && in.residual_out.sizes() == r.sizes() && in.residual_out.is_contiguous() &&
                     in.residual_out.scalar_type() == r.scalar_type() && in.residual_out.device() == r.device(),
                 "fused op: residual_out must be a contiguous ", r.sizes(), " ", r.scalar_type(), " tensor on ",
                 r.device(), " like the residual");
  CHATMILL_CHECK(in.residual_out.data_ptr() != r.data_ptr(),
                 "fused op: residual_out must be another buffer than residual_in (the kernel reads one, writes the other)");
}

#ifdef CHATMILL_CUDA
// The one kernel of q/k/v + rotary and of gate/up + SwiGLU for each kind of input: the skinny GEMM with its
// norm prologue (NormedInput), the tile GEMM on x as it is (a tensor) or normalised in its loads (TileNormedInput).
void qkv_kernel(const NormedInput& in, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out, LaunchOptions launch) {
  cuda::skinny_qkv_rope(in, wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, q_out, launch);
}
template <class In>
void qkv_kernel(const In& in, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& q_out, LaunchOptions launch) {
  cuda::tile_qkv_rope(in, wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, q_out, launch);
}
void gate_up_kernel(const NormedInput& in, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out,
                    LaunchOptions launch) {
  cuda::skinny_gate_up_silu(in, wg, wu, out, launch);
}
template <class In>
void gate_up_kernel(const In& in, const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& out,
                    LaunchOptions launch) {
  cuda::tile_gate_up_silu(in, wg, wu, out, launch);
}
#endif

// q/k/v + rotary + cache append as one kernel on `in` (`like`: its (N, C) tensor). Callers checked that the
// kernel applies.
template <class In>
at::Tensor one_kernel_qkv([[maybe_unused]] const In& in, const at::Tensor& like, const at::Tensor& wq,
                          const at::Tensor& wk, const at::Tensor& wv, const at::Tensor& positions,
                          const at::Tensor& columns, const at::Tensor& inv_freq, at::Tensor& k_cache,
                          at::Tensor& v_cache, [[maybe_unused]] LaunchOptions launch) {
  const int64_t N = like.size(0);
  const int64_t D = check_rope_inputs(like, N, wq.size(0), wk.size(0), positions, columns, inv_freq, k_cache, v_cache);
  CHATMILL_CHECK(wv.size(0) == wk.size(0), "fused op: v weight ", wv.sizes(), " differs from k weight ", wk.sizes());
#ifdef CHATMILL_CUDA
  at::Tensor q_out = at::empty({N, wq.size(0) / D, D}, like.options());
  qkv_kernel(in, wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, q_out, launch);
  return q_out;
#else
  TORCH_INTERNAL_ASSERT(false, D);
#endif
}

// gate/up + SwiGLU as one kernel on `in`, as one_kernel_qkv.
template <class In>
at::Tensor one_kernel_gate_up([[maybe_unused]] const In& in, [[maybe_unused]] const at::Tensor& like,
                              [[maybe_unused]] const at::Tensor& wg, [[maybe_unused]] const at::Tensor& wu,
                              [[maybe_unused]] LaunchOptions launch) {
#ifdef CHATMILL_CUDA
  at::Tensor out = at::empty({like.size(0), wg.size(0)}, like.options());
  gate_up_kernel(in, wg, wu, out, launch);
  return out;
#else
  TORCH_INTERNAL_ASSERT(false);
#endif
}

void check_gate_up(const at::Tensor& x, const at::Tensor& wg, const at::Tensor& wu) {
  check_multiplies(x, wg);
  check_multiplies(x, wu);
  CHATMILL_CHECK(wg.size(0) == wu.size(0), "fused op: gate ", wg.sizes(), " and up ", wu.sizes(), " differ in rows");
}

// The unfolded composition: residual_out = residual_in + delta, x = its norm.
at::Tensor normed_unfolded(const NormedInput& in, ForceReference ref, LaunchOptions launch) {
  at::Tensor out = in.residual_out;
  out.copy_(in.residual_in);
  return add_rms_norm(out, in.delta, in.weight, in.eps, ref, launch);
}

}  // namespace

bool folds_apply(const NormedInput& in, const std::vector<at::Tensor>& weights, ForceReference ref) {
  const at::Tensor& r = in.residual_in;
  // The norm in the kernel's prologue loads 16 bytes at a time: rows of delta and the weight aligned too.
  return r.defined() && r.dim() == 2 && r.size(1) <= kMaxFoldedWidth && skinny_applies(r, weights, ref) &&
         in.weight.is_contiguous() && aligned16(in.weight) && aligned16(in.residual_out) &&
         (!in.delta.defined() || (aligned16(in.delta) && in.delta.stride(0) % 8 == 0));
}

at::Tensor qkv_rope_append(const NormedInput& in, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                           const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                           at::Tensor& k_cache, at::Tensor& v_cache, ForceReference ref, LaunchOptions launch) {
  check_normed_input(in);
  for (const at::Tensor* w : {&wq, &wk, &wv}) check_multiplies(in.residual_in, *w);
  if (!folds_apply(in, {wq, wk, wv}, ref)) {
    const std::vector<at::Tensor> qkv = linear_parts(normed_unfolded(in, ref, launch), {wq, wk, wv}, ref, launch);
    return rope_append(qkv[0], qkv[1], qkv[2], positions, columns, inv_freq, k_cache, v_cache, ref, launch);
  }
  return one_kernel_qkv(in, in.residual_in, wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, launch);
}

at::Tensor gate_up_silu(const NormedInput& in, const at::Tensor& wg, const at::Tensor& wu, ForceReference ref,
                        LaunchOptions launch) {
  check_normed_input(in);
  check_gate_up(in.residual_in, wg, wu);
  if (!folds_apply(in, {wg, wu}, ref)) {
    const std::vector<at::Tensor> gu = linear_parts(normed_unfolded(in, ref, launch), {wg, wu}, ref, launch);
    return silu_mul(gu[0], gu[1], ref, launch);
  }
  return one_kernel_gate_up(in, in.residual_in, wg, wu, launch);
}

void lm_head_logits(const NormedInput& in, const at::Tensor& w, const at::Tensor& out, ForceReference ref,
                    LaunchOptions launch) {
  check_normed_input(in);
  check_multiplies(in.residual_in, w);
  const int64_t N = in.residual_in.size(0);
  CHATMILL_CHECK(out.dim() == 2 && out.size(0) == N && out.size(1) == w.size(0) && out.stride(1) == 1 &&
                     out.stride(0) == w.size(0) && out.scalar_type() == at::kFloat && out.device() == w.device(),
                 "fused op: the logits must be a contiguous (", N, ", ", w.size(0), ") float32 tensor on ", w.device(),
                 ", got ", out.sizes(), " ", out.scalar_type(), " on ", out.device());
  if (!folds_apply(in, {w}, ref)) {
    out.copy_(linear(normed_unfolded(in, ref, launch), w, ref, launch));
    return;
  }
#ifdef CHATMILL_CUDA
  cuda::skinny_logits(in, w, out, launch);
#else
  TORCH_INTERNAL_ASSERT(false);
#endif
}

namespace {

void check_sumsq(const at::Tensor& sumsq, int64_t C, const at::Tensor& like) {
  CHATMILL_CHECK(sumsq.defined() && sumsq.dim() == 2 && sumsq.size(0) == sumsq_parts(C) &&
                     sumsq.size(1) == kTileRows && sumsq.scalar_type() == at::kFloat && sumsq.is_contiguous() &&
                     sumsq.device() == like.device(),
                 "fused op: sumsq must be a contiguous (", sumsq_parts(C), ", ", kTileRows, ") float32 tensor on ",
                 like.device(), " for a residual of ", C, " columns (fused::sumsq_parts), got ",
                 sumsq.defined() ? c10::str(sumsq.sizes(), " ", sumsq.scalar_type(), " on ", sumsq.device())
                                 : std::string("none"));
}

void check_tile_normed(const TileNormedInput& in) {
  check_residual_norm(in.residual, at::Tensor(), in.weight);
  CHATMILL_CHECK(in.residual.size(0) <= kTileRows, "fused op: a TileNormedInput holds up to ", kTileRows,
                 " rows (its sums of squares), got ", in.residual.size(0));
  check_sumsq(in.sumsq, in.residual.size(1), in.residual);
}

bool tile_norm_applies(const TileNormedInput& in, const std::vector<at::Tensor>& weights, ForceReference ref,
                       LaunchOptions launch) {
  return tile_applies(in.residual, weights, ref, launch) && aligned16(in.weight);
}

// x itself, through add_rms_norm (the residual is left alone: no delta).
at::Tensor normed_plain(const TileNormedInput& in, ForceReference ref, LaunchOptions launch) {
  at::Tensor r = in.residual;
  return add_rms_norm(r, at::Tensor(), in.weight, in.eps, ref, launch);
}

}  // namespace

at::Tensor qkv_rope_append(const at::Tensor& x, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                           const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                           at::Tensor& k_cache, at::Tensor& v_cache, ForceReference ref, LaunchOptions launch) {
  for (const at::Tensor* w : {&wq, &wk, &wv}) check_multiplies(x, *w);
  if (tile_applies(x, {wq, wk, wv}, ref, launch))
    return one_kernel_qkv(x, x, wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, launch);
  const std::vector<at::Tensor> qkv = linear_parts(x, {wq, wk, wv}, ref, launch);
  return rope_append(qkv[0], qkv[1], qkv[2], positions, columns, inv_freq, k_cache, v_cache, ref, launch);
}

at::Tensor gate_up_silu(const at::Tensor& x, const at::Tensor& wg, const at::Tensor& wu, ForceReference ref,
                        LaunchOptions launch) {
  check_gate_up(x, wg, wu);
  if (tile_applies(x, {wg, wu}, ref, launch)) return one_kernel_gate_up(x, x, wg, wu, launch);
  const std::vector<at::Tensor> gu = linear_parts(x, {wg, wu}, ref, launch);
  return silu_mul(gu[0], gu[1], ref, launch);
}

int64_t sumsq_parts(int64_t C) { return (C + kTileRows - 1) / kTileRows; }

void residual_add_linear(at::Tensor& residual, const at::Tensor& x, const at::Tensor& w, at::Tensor& sumsq,
                         ForceReference ref, LaunchOptions launch) {
  check_multiplies(x, w);
  const int64_t N = x.size(0), C = w.size(0);
  check_rows(residual, "the residual", N, C, x);
  CHATMILL_CHECK(residual.is_contiguous(), "fused op: the residual must be contiguous");
  CHATMILL_CHECK(N <= kTileRows, "fused residual_add_linear: up to ", kTileRows, " rows (sumsq holds that many), got ", N);
  check_sumsq(sumsq, C, x);
  // The kernel reads x and w through the read-only path while it writes the residual.
  for (const at::Tensor* t : {&x, &w, static_cast<const at::Tensor*>(&sumsq)})
    CHATMILL_CHECK(at::get_overlap_status(residual, *t) == at::MemOverlapStatus::No,
                   "fused residual_add_linear: the residual shares memory with another argument; give it its own buffer");
  if (!tile_applies(x, {w}, ref, launch)) {
    residual.add_(linear(x, w, ref, launch));  // one rounding of residual + o, as HF's
    const int64_t P = sumsq_parts(C);
    const at::Tensor sq = at::constant_pad_nd(residual.to(at::kFloat).square(), {0, P * kTileRows - C});  // (N, P*16)
    sumsq.narrow(1, 0, N).copy_(sq.view({N, P, kTileRows}).sum(-1).t());
    return;
  }
#ifdef CHATMILL_CUDA
  cuda::tile_residual_linear(residual, x, w, sumsq, launch);
#else
  TORCH_INTERNAL_ASSERT(false);
#endif
}

at::Tensor qkv_rope_append(const TileNormedInput& in, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                           const at::Tensor& positions, const at::Tensor& columns, const at::Tensor& inv_freq,
                           at::Tensor& k_cache, at::Tensor& v_cache, ForceReference ref, LaunchOptions launch) {
  check_tile_normed(in);
  for (const at::Tensor* w : {&wq, &wk, &wv}) check_multiplies(in.residual, *w);
  if (tile_norm_applies(in, {wq, wk, wv}, ref, launch))
    return one_kernel_qkv(in, in.residual, wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, launch);
  return qkv_rope_append(normed_plain(in, ref, launch), wq, wk, wv, positions, columns, inv_freq, k_cache, v_cache, ref,
                         launch);
}

at::Tensor gate_up_silu(const TileNormedInput& in, const at::Tensor& wg, const at::Tensor& wu, ForceReference ref,
                        LaunchOptions launch) {
  check_tile_normed(in);
  check_gate_up(in.residual, wg, wu);
  if (tile_norm_applies(in, {wg, wu}, ref, launch)) return one_kernel_gate_up(in, in.residual, wg, wu, launch);
  return gate_up_silu(normed_plain(in, ref, launch), wg, wu, ref, launch);
}

}  // namespace chatmill::model::fused
