// Topic analysis (paper §3.2): English user prompts of 32..1536 characters, embedded as the mean of a
// model's final hidden states over the prompt's tokens, clustered with k-means (k-means++ start, cosine
// geometry on unit vectors); each cluster reports its size and the prompts nearest its centroid.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/random.h"
#include "data/record.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace chatmill::eval {

struct TopicPrompt {
  std::string id;  // "<conversation_id>:<message index>"
  std::string text;
};

struct TopicConfig {
  std::string language = "English";
  int64_t min_chars = 32, max_chars = 1536;
  int64_t max_prompts = 100000;  // a seeded uniform sample beyond this
  int64_t max_tokens = 256;      // prompt tokens embedded
  int64_t k = 20;
  int64_t nearest = 10;
  int64_t batch_size = 32;
  int64_t max_iterations = 100;
  uint64_t seed = 0;
};

// Streams conversations; keeps a seeded uniform sample of at most cfg.max_prompts qualifying prompts.
class TopicPromptSampler {
 public:
  explicit TopicPromptSampler(const TopicConfig& cfg);
  void add(const data::Conversation& c);
  std::vector<TopicPrompt> take();  // in input order
  int64_t seen() const { return static_cast<int64_t>(sample_.seen()); }

 private:
  TopicConfig cfg_;
  ReservoirSample<TopicPrompt> sample_;  // bounded memory, uniform over the stream
};

// (N, C) float32 unit vectors: mean-pooled final hidden states of bos + prompt tokens (right-padded batches;
// a prompt's embedding does not depend on its batch).
at::Tensor embed_prompts(const model::Model& m, const model::Tokenizer& tok, const std::vector<TopicPrompt>& prompts,
                         const TopicConfig& cfg);

struct KMeansResult {
  at::Tensor centroids;           // (k, C), unit vectors
  std::vector<int64_t> assignment;  // per point
  int64_t iterations = 0;
};

// Spherical k-means on unit vectors x (N, C): k-means++ seeding from `seed`, Lloyd steps until no point moves.
KMeansResult kmeans(const at::Tensor& x, int64_t k, int64_t max_iterations, uint64_t seed);

// The report: clusters by size, each with its nearest prompts and their cosine distances.
nlohmann::ordered_json topic_report(const std::vector<TopicPrompt>& prompts, const at::Tensor& x,
                                    const KMeansResult& km, int64_t nearest);

}  // namespace chatmill::eval
