// Near-duplicate detection with MinHash and locality-sensitive hashing.
//
// A text is normalised (lower case, runs of whitespace to one space, trimmed), cut into character 5-grams,
// and summarised by `num_perm` minimum hashes (64-bit FNV-1a of the gram, remixed per permutation with
// splitmix64). Two texts whose signatures agree on a fraction >= threshold of positions are taken as
// near-duplicates (that fraction estimates the Jaccard similarity of their 5-gram sets). LSH splits the
// signature into bands; only texts sharing a whole band are compared, so the check is fast for millions.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace chatmill::data {

std::string normalize_for_dedup(const std::string& text);

class NearDuplicateIndex {
 public:
  NearDuplicateIndex(double threshold = 0.8, int num_perm = 64, int bands = 16);
  // True (and nothing stored) when `text` is a near-duplicate of an earlier kept text; else stores it.
  bool check_and_add(const std::string& text);
  std::vector<uint64_t> signature(const std::string& normalized) const;

 private:
  double threshold_;
  int num_perm_, bands_, rows_;
  std::vector<std::vector<uint64_t>> kept_;
  std::vector<std::unordered_map<uint64_t, std::vector<uint32_t>>> buckets_;  // per band: band hash -> kept ids
};

}  // namespace chatmill::data
