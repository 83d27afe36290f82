// The tokenised training store: one HDF5 file holding the encoded samples and the fixed-length rows built
// from them (packed, or one padded sample per row), plus the metadata needed to trust it.
//
// Layout (readable with h5py):
//   attrs: format="chatmill-tokens", version, tokenizer_sha256, template, max_length, row_length, packing,
//          pad_id, manifest (JSON text)
//   /samples/ids, /samples/labels   int32 (total tokens)      every sample, concatenated
//   /samples/offsets                int64 (samples + 1)       sample i = [offsets[i], offsets[i+1])
//   /rows/ids, /rows/labels         int32 (rows, row_length)  labels -100 where not trained or padding
//   /rows/positions                 int32 (rows, row_length)  restart at 0 for each document in a row
//   /rows/doc                       int32 (rows, row_length)  document number within the row, -1 = padding
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/encode.h"

namespace chatmill::data {

enum class Packing { Packed, Padded };
Packing parse_packing(const std::string& s);  // "packed" | "padded"

struct StoreMetadata {
  std::string tokenizer_sha256;
  std::string template_name;
  int64_t max_length = 2048;
  int64_t row_length = 2048;
  Packing packing = Packing::Packed;
  int64_t pad_id = 0;
  std::string manifest = "{}";  // the source subset's manifest (JSON)
};

struct StoreStats {
  int64_t samples = 0, rows = 0, tokens = 0, trained_tokens = 0, padding_tokens = 0;
};

// Streams samples into rows. Packed: a sample joins the current row if it fits, else the row is padded
// and closed. Written to PATH.tmp-PID and renamed by finish(), so a reader never sees a partial store.
class TokenStoreWriter {
 public:
  TokenStoreWriter(const std::filesystem::path& path, StoreMetadata meta);
  ~TokenStoreWriter();
  void add(const EncodedSample& s);
  StoreStats finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A batch of rows: every tensor (B, L).
struct Batch {
  at::Tensor ids;        // int64
  at::Tensor labels;     // int64, -100 = no loss
  at::Tensor positions;  // int64, restarting per document
  at::Tensor doc;        // int32, -1 = padding: attend only within equal doc ids, causally
};

// Token ids and labels below the model's vocabulary: a store of another vocabulary, or a damaged one, stops
// here with the store's name, instead of as an index error (on CUDA a device-side assert) in the embedding.
void check_vocabulary(const Batch& b, int64_t vocab_size, const std::filesystem::path& store);

class TokenStore {
 public:
  // Throws chatmill::Error naming the file when it is not a chatmill token store or is inconsistent.
  static TokenStore open(const std::filesystem::path& path);
  const std::filesystem::path& path() const { return path_; }
  const StoreMetadata& meta() const { return meta_; }
  int64_t num_rows() const { return num_rows_; }
  int64_t num_samples() const { return num_samples_; }
  // Checks what the writer guarantees (ids >= 0, labels -100 or >= 0, positions in [0, max_length), doc >= -1).
  Batch rows(const std::vector<int64_t>& indices) const;
  EncodedSample sample(int64_t i) const;
  // Refuses a store made with another tokenizer than the model's (compared by sha256 of tokenizer.model).
  void require_tokenizer(const std::string& sha256, const std::string& what) const;

 private:
  std::filesystem::path path_;
  StoreMetadata meta_;
  int64_t num_rows_ = 0, num_samples_ = 0;
};

// Which rows each data-parallel rank reads: a seeded permutation of the rows per epoch, cut into global
// batches of world * batch_per_rank (the last partial one dropped, so every rank runs the same number of
// steps); rank r takes its own slice of each, so ranks never overlap. Stateless: (epoch, step) is the
// whole position, so a resumed run continues exactly where it stopped.
class RowSampler {
 public:
  RowSampler(int64_t num_rows, int64_t batch_per_rank, int world, int rank, uint64_t seed);
  int64_t steps_per_epoch() const;
  std::vector<int64_t> batch(int64_t epoch, int64_t step) const;

 private:
  const std::vector<int64_t>& permutation(int64_t epoch) const;
  int64_t num_rows_, batch_per_rank_;
  mutable int64_t cached_epoch_ = -1;  // the permutation of the epoch in progress
  mutable std::vector<int64_t> cached_;
  int world_, rank_;
  uint64_t seed_;
};

// Fisher-Yates with a 64-bit Mersenne Twister and unbiased bounded draws: the same order on every platform
// (std::shuffle's algorithm is left to the library).
void seeded_shuffle(std::vector<int64_t>& v, uint64_t seed);

}  // namespace chatmill::data
