// safetensors and HF folders: round trips, and every malformed input rejected with a message naming
// the file and tensor.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "common/error.h"
#include "common/test_env.h"
#include "model/hf_checkpoint.h"
#include "model/safetensors.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;
using testing::scratch;

// Writes bytes: 8-byte header length, header text, then `data_bytes` zero bytes.
void write_raw(const fs::path& path, uint64_t header_len, const std::string& header, size_t data_bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&header_len), 8);
  out << header;
  out << std::string(data_bytes, '\0');
}

void write_raw(const fs::path& path, const std::string& header, size_t data_bytes) {
  write_raw(path, header.size(), header, data_bytes);
}

// Opening `path` must fail with a message holding each of `parts` and the file's path.
void expect_open_error(const fs::path& path, std::vector<std::string> parts) {
  parts.push_back(path.string());
  testing::expect_error([&] { model::SafetensorsReader::open(path); }, parts);
}

TEST(Safetensors, RoundTripsEveryDtype) {
  auto dir = scratch("st_roundtrip");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto t : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble, at::kLong, at::kInt, at::kShort, at::kChar,
                 at::kByte, at::kBool})
    tensors.emplace_back(std::string("t_") + c10::toString(t), (at::randn({3, 5}) * 10).to(t));
  tensors.emplace_back("scalar", at::tensor(3.5f).reshape({}));
  tensors.emplace_back("empty", at::empty({0, 4}));
  model::write_safetensors(dir / "a.safetensors", tensors);
  auto r = model::SafetensorsReader::open(dir / "a.safetensors");
  EXPECT_EQ(r.metadata().at("format"), "pt");
  for (const auto& [name, t] : tensors) {
    const auto* info = r.find(name);
    ASSERT_NE(info, nullptr) << name;
    at::Tensor back = r.view(*info);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(at::equal(back, t)) << name;
  }
}

TEST(Safetensors, RejectsTruncatedFile) {
  auto dir = scratch("st_truncated");
  std::ofstream(dir / "t.safetensors") << "abc";
  expect_open_error(dir / "t.safetensors", {"truncated", "3 bytes"});
}

TEST(Safetensors, RejectsHeaderLengthPastEndOfFile) {
  auto dir = scratch("st_header_len");
  write_raw(dir / "h.safetensors", 5000, "{}", 0);
  expect_open_error(dir / "h.safetensors", {"header length 5000", "past the end of the file"});
}

TEST(Safetensors, RejectsHugeHeaderLength) {
  auto dir = scratch("st_header_huge");
  write_raw(dir / "h.safetensors", 1ull << 40, "{}", 0);
  expect_open_error(dir / "h.safetensors", {"100 MB"});
}

TEST(Safetensors, RejectsMalformedJson) {
  auto dir = scratch("st_json");
  write_raw(dir / "j.safetensors", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})", 8);
  expect_open_error(dir / "j.safetensors", {"malformed JSON header"});
  // A number past double's range: the JSON library reports it as out_of_range, not as a parse error.
  write_raw(dir / "n.safetensors", R"({"w": {"dtype": "F32", "shape": [2e892], "data_offsets": [0, 8]}})", 8);
  expect_open_error(dir / "n.safetensors", {"malformed JSON header", "number overflow"});
}

TEST(Safetensors, RejectsOverlappingOffsets) {
  auto dir = scratch("st_overlap");
  write_raw(dir / "o.safetensors",
            R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
            R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
            16);
  expect_open_error(dir / "o.safetensors", {"'a'", "'b'", "overlap"});
}

TEST(Safetensors, RejectsOffsetsOutOfRange) {
  auto dir = scratch("st_range");
  write_raw(dir / "r.safetensors", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 12);
  expect_open_error(dir / "r.safetensors", {"tensor 'w'", "past the end of the data buffer"});
}

TEST(Safetensors, RejectsOffsetsThatDisagreeWithShape) {
  auto dir = scratch("st_size");
  write_raw(dir / "s.safetensors", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}})", 16);
  expect_open_error(dir / "s.safetensors", {"tensor 'w'", "cover 16 bytes", "need 12"});
}

TEST(Safetensors, RejectsUnknownDtype) {
  auto dir = scratch("st_dtype");
  write_raw(dir / "d.safetensors", R"({"w": {"dtype": "F7", "shape": [2], "data_offsets": [0, 8]}})", 8);
  expect_open_error(dir / "d.safetensors", {"tensor 'w'", "unknown dtype 'F7'"});
}

TEST(Safetensors, RejectsBadShapesAndEntries) {
  auto dir = scratch("st_shape");
  write_raw(dir / "n.safetensors", R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8);
  expect_open_error(dir / "n.safetensors", {"tensor 'w'", "negative"});
  write_raw(dir / "e.safetensors", R"({"w": {"dtype": "F32", "shape": [2]}})", 8);
  expect_open_error(dir / "e.safetensors", {"tensor 'w'", "data_offsets"});
  write_raw(dir / "big.safetensors",
            R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})", 8);
  expect_open_error(dir / "big.safetensors", {"tensor 'w'", "impossibly large"});
  write_raw(dir / "a.safetensors", R"([1, 2])", 0);
  expect_open_error(dir / "a.safetensors", {"JSON object"});
}

// ---- HF folders -------------------------------------------------------------------------------

model::LlamaConfig small_config() {
  model::LlamaConfig c = model::llama2_debug();
  c.vocab_size = 64;
  c.num_layers = 2;
  return c;
}

// Saves a small model, then lets `edit` change the tensor list before rewriting model.safetensors.
fs::path folder_with(const std::string& name,
                     const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>& edit) {
  auto dir = scratch(name) / "model";
  auto cfg = small_config();
  model::Model m(cfg, model::init_weights(cfg, 0.02, 1, at::kFloat, at::kCPU));
  model::save_hf_model(m, dir);
  auto tensors = model::named_tensors(cfg, m.weights);
  edit(tensors);
  model::write_safetensors(dir / "model.safetensors", tensors);
  return dir;
}

void expect_load_error(const fs::path& dir, const std::vector<std::string>& parts) {
  testing::expect_error([&] { model::load_hf_model(dir); }, parts);
}

TEST(HfFolder, SaveLoadRoundTripIsExact) {
  auto cfg = small_config();
  model::Model m(cfg, model::init_weights(cfg, 0.02, 3, at::kFloat, at::kCPU));
  auto dir = scratch("hf_roundtrip");
  model::save_hf_model(m, dir / "a");
  model::save_hf_model(m, dir / "b", {at::kFloat, 20000, std::nullopt, false});  // sharded
  ASSERT_TRUE(fs::exists(dir / "b" / "model.safetensors.index.json"));
  for (auto sub : {"a", "b"}) {
    model::Model back = model::load_hf_model(dir / sub);
    auto x = model::named_tensors(cfg, m.weights), y = model::named_tensors(cfg, back.weights);
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(at::equal(x[i].second, y[i].second)) << x[i].first;
  }
  // bf16 load keeps the values up to bf16 rounding.
  model::Model bf = model::load_hf_model(dir / "a", {at::kBFloat16, at::kCPU});
  EXPECT_EQ(bf.dtype(), at::kBFloat16);
  EXPECT_TRUE(at::equal(bf.weights.embed, m.weights.embed.to(at::kBFloat16)));
  // The file's own dtype, whatever `dtype` says: a bf16 folder loads as bf16 (the trainer's transient copy).
  model::save_hf_model(m, dir / "c", {at::kBFloat16, 5ull << 30, std::nullopt, false});
  model::Model stored = model::load_hf_model(dir / "c", {at::kFloat, at::kCPU, /*stored_dtype=*/true});
  for (const auto& [name, t] : model::named_tensors(cfg, stored.weights)) EXPECT_EQ(t.scalar_type(), at::kBFloat16) << name;
  EXPECT_TRUE(at::equal(stored.weights.embed, bf.weights.embed));
}

TEST(HfFolder, RefusesToOverwriteUnlessAsked) {
  auto cfg = small_config();
  model::Model m(cfg, model::init_weights(cfg, 0.02, 3, at::kFloat, at::kCPU));
  auto dir = scratch("hf_overwrite") / "m";
  model::save_hf_model(m, dir);
  EXPECT_THROW(model::save_hf_model(m, dir), Error);
  model::SaveOptions o;
  o.overwrite = true;
  model::save_hf_model(m, dir, o);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));
}

TEST(HfFolder, MissingTensor) {
  auto dir = folder_with("hf_missing", [](auto& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; }),
            t.end());
  });
  expect_load_error(dir, {"missing tensor 'model.layers.1.mlp.up_proj.weight'", "model.safetensors"});
}

TEST(HfFolder, UnexpectedTensor) {
  auto dir = folder_with("hf_unexpected", [](auto& t) { t.emplace_back("model.layers.9.extra.weight", at::zeros({2})); });
  expect_load_error(dir, {"unexpected tensor 'model.layers.9.extra.weight'", "model.safetensors"});
}

TEST(HfFolder, IgnoresRotaryInvFreqBuffers) {
  auto dir = folder_with("hf_invfreq",
                         [](auto& t) { t.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", at::zeros({4})); });
  EXPECT_NO_THROW(model::load_hf_model(dir));
}

TEST(HfFolder, ShapeMismatchAgainstConfig) {
  auto dir = folder_with("hf_shape", [](auto& t) {
    for (auto& p : t)
      if (p.first == "model.layers.0.self_attn.k_proj.weight") p.second = at::zeros({64, 64});
  });
  expect_load_error(dir, {"shape mismatch for tensor 'model.layers.0.self_attn.k_proj.weight'", "[64, 64]", "[32, 64]"});
}

TEST(HfFolder, IntegerWeightsAreRejected) {
  auto dir = folder_with("hf_int", [](auto& t) {
    for (auto& p : t)
      if (p.first == "model.norm.weight") p.second = at::zeros({64}, at::kInt);
  });
  expect_load_error(dir, {"'model.norm.weight'", "floating point"});
}

TEST(HfFolder, TruncatedShardNamesTheFile) {
  auto dir = folder_with("hf_trunc", [](auto&) {});
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 100);
  expect_load_error(dir, {"model.safetensors", "past the end of the data buffer"});
}

// The shard files of a sharded folder, in order.
std::vector<fs::path> shards(const fs::path& dir) {
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("model-", 0) == 0) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(HfFolder, ShardedIndexProblems) {
  auto cfg = small_config();
  model::Model m(cfg, model::init_weights(cfg, 0.02, 3, at::kFloat, at::kCPU));
  auto base = scratch("hf_index");
  model::SaveOptions o;
  o.max_shard_bytes = 20000;
  model::save_hf_model(m, base / "missing_shard", o);
  auto files = shards(base / "missing_shard");
  ASSERT_GE(files.size(), 3u);
  fs::remove(files[1]);
  expect_load_error(base / "missing_shard", {files[1].filename().string(), "is missing"});

  model::save_hf_model(m, base / "bad_index", o);
  std::ofstream(base / "bad_index" / "model.safetensors.index.json") << "{\"weight_map\": [1, 2";
  expect_load_error(base / "bad_index", {"malformed JSON", "model.safetensors.index.json"});

  model::save_hf_model(m, base / "twice", o);
  // Copy one tensor of shard 1 into shard 2 as well.
  auto s1 = shards(base / "twice")[0];
  auto s2 = shards(base / "twice")[1];
  auto t1 = testing::read_all(s1), t2 = testing::read_all(s2);
  std::vector<std::pair<std::string, at::Tensor>> merged(t2.begin(), t2.end());
  merged.emplace_back(*t1.begin());
  model::write_safetensors(s2, merged);
  expect_load_error(base / "twice", {"stored twice", t1.begin()->first});
}

TEST(HfFolder, FolderProblems) {
  auto base = scratch("hf_folder");
  expect_load_error(base / "nope", {"does not exist"});
  fs::create_directories(base / "empty");
  expect_load_error(base / "empty", {"neither model.safetensors nor model.safetensors.index.json"});
  fs::create_directories(base / "bin");
  std::ofstream(base / "bin" / "pytorch_model.bin") << "x";
  expect_load_error(base / "bin", {"PyTorch .bin", "save_pretrained"});
  auto dir = folder_with("hf_noconfig", [](auto&) {});
  fs::remove(dir / "config.json");
  expect_load_error(dir, {"config.json"});
}

}  // namespace
}  // namespace chatmill
