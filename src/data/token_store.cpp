#include "data/token_store.h"

#include <ATen/ATen.h>
#include <H5Cpp.h>
#include <unistd.h>

#include <random>

#include "common/error.h"
#include "data/ignore_label.h"

namespace chatmill::data {

namespace fs = std::filesystem;

Packing parse_packing(const std::string& s) {
  if (s == "packed") return Packing::Packed;
  if (s == "padded") return Packing::Padded;
  CHATMILL_FAIL("unknown packing '", s, "'; use packed or padded");
}

void seeded_shuffle(std::vector<int64_t>& v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) {
    // Unbiased draw in [0, i): reject the top sliver of the 64-bit range.
    const uint64_t n = i, limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng();
    while (x >= limit);
    std::swap(v[i - 1], v[x % n]);
  }
}

namespace {

constexpr const char* kFormat = "chatmill-tokens";
constexpr int64_t kVersion = 1;

// Fixed-length UTF-8 strings, held in the attribute's (checksummed) header message: variable-length ones live
// in the global heap, which has no checksum, and HDF5 1.10 crashes reading a damaged one. h5py reads these
// as bytes (.decode()).
void write_attr(H5::H5File& f, const char* name, const std::string& v) {
  H5::StrType type(H5::PredType::C_S1, std::max<size_t>(v.size(), 1));
  type.setCset(H5T_CSET_UTF8);
  type.setStrpad(H5T_STR_NULLPAD);
  f.createAttribute(name, type, H5::DataSpace(H5S_SCALAR)).write(type, v);
}

void write_attr(H5::H5File& f, const char* name, int64_t v) {
  f.createAttribute(name, H5::PredType::NATIVE_INT64, H5::DataSpace(H5S_SCALAR)).write(H5::PredType::NATIVE_INT64, &v);
}

std::string read_str(const H5::H5File& f, const char* name) {
  H5::Attribute a = f.openAttribute(name);
  std::string v;
  a.read(a.getStrType(), v);
  return v;
}

// A dataset's dimensions (empty for a scalar); an error naming the store when it is missing.
std::vector<hsize_t> dims_of(const H5::H5File& f, const char* name, const fs::path& path) {
  CHATMILL_CHECK(f.nameExists(name), "token store ", path, " is damaged: it has no dataset ", name,
                 "; tokenize the data again");
  const H5::DataSpace space = f.openDataSet(name).getSpace();
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(space.getSimpleExtentNdims(), 0)));
  if (!dims.empty()) space.getSimpleExtentDims(dims.data());
  return dims;
}

int64_t read_int(const H5::H5File& f, const char* name) {
  int64_t v = 0;
  f.openAttribute(name).read(H5::PredType::NATIVE_INT64, &v);
  return v;
}

// An extendible dataset of `cols` columns (1 = a flat list) that grows by appended blocks.
class Appender {
 public:
  Appender(H5::Group& g, const char* name, const H5::PredType& type, hsize_t cols) : type_(type), cols_(cols) {
    const int rank = cols == 1 ? 1 : 2;
    hsize_t dims[2] = {0, cols}, maxdims[2] = {H5S_UNLIMITED, cols};
    hsize_t chunk[2] = {cols == 1 ? hsize_t{1} << 16 : std::max<hsize_t>(1, (hsize_t{1} << 18) / cols), cols};
    H5::DSetCreatPropList props;
    props.setChunk(rank, chunk);
    props.setFletcher32();  // a damaged chunk fails its read instead of feeding wrong tokens to training
    ds_ = g.createDataSet(name, type, H5::DataSpace(rank, dims, maxdims), props);
  }
  // Appends `n` items (rows when 2-D) from `data`.
  void append(const void* data, hsize_t n) {
    if (n == 0) return;
    const int rank = cols_ == 1 ? 1 : 2;
    hsize_t newdims[2] = {size_ + n, cols_};
    ds_.extend(newdims);
    H5::DataSpace file = ds_.getSpace();
    hsize_t start[2] = {size_, 0}, count[2] = {n, cols_};
    file.selectHyperslab(H5S_SELECT_SET, count, start);
    ds_.write(data, type_, H5::DataSpace(rank, count), file);
    size_ += n;
  }
  hsize_t size() const { return size_; }

 private:
  H5::DataSet ds_;
  H5::PredType type_;
  hsize_t cols_;
  hsize_t size_ = 0;
};

}  // namespace

struct TokenStoreWriter::Impl {
  fs::path path, tmp;
  StoreMetadata meta;
  H5::H5File file;
  H5::Group samples, rows;
  std::unique_ptr<Appender> s_ids, s_labels, s_offsets, r_ids, r_labels, r_pos, r_doc;
  // Buffers flushed in blocks: HDF5 calls per sample would dominate the run time.
  std::vector<int32_t> buf_ids, buf_labels;
  std::vector<int64_t> buf_offsets;
  std::vector<int32_t> row_ids, row_labels, row_pos, row_doc;  // whole rows, row_length each
  std::vector<int32_t> cur_ids, cur_labels, cur_pos, cur_doc;   // the row being filled
  int64_t offset = 0;
  StoreStats stats;
  bool finished = false;

  void flush_samples() {
    s_ids->append(buf_ids.data(), buf_ids.size());
    s_labels->append(buf_labels.data(), buf_labels.size());
    s_offsets->append(buf_offsets.data(), buf_offsets.size());
    buf_ids.clear();
    buf_labels.clear();
    buf_offsets.clear();
  }
  void flush_rows() {
    const hsize_t n = row_ids.size() / meta.row_length;
    r_ids->append(row_ids.data(), n);
    r_labels->append(row_labels.data(), n);
    r_pos->append(row_pos.data(), n);
    r_doc->append(row_doc.data(), n);
    row_ids.clear();
    row_labels.clear();
    row_pos.clear();
    row_doc.clear();
  }
  void close_row() {
    if (cur_ids.empty()) return;
    const size_t pad = meta.row_length - cur_ids.size();
    stats.padding_tokens += static_cast<int64_t>(pad);
    cur_ids.insert(cur_ids.end(), pad, static_cast<int32_t>(meta.pad_id));
    cur_labels.insert(cur_labels.end(), pad, kIgnoreLabel);
    cur_pos.insert(cur_pos.end(), pad, 0);
    cur_doc.insert(cur_doc.end(), pad, -1);
    row_ids.insert(row_ids.end(), cur_ids.begin(), cur_ids.end());
    row_labels.insert(row_labels.end(), cur_labels.begin(), cur_labels.end());
    row_pos.insert(row_pos.end(), cur_pos.begin(), cur_pos.end());
    row_doc.insert(row_doc.end(), cur_doc.begin(), cur_doc.end());
    cur_ids.clear();
    cur_labels.clear();
    cur_pos.clear();
    cur_doc.clear();
    ++stats.rows;
    if (row_ids.size() >= (size_t{1} << 22)) flush_rows();
  }
};

TokenStoreWriter::TokenStoreWriter(const fs::path& path, StoreMetadata meta) : impl_(std::make_unique<Impl>()) {
  CHATMILL_CHECK(meta.row_length > 0 && meta.max_length > 0 && meta.max_length <= meta.row_length,
                 "token store ", path, ": need 0 < max_length (", meta.max_length, ") <= row_length (",
                 meta.row_length, ")");
  auto& m = *impl_;
  m.path = path;
  m.meta = std::move(meta);
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  m.tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  // The HDF5 1.8 structures (h5py reads them) checksum the file's metadata, so a damaged store fails to open
  // cleanly; with 1.6's unchecked layout messages HDF5 1.10 can divide by zero on one.
  H5::FileAccPropList access;
  access.setLibverBounds(H5F_LIBVER_V18, H5F_LIBVER_V18);
  m.file = H5::H5File(m.tmp.string(), H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, access);
  m.samples = m.file.createGroup("/samples");
  m.rows = m.file.createGroup("/rows");
  const hsize_t L = static_cast<hsize_t>(m.meta.row_length);
  m.s_ids = std::make_unique<Appender>(m.samples, "ids", H5::PredType::NATIVE_INT32, 1);
  m.s_labels = std::make_unique<Appender>(m.samples, "labels", H5::PredType::NATIVE_INT32, 1);
  m.s_offsets = std::make_unique<Appender>(m.samples, "offsets", H5::PredType::NATIVE_INT64, 1);
  m.r_ids = std::make_unique<Appender>(m.rows, "ids", H5::PredType::NATIVE_INT32, L);
  m.r_labels = std::make_unique<Appender>(m.rows, "labels", H5::PredType::NATIVE_INT32, L);
  m.r_pos = std::make_unique<Appender>(m.rows, "positions", H5::PredType::NATIVE_INT32, L);
  m.r_doc = std::make_unique<Appender>(m.rows, "doc", H5::PredType::NATIVE_INT32, L);
  m.buf_offsets.push_back(0);
}

TokenStoreWriter::~TokenStoreWriter() {
  if (impl_ && !impl_->finished) {
    impl_->file.close();
    fs::remove(impl_->tmp);  // an unfinished store is never left behind
  }
}

void TokenStoreWriter::add(const EncodedSample& s) {
  auto& m = *impl_;
  const int64_t n = static_cast<int64_t>(s.ids.size());
  CHATMILL_CHECK(n > 0 && n <= m.meta.max_length, "sample of ", n, " tokens does not fit max_length ", m.meta.max_length);
  m.buf_ids.insert(m.buf_ids.end(), s.ids.begin(), s.ids.end());
  m.buf_labels.insert(m.buf_labels.end(), s.labels.begin(), s.labels.end());
  m.offset += n;
  m.buf_offsets.push_back(m.offset);
  if (m.buf_ids.size() >= (size_t{1} << 22)) m.flush_samples();

  if (m.meta.packing == Packing::Padded || static_cast<int64_t>(m.cur_ids.size()) + n > m.meta.row_length) m.close_row();
  const int32_t doc = m.cur_doc.empty() ? 0 : m.cur_doc.back() + 1;
  m.cur_ids.insert(m.cur_ids.end(), s.ids.begin(), s.ids.end());
  m.cur_labels.insert(m.cur_labels.end(), s.labels.begin(), s.labels.end());
  for (int64_t i = 0; i < n; ++i) {
    m.cur_pos.push_back(static_cast<int32_t>(i));
    m.cur_doc.push_back(doc);
  }
  ++m.stats.samples;
  m.stats.tokens += n;
  for (int32_t l : s.labels) m.stats.trained_tokens += l != kIgnoreLabel;
}

StoreStats TokenStoreWriter::finish() {
  auto& m = *impl_;
  m.close_row();
  m.flush_rows();
  m.flush_samples();
  write_attr(m.file, "format", kFormat);
  write_attr(m.file, "version", kVersion);
  write_attr(m.file, "tokenizer_sha256", m.meta.tokenizer_sha256);
  write_attr(m.file, "template", m.meta.template_name);
  write_attr(m.file, "max_length", m.meta.max_length);
  write_attr(m.file, "row_length", m.meta.row_length);
  write_attr(m.file, "packing", m.meta.packing == Packing::Packed ? "packed" : "padded");
  write_attr(m.file, "pad_id", m.meta.pad_id);
  write_attr(m.file, "manifest", m.meta.manifest);
  m.file.close();
  fs::rename(m.tmp, m.path);
  m.finished = true;
  return m.stats;
}

TokenStore TokenStore::open(const fs::path& path) {
  CHATMILL_CHECK(fs::is_regular_file(path), "token store ", path, " does not exist; make one with chatmill data tokenize");
  TokenStore s;
  s.path_ = path;
  try {
    H5::Exception::dontPrint();
    H5::H5File f(path.string(), H5F_ACC_RDONLY);
    CHATMILL_CHECK(f.attrExists("format") && read_str(f, "format") == kFormat, path,
                   " is an HDF5 file but not a chatmill token store (no format=\"", kFormat, "\" attribute)");
    const int64_t version = read_int(f, "version");
    CHATMILL_CHECK(version == kVersion, "token store ", path, " has version ", version, "; this chatmill reads version ",
                   kVersion, ": tokenize the data again");
    s.meta_.tokenizer_sha256 = read_str(f, "tokenizer_sha256");
    s.meta_.template_name = read_str(f, "template");
    s.meta_.max_length = read_int(f, "max_length");
    s.meta_.row_length = read_int(f, "row_length");
    s.meta_.packing = parse_packing(read_str(f, "packing"));
    s.meta_.pad_id = read_int(f, "pad_id");
    s.meta_.manifest = read_str(f, "manifest");
    CHATMILL_CHECK(s.meta_.row_length > 0 && s.meta_.max_length > 0, "token store ", path, " is damaged: row_length ",
                   s.meta_.row_length, ", max_length ", s.meta_.max_length, "; tokenize the data again");
    // Every row dataset (R, row_length); the sample datasets as long as the last offset says.
    const std::vector<hsize_t> ids = dims_of(f, "/rows/ids", path);
    CHATMILL_CHECK(ids.size() == 2 && static_cast<int64_t>(ids[1]) == s.meta_.row_length, "token store ", path,
                   ": /rows/ids has rows of ", ids.size() == 2 ? ids[1] : 0, " tokens but row_length says ",
                   s.meta_.row_length);
    for (const char* name : {"/rows/labels", "/rows/positions", "/rows/doc"})
      CHATMILL_CHECK(dims_of(f, name, path) == ids, "token store ", path, " is damaged: ", name,
                     " does not have the shape of /rows/ids; tokenize the data again");
    s.num_rows_ = static_cast<int64_t>(ids[0]);
    const std::vector<hsize_t> offsets = dims_of(f, "/samples/offsets", path);
    CHATMILL_CHECK(offsets.size() == 1 && offsets[0] >= 1, "token store ", path,
                   " is damaged: /samples/offsets must be a list of at least one offset; tokenize the data again");
    s.num_samples_ = static_cast<int64_t>(offsets[0]) - 1;
    for (const char* name : {"/samples/ids", "/samples/labels"})
      CHATMILL_CHECK(dims_of(f, name, path).size() == 1, "token store ", path, " is damaged: ", name,
                     " must be one-dimensional; tokenize the data again");
  } catch (const H5::Exception& e) {
    CHATMILL_FAIL("cannot read token store ", path, ": ", e.getDetailMsg());
  }
  return s;
}

void TokenStore::require_tokenizer(const std::string& sha256, const std::string& what) const {
  CHATMILL_CHECK(sha256 == meta_.tokenizer_sha256, "token store ", path_, " was made with a tokenizer of sha256 ",
                 meta_.tokenizer_sha256, " but ", what, " has sha256 ", sha256,
                 "; tokenize the data again with the model's tokenizer");
}

namespace {

// Rows `indices` of a 2-D int32 dataset, as int32 (B, L).
at::Tensor read_rows(const H5::DataSet& ds, const std::vector<int64_t>& indices, int64_t L) {
  at::Tensor out = at::empty({static_cast<int64_t>(indices.size()), L}, at::kInt);
  H5::DataSpace file = ds.getSpace();
  hsize_t count[2] = {1, static_cast<hsize_t>(L)};
  H5::DataSpace mem(2, count);
  for (size_t b = 0; b < indices.size(); ++b) {
    hsize_t start[2] = {static_cast<hsize_t>(indices[b]), 0};
    file.selectHyperslab(H5S_SELECT_SET, count, start);
    ds.read(out.data_ptr<int32_t>() + b * L, H5::PredType::NATIVE_INT32, mem, file);
  }
  return out;
}

}  // namespace

Batch TokenStore::rows(const std::vector<int64_t>& indices) const {
  for (int64_t i : indices)
    CHATMILL_CHECK(i >= 0 && i < num_rows_, "row ", i, " is out of range for token store ", path_, " (", num_rows_, " rows)");
  const int64_t L = meta_.row_length;
  Batch b;
  try {
    H5::H5File f(path_.string(), H5F_ACC_RDONLY);
    b.ids = read_rows(f.openDataSet("/rows/ids"), indices, L).to(at::kLong);
    b.labels = read_rows(f.openDataSet("/rows/labels"), indices, L).to(at::kLong);
    b.positions = read_rows(f.openDataSet("/rows/positions"), indices, L).to(at::kLong);
    b.doc = read_rows(f.openDataSet("/rows/doc"), indices, L);
  } catch (const H5::Exception& e) {
    CHATMILL_FAIL("cannot read rows of token store ", path_, " (", e.getDetailMsg(),
                  "): the file changed or is damaged since it was opened; tokenize the data again");
  }
  // What the writer guarantees, so that damage shows here and not as an index error inside the model.
  const bool ok = b.ids.min().item<int64_t>() >= 0 && b.positions.min().item<int64_t>() >= 0 &&
                  b.positions.max().item<int64_t>() < meta_.max_length && b.doc.min().item<int32_t>() >= -1 &&
                  ((b.labels == kIgnoreLabel) | (b.labels >= 0)).all().item<bool>();
  std::string which;
  for (size_t k = 0; k < indices.size() && k < 8; ++k) which += (k ? "," : "") + std::to_string(indices[k]);
  if (indices.size() > 8) which += ",...";
  CHATMILL_CHECK(ok, "token store ", path_, " is damaged: rows ", which, " hold negative ids, labels other than ", kIgnoreLabel, " or non-negative, or positions outside [0, ",
                 meta_.max_length, "); tokenize the data again");
  return b;
}

void check_vocabulary(const Batch& b, int64_t vocab_size, const std::filesystem::path& store) {
  const int64_t top = std::max(b.ids.max().item<int64_t>(), b.labels.max().item<int64_t>());
  CHATMILL_CHECK(top < vocab_size, "token store ", store, " holds token id ", top, " but the model's vocabulary has ",
                 vocab_size, " entries; tokenize with the model's tokenizer, or check the model's vocab_size");
}

EncodedSample TokenStore::sample(int64_t i) const {
  CHATMILL_CHECK(i >= 0 && i < num_samples_, "sample ", i, " is out of range for token store ", path_);
  EncodedSample s;
  try {
    H5::H5File f(path_.string(), H5F_ACC_RDONLY);
    int64_t range[2];
    {
      H5::DataSet ds = f.openDataSet("/samples/offsets");
      H5::DataSpace file = ds.getSpace();
      hsize_t start = static_cast<hsize_t>(i), count = 2;
      file.selectHyperslab(H5S_SELECT_SET, &count, &start);
      ds.read(range, H5::PredType::NATIVE_INT64, H5::DataSpace(1, &count), file);
    }
    for (auto [name, dst] : {std::pair{"/samples/ids", &s.ids}, std::pair{"/samples/labels", &s.labels}}) {
      H5::DataSet ds = f.openDataSet(name);
      H5::DataSpace file = ds.getSpace();
      hsize_t total = 0;
      file.getSimpleExtentDims(&total);
      CHATMILL_CHECK(0 <= range[0] && range[0] <= range[1] && static_cast<hsize_t>(range[1]) <= total, "token store ",
                     path_, " is damaged: sample ", i, " has offsets [", range[0], ", ", range[1], ") outside ", name,
                     " (", total, " tokens); tokenize the data again");
      const hsize_t n = static_cast<hsize_t>(range[1] - range[0]), start = static_cast<hsize_t>(range[0]);
      dst->resize(n);
      if (n == 0) continue;
      file.selectHyperslab(H5S_SELECT_SET, &n, &start);
      ds.read(dst->data(), H5::PredType::NATIVE_INT32, H5::DataSpace(1, &n), file);
    }
  } catch (const H5::Exception& e) {
    CHATMILL_FAIL("cannot read sample ", i, " of token store ", path_, " (", e.getDetailMsg(),
                  "): the file changed or is damaged since it was opened; tokenize the data again");
  }
  return s;
}

RowSampler::RowSampler(int64_t num_rows, int64_t batch_per_rank, int world, int rank, uint64_t seed)
    : num_rows_(num_rows), batch_per_rank_(batch_per_rank), world_(world), rank_(rank), seed_(seed) {
  CHATMILL_CHECK(world > 0 && rank >= 0 && rank < world, "bad rank ", rank, " of world size ", world);
  CHATMILL_CHECK(batch_per_rank > 0, "batch size per rank must be positive");
  CHATMILL_CHECK(steps_per_epoch() > 0, "the store has ", num_rows, " rows, fewer than one global batch of ",
                 batch_per_rank * world, " rows (", world, " ranks x ", batch_per_rank, ")");
}

int64_t RowSampler::steps_per_epoch() const { return num_rows_ / (batch_per_rank_ * world_); }

const std::vector<int64_t>& RowSampler::permutation(int64_t epoch) const {
  if (epoch != cached_epoch_) {
    cached_.resize(num_rows_);
    for (int64_t i = 0; i < num_rows_; ++i) cached_[i] = i;
    seeded_shuffle(cached_, seed_ + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(epoch + 1));
    cached_epoch_ = epoch;
  }
  return cached_;
}

std::vector<int64_t> RowSampler::batch(int64_t epoch, int64_t step) const {
  CHATMILL_CHECK(step >= 0 && step < steps_per_epoch(), "step ", step, " is past the epoch's ", steps_per_epoch(), " steps");
  const auto& p = permutation(epoch);
  const int64_t global = batch_per_rank_ * world_;
  const int64_t begin = step * global + rank_ * batch_per_rank_;
  return std::vector<int64_t>(p.begin() + begin, p.begin() + begin + batch_per_rank_);
}

}  // namespace chatmill::data
