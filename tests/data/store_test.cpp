// The HDF5 token store: samples and rows round-trip, packing restarts positions per document, the row
// sampler splits ranks without overlap and resumes exactly, and a foreign tokenizer is refused.
#include <ATen/ATen.h>
#include <H5Cpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "common/sha256.h"
#include "common/test_env.h"
#include "data/conversation_source.h"
#include "data/tokenize.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;
using data::kIgnoreLabel;

data::TokenizeConfig sample_config(const fs::path& out, const std::string& packing, int64_t max_length) {
  data::TokenizeConfig cfg;
  cfg.inputs = {(testing::source_dir() / "data" / "sample" / "lmsys_chat_sample.jsonl").string()};
  cfg.tokenizer = (testing::source_dir() / "data" / "sample" / "tokenizer.model").string();
  cfg.max_length = max_length;
  cfg.packing = packing;
  cfg.output = out.string();
  cfg.batch_size = 37;  // several batches, one partial
  return cfg;
}

std::vector<data::EncodedSample> expected_samples(const data::TokenizeConfig& cfg) {
  auto tok = model::Tokenizer::load(cfg.tokenizer);
  data::SegmentEncoder enc(tok);
  auto tmpl = data::ChatTemplate::by_name(cfg.template_name);
  std::vector<data::EncodedSample> out;
  data::ReadReport r;
  data::read_conversations({cfg.inputs[0]}, data::OnBadRecord::Fail, r, [&](data::Conversation&& c) {
    if (auto e = enc.encode_training(tmpl, c, cfg.max_length)) out.push_back(*e);
  });
  return out;
}

TEST(TokenStore, PackedRowsHoldEverySampleInOrderWithRestartingPositions) {
  auto dir = testing::scratch("store_packed");
  auto cfg = sample_config(dir / "train.h5", "packed", 512);
  auto report = data::tokenize_dataset(cfg);
  auto want = expected_samples(cfg);
  auto store = data::TokenStore::open(cfg.output);
  ASSERT_EQ(store.num_samples(), static_cast<int64_t>(want.size()));
  EXPECT_EQ(report.store.samples, store.num_samples());
  EXPECT_EQ(store.meta().template_name, "vicuna_v1.1");
  EXPECT_EQ(store.meta().tokenizer_sha256, sha256_file(cfg.tokenizer));
  EXPECT_GT(report.truncated, 0);  // some sample conversations are longer than 512 tokens
  for (size_t i = 0; i < want.size(); ++i) {
    auto s = store.sample(static_cast<int64_t>(i));
    ASSERT_EQ(s.ids, want[i].ids) << i;
    ASSERT_EQ(s.labels, want[i].labels) << i;
  }
  // Walk the rows: documents appear in input order; positions restart; padding is doc -1 with no loss.
  std::vector<int64_t> all(store.num_rows());
  for (int64_t i = 0; i < store.num_rows(); ++i) all[i] = i;
  auto b = store.rows(all);
  ASSERT_EQ(b.ids.size(1), 512);
  size_t next = 0;
  int64_t padding = 0;
  for (int64_t r = 0; r < store.num_rows(); ++r) {
    int64_t col = 0;
    int32_t doc = 0;
    while (col < 512 && b.doc[r][col].item<int32_t>() >= 0) {
      ASSERT_EQ(b.doc[r][col].item<int32_t>(), doc);
      const auto& s = want.at(next);
      for (size_t t = 0; t < s.ids.size(); ++t, ++col) {
        ASSERT_EQ(b.ids[r][col].item<int64_t>(), s.ids[t]);
        ASSERT_EQ(b.labels[r][col].item<int64_t>(), s.labels[t]);
        ASSERT_EQ(b.positions[r][col].item<int64_t>(), static_cast<int64_t>(t));
      }
      ++next;
      ++doc;
    }
    for (; col < 512; ++col, ++padding) {
      ASSERT_EQ(b.doc[r][col].item<int32_t>(), -1);
      ASSERT_EQ(b.labels[r][col].item<int64_t>(), kIgnoreLabel);
    }
  }
  EXPECT_EQ(next, want.size());
  EXPECT_EQ(padding, report.store.padding_tokens);
  EXPECT_LT(store.num_rows(), static_cast<int64_t>(want.size()));  // packing did pack
}

TEST(TokenStore, PaddedModePutsOneSamplePerRow) {
  auto dir = testing::scratch("store_padded");
  auto cfg = sample_config(dir / "train.h5", "padded", 256);
  data::tokenize_dataset(cfg);
  auto store = data::TokenStore::open(cfg.output);
  EXPECT_EQ(store.num_rows(), store.num_samples());
  auto b = store.rows({0, 5});
  EXPECT_EQ(b.doc.max().item<int32_t>(), 0);
}

TEST(TokenStore, RefusesAnotherTokenizerAndForeignFiles) {
  auto dir = testing::scratch("store_refuse");
  auto cfg = sample_config(dir / "train.h5", "packed", 256);
  data::tokenize_dataset(cfg);
  auto store = data::TokenStore::open(cfg.output);
  EXPECT_NO_THROW(store.require_tokenizer(sha256_file(cfg.tokenizer), "the model's tokenizer"));
  testing::expect_error([&] { store.require_tokenizer(sha256_string("other"), "the model's tokenizer"); },
                        {"was made with a tokenizer of sha256", "tokenize the data again"});
  testing::expect_error([&] { data::TokenStore::open(dir / "missing.h5"); }, {"does not exist"});
  std::ofstream(dir / "not.h5") << "not hdf5";
  testing::expect_error([&] { data::TokenStore::open(dir / "not.h5"); }, {"cannot read token store", "not.h5"});
  testing::expect_error([&] { store.rows({store.num_rows()}); }, {"out of range"});
}

TEST(TokenStore, FailedRunLeavesNoFileBehind) {
  auto dir = testing::scratch("store_failed");
  auto cfg = sample_config(dir / "train.h5", "packed", 256);
  cfg.inputs = {(testing::source_dir() / "data" / "sample" / "lmsys_chat_sample_broken.jsonl").string()};
  cfg.on_bad_record = "fail";
  testing::expect_error([&] { data::tokenize_dataset(cfg); }, {"lmsys_chat_sample_broken.jsonl:3"});
  EXPECT_FALSE(fs::exists(dir / "train.h5"));
  for (auto& e : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << e.path();
  cfg.on_bad_record = "skip";
  auto r = data::tokenize_dataset(cfg);
  EXPECT_EQ(r.read.skipped, 5);
  EXPECT_EQ(r.read.records, 7);
}

TEST(TokenStore, LongManifestAndEmptyStrings) {
  // Fixed-length string attributes: one past the 64 KiB of an object header goes to dense storage.
  auto dir = testing::scratch("store_strings");
  data::StoreMetadata m;
  m.max_length = m.row_length = 16;
  m.manifest = std::string(300000, 'x');
  data::TokenStoreWriter w(dir / "s.h5", m);
  data::EncodedSample s;
  s.ids = {1, 2, 3};
  s.labels = {kIgnoreLabel, 2, 3};
  w.add(s);
  w.finish();
  auto store = data::TokenStore::open(dir / "s.h5");
  EXPECT_EQ(store.meta().manifest, m.manifest);
  EXPECT_EQ(store.meta().template_name, "");
  EXPECT_EQ(store.sample(0).ids, s.ids);
}

// A copy of a good store, edited through HDF5 by `edit`.
fs::path damaged_store(const fs::path& good, const std::string& name, const std::function<void(H5::H5File&)>& edit) {
  const fs::path out = good.parent_path() / (name + ".h5");
  fs::copy_file(good, out, fs::copy_options::overwrite_existing);
  H5::H5File f(out.string(), H5F_ACC_RDWR);
  edit(f);
  return out;
}

// Overwrites one int element of a 1-D or 2-D dataset.
template <typename T>
void poke(H5::H5File& f, const char* name, std::vector<hsize_t> at, T value) {
  H5::DataSet ds = f.openDataSet(name);
  H5::DataSpace file = ds.getSpace();
  std::vector<hsize_t> one(at.size(), 1);
  file.selectHyperslab(H5S_SELECT_SET, one.data(), at.data());
  const H5::DataSpace mem(static_cast<int>(one.size()), one.data());
  ds.write(&value, std::is_same_v<T, int64_t> ? H5::PredType::NATIVE_INT64 : H5::PredType::NATIVE_INT32, mem, file);
}

TEST(TokenStore, DamagedStoresAreRefusedWithTheirName) {
  auto dir = testing::scratch("store_damaged");
  auto cfg = sample_config(dir / "train.h5", "packed", 256);
  data::tokenize_dataset(cfg);
  const fs::path good = cfg.output;

  auto no_doc = damaged_store(good, "no_doc", [](H5::H5File& f) { f.unlink("/rows/doc"); });
  testing::expect_error([&] { data::TokenStore::open(no_doc); }, {no_doc.string(), "/rows/doc"});

  auto negative = damaged_store(good, "negative_id", [](H5::H5File& f) { poke<int32_t>(f, "/rows/ids", {1, 3}, -5); });
  auto store = data::TokenStore::open(negative);
  EXPECT_NO_THROW(store.rows({0}));
  testing::expect_error([&] { store.rows({0, 1}); }, {negative.string(), "is damaged: rows 0,1", "tokenize the data again"});

  auto label = damaged_store(good, "bad_label", [](H5::H5File& f) { poke<int32_t>(f, "/rows/labels", {0, 0}, -7); });
  testing::expect_error([&] { data::TokenStore::open(label).rows({0}); }, {label.string(), "is damaged"});

  auto position = damaged_store(good, "bad_position", [](H5::H5File& f) { poke<int32_t>(f, "/rows/positions", {0, 0}, 256); });
  testing::expect_error([&] { data::TokenStore::open(position).rows({0}); }, {position.string(), "positions outside [0, 256)"});

  auto offsets = damaged_store(good, "bad_offsets", [](H5::H5File& f) { poke<int64_t>(f, "/samples/offsets", {1}, 1LL << 40); });
  auto bad_offsets = data::TokenStore::open(offsets);
  testing::expect_error([&] { bad_offsets.sample(0); }, {offsets.string(), "sample 0 has offsets", "outside /samples/ids"});

  // A store of another vocabulary (or a model of a smaller one).
  auto ok = data::TokenStore::open(good);
  const data::Batch b = ok.rows({0});
  EXPECT_NO_THROW(data::check_vocabulary(b, 32000, good));
  testing::expect_error([&] { data::check_vocabulary(b, 100, good); },
                        {good.string(), "holds token id", "vocabulary has 100 entries"});
}

TEST(RowSampler, RanksNeverOverlapAndCoverEachEpoch) {
  const int64_t rows = 103, per_rank = 4;
  const int world = 3;
  for (int64_t epoch : {0, 1}) {
    std::set<int64_t> seen;
    for (int rank = 0; rank < world; ++rank) {
      data::RowSampler s(rows, per_rank, world, rank, 42);
      EXPECT_EQ(s.steps_per_epoch(), rows / (per_rank * world));
      for (int64_t step = 0; step < s.steps_per_epoch(); ++step)
        for (int64_t r : s.batch(epoch, step)) EXPECT_TRUE(seen.insert(r).second) << "row " << r << " served twice";
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), rows / (per_rank * world) * per_rank * world);
  }
  data::RowSampler a(rows, per_rank, world, 1, 42), b(rows, per_rank, world, 1, 42), c(rows, per_rank, world, 1, 43);
  EXPECT_EQ(a.batch(0, 5), b.batch(0, 5));  // a fresh sampler (a resumed run) serves the same rows
  EXPECT_NE(a.batch(0, 5), a.batch(1, 5));  // each epoch is reshuffled
  EXPECT_NE(a.batch(0, 5), c.batch(0, 5));  // by seed
  testing::expect_error([] { data::RowSampler(5, 4, 2, 0, 1); }, {"fewer than one global batch"});
}

TEST(RowSampler, ShuffleIsPinned) {
  // The order is part of a run's reproducibility: Fisher-Yates over std::mt19937_64 (whose output the C++
  // standard fixes), not std::shuffle (whose algorithm it does not).
  std::vector<int64_t> v = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  data::seeded_shuffle(v, 7);
  EXPECT_EQ(v, (std::vector<int64_t>{0, 7, 4, 9, 3, 1, 2, 8, 6, 5}));
}

}  // namespace
}  // namespace chatmill
