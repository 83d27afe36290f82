#include "eval/topics.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/random.h"
#include "common/text.h"

namespace chatmill::eval {

namespace {

// splitmix64 as a generator: successive outputs of a counter stepped by the golden ratio.
uint64_t next(uint64_t& state) { return mix64(state++ * 0x9E3779B97F4A7C15ull); }

// Rows scaled to unit length.
at::Tensor unit_rows(const at::Tensor& x) { return x / x.norm(2, {-1}, true).clamp_min(1e-12); }

}  // namespace

TopicPromptSampler::TopicPromptSampler(const TopicConfig& cfg)
    : cfg_(cfg), sample_(static_cast<size_t>(std::max<int64_t>(cfg.max_prompts, 0)), cfg.seed) {
  CHATMILL_CHECK(cfg.max_prompts > 0, "max_prompts must be positive");
}

void TopicPromptSampler::add(const data::Conversation& c) {
  if (!cfg_.language.empty() && c.language != cfg_.language) return;
  for (size_t i = 0; i < c.messages.size(); ++i) {
    if (c.messages[i].role != data::Role::User) continue;
    const int64_t len = utf8_length(c.messages[i].content);
    if (len < cfg_.min_chars || len > cfg_.max_chars) continue;
    sample_.add({c.id + ":" + std::to_string(i), c.messages[i].content});
  }
}

std::vector<TopicPrompt> TopicPromptSampler::take() { return sample_.take_in_order(); }

at::Tensor embed_prompts(const model::Model& m, const model::Tokenizer& tok, const std::vector<TopicPrompt>& prompts,
                         const TopicConfig& cfg) {
  c10::InferenceMode guard;
  const int64_t N = static_cast<int64_t>(prompts.size());
  at::Tensor out = at::empty({N, m.config.hidden_size}, at::kFloat);
  for (int64_t start = 0; start < N; start += cfg.batch_size) {
    const int64_t B = std::min(cfg.batch_size, N - start);
    std::vector<std::vector<int64_t>> ids(B);
    int64_t T = 1;
    for (int64_t b = 0; b < B; ++b) {
      ids[b] = tok.encode(prompts[start + b].text, true);
      if (static_cast<int64_t>(ids[b].size()) > cfg.max_tokens) ids[b].resize(cfg.max_tokens);
      T = std::max<int64_t>(T, ids[b].size());
    }
    // Right padding: real tokens keep positions 0..n-1, so padding changes nothing they attend to.
    std::vector<int64_t> flat(B * T, 0);
    std::vector<uint8_t> valid(B * T, 0);
    for (int64_t b = 0; b < B; ++b)
      for (size_t t = 0; t < ids[b].size(); ++t) {
        flat[b * T + t] = ids[b][t];
        valid[b * T + t] = 1;
      }
    at::Tensor tokens = at::tensor(flat, at::kLong).view({B, T}).to(m.device());
    at::Tensor mask = at::tensor(at::ArrayRef<uint8_t>(valid)).view({B, T}).to(at::kBool).to(m.device());
    at::Tensor positions = at::arange(T, tokens.options()).unsqueeze(0).expand({B, T});
    at::Tensor h = model::forward_hidden(m, tokens, positions, nullptr, mask).to(at::kFloat);  // (B, T, C)
    at::Tensor w = mask.unsqueeze(-1).to(at::kFloat);
    at::Tensor mean = (h * w).sum(1) / w.sum(1);  // (B, C)
    out.narrow(0, start, B).copy_(unit_rows(mean));
  }
  return out;
}

KMeansResult kmeans(const at::Tensor& x, int64_t k, int64_t max_iterations, uint64_t seed) {
  const int64_t N = x.size(0);
  CHATMILL_CHECK(k > 0 && k <= N, "k-means needs 0 < k (", k, ") <= number of points (", N, ")");
  uint64_t state = seed;
  auto uniform = [&] { return static_cast<double>(next(state) >> 11) * 0x1.0p-53; };
  // k-means++: each new centre drawn with probability proportional to squared distance to the nearest one.
  std::vector<int64_t> centres = {static_cast<int64_t>(next(state) % static_cast<uint64_t>(N))};
  at::Tensor d2 = (x - x[centres[0]]).pow(2).sum(1).to(at::kDouble);
  while (static_cast<int64_t>(centres.size()) < k) {
    at::Tensor cdf = d2.cumsum(0);
    const double total = cdf[N - 1].item<double>();
    int64_t pick;
    if (total <= 0) {
      pick = static_cast<int64_t>(next(state) % static_cast<uint64_t>(N));  // all points coincide
    } else {
      pick = at::searchsorted(cdf, at::scalar_tensor(uniform() * total, at::kDouble), false, true).item<int64_t>();
      pick = std::min(pick, N - 1);
    }
    centres.push_back(pick);
    d2 = at::minimum(d2, (x - x[pick]).pow(2).sum(1).to(at::kDouble));
  }
  KMeansResult r;
  r.centroids = x.index_select(0, at::tensor(centres, at::kLong)).clone();
  at::Tensor assign = at::full({N}, -1, at::kLong);
  for (r.iterations = 1; r.iterations <= max_iterations; ++r.iterations) {
    at::Tensor next = at::matmul(x, r.centroids.t()).argmax(1);  // nearest by cosine
    const bool stable = at::equal(next, assign);
    assign = next;
    if (stable) break;
    at::Tensor sums = at::zeros_like(r.centroids).index_add_(0, assign, x);
    at::Tensor counts = at::bincount(assign, {}, k).to(at::kFloat);
    for (int64_t c = 0; c < k; ++c)  // an emptied cluster keeps its old centre
      if (counts[c].item<float>() > 0) r.centroids[c].copy_(unit_rows(sums[c].unsqueeze(0))[0]);
  }
  r.iterations = std::min(r.iterations, max_iterations);
  r.assignment.assign(assign.data_ptr<int64_t>(), assign.data_ptr<int64_t>() + N);
  return r;
}

nlohmann::ordered_json topic_report(const std::vector<TopicPrompt>& prompts, const at::Tensor& x,
                                    const KMeansResult& km, int64_t nearest) {
  const int64_t k = km.centroids.size(0);
  at::Tensor dist = 1 - at::matmul(x, km.centroids.t());  // (N, k) cosine distances
  std::vector<std::vector<int64_t>> members(k);
  for (size_t i = 0; i < km.assignment.size(); ++i) members[km.assignment[i]].push_back(static_cast<int64_t>(i));
  std::vector<int64_t> order(k);
  for (int64_t c = 0; c < k; ++c) order[c] = c;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return members[a].size() > members[b].size(); });
  nlohmann::ordered_json clusters = nlohmann::ordered_json::array();
  for (int64_t c : order) {
    auto& ids = members[c];
    std::stable_sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return dist[a][c].item<float>() < dist[b][c].item<float>(); });
    nlohmann::ordered_json near = nlohmann::ordered_json::array();
    for (size_t i = 0; i < ids.size() && static_cast<int64_t>(i) < nearest; ++i)
      near.push_back({{"prompt_id", prompts[ids[i]].id}, {"distance", dist[ids[i]][c].item<float>()}, {"prompt", prompts[ids[i]].text}});
    clusters.push_back({{"cluster", c}, {"size", ids.size()}, {"nearest", near}});
  }
  return {{"k", k}, {"prompts", prompts.size()}, {"iterations", km.iterations}, {"clusters", clusters}};
}

}  // namespace chatmill::eval
