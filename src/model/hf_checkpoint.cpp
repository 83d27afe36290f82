#include "model/hf_checkpoint.h"

#include <ATen/ATen.h>

#include <fstream>
#include <set>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "common/error.h"
#include "model/safetensors.h"

namespace chatmill::model {

namespace fs = std::filesystem;

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16") return at::kHalf;
  CHATMILL_FAIL("unknown dtype '", name, "'; use float32, bfloat16 or float16");
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: CHATMILL_FAIL("unsupported model dtype ", t, "; use float32, bfloat16 or float16");
  }
}

namespace {

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  CHATMILL_CHECK(in, "cannot read ", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    CHATMILL_FAIL("malformed JSON in ", path, ": ", e.what());
  }
}

void write_json(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path);
  CHATMILL_CHECK(out, "cannot write ", path);
  out << j.dump(2) << "\n";
  CHATMILL_CHECK(out, "failed writing ", path);
}

// Buffers HF keeps in old conversions; they are recomputed, never loaded.
bool ignorable(const std::string& name) {
  return name.size() > 20 && name.compare(name.size() - 20, 20, ".rotary_emb.inv_freq") == 0;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

std::vector<fs::path> checkpoint_files(const fs::path& dir) {
  CHATMILL_CHECK(fs::is_directory(dir), "model folder ", dir, " does not exist or is not a folder");
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    nlohmann::json j = read_json(index);
    CHATMILL_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), "bad index ", index,
                   ": expected {\"weight_map\": {tensor: file}}");
    std::set<std::string> names;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      CHATMILL_CHECK(it.value().is_string(), "bad index ", index, ": the file for tensor '", it.key(),
                     "' is not a string");
      const std::string file = it.value().get<std::string>();
      CHATMILL_CHECK(file.find('/') == std::string::npos && file != ".." && !file.empty(), "bad index ", index,
                     ": file name '", file, "' for tensor '", it.key(), "' must be a plain file in the folder");
      names.insert(file);
    }
    std::vector<fs::path> files;
    for (const auto& n : names) {
      CHATMILL_CHECK(fs::exists(dir / n), "shard ", dir / n, " named in ", index, " is missing");
      files.push_back(dir / n);
    }
    CHATMILL_CHECK(!files.empty(), "bad index ", index, ": weight_map is empty");
    return files;
  }
  if (fs::exists(dir / "model.safetensors")) return {dir / "model.safetensors"};
  CHATMILL_CHECK(!fs::exists(dir / "pytorch_model.bin") && !fs::exists(dir / "pytorch_model.bin.index.json"),
                 "model folder ", dir, " holds PyTorch .bin weights; chatmill reads safetensors only. Convert with: "
                 "python3 -c \"import transformers as t; t.AutoModelForCausalLM.from_pretrained('", dir.string(),
                 "').save_pretrained('OUT', safe_serialization=True)\"");
  CHATMILL_FAIL("model folder ", dir, " has neither model.safetensors nor model.safetensors.index.json");
}

Weights load_weights(const LlamaConfig& cfg, const std::vector<fs::path>& files, const LoadOptions& opts) {
  // 1. Headers only: open and validate every file, and map each tensor name to its file.
  std::vector<SafetensorsReader> readers;
  std::map<std::string, std::pair<size_t, const SafetensorInfo*>> where;
  for (const auto& f : files) readers.push_back(SafetensorsReader::open(f));
  for (size_t r = 0; r < readers.size(); ++r)
    for (const auto& t : readers[r].tensors()) {
      auto [it, fresh] = where.emplace(t.name, std::make_pair(r, &t));
      CHATMILL_CHECK(fresh, "tensor '", t.name, "' is stored twice: in ", readers[it->second.first].path(), " and in ",
                     readers[r].path());
    }

  // 2. Names, dtypes and shapes against the config, before reading any data.
  Weights w;
  std::vector<NamedParameter> params = named_parameters(cfg, w);
  std::set<std::string> expected;
  std::string files_desc = files.size() == 1 ? files[0].string()
                                             : detail::concat("the ", files.size(), " shards that ",
                                                              files[0].parent_path() / "model.safetensors.index.json", " names");
  for (const auto& p : params) {
    expected.insert(p.name);
    auto it = where.find(p.name);
    CHATMILL_CHECK(it != where.end(), "missing tensor '", p.name, "' (shape ", shape_str(p.shape), ") in ",
                   files_desc, "; the checkpoint does not match config.json");
    const SafetensorInfo& t = *it->second.second;
    CHATMILL_CHECK(t.shape == p.shape, "shape mismatch for tensor '", p.name, "' in ",
                   readers[it->second.first].path(), ": the file has ", shape_str(t.shape), ", config.json implies ",
                   shape_str(p.shape));
    CHATMILL_CHECK(at::isFloatingType(t.scalar_type), "tensor '", p.name, "' in ", readers[it->second.first].path(),
                   " has dtype ", t.dtype, "; model weights must be floating point (F32, F16, BF16)");
  }
  for (const auto& [name, loc] : where) {
    if (expected.count(name) || ignorable(name)) continue;
    if (name == "lm_head.weight" && cfg.tie_word_embeddings) continue;  // tied: the embedding is used
    CHATMILL_FAIL("unexpected tensor '", name, "' in ", readers[loc.first].path(),
                  ": it is not a parameter of a Llama model with this config.json (",
                  cfg.num_layers, " layers, tie_word_embeddings=", cfg.tie_word_embeddings, ")");
  }

  // 3. Copy tensor by tensor into fresh storage, releasing each source range once copied.
  auto options = at::TensorOptions().dtype(opts.dtype).device(opts.device);
  for (auto& p : params) {
    const auto& [r, info] = where.at(p.name);
    at::Tensor dst = at::empty(p.shape, opts.stored_dtype ? options.dtype(info->scalar_type) : options);
    dst.copy_(readers[r].view(*info));
    readers[r].release(*info);
    *p.slot = dst;
  }
  tie_weights(cfg, w);
  return w;
}

Model load_hf_model(const fs::path& dir, const LoadOptions& opts) {
  std::vector<fs::path> files = checkpoint_files(dir);
  LlamaConfig cfg = load_hf_config(dir / "config.json");
  return Model(cfg, load_weights(cfg, files, opts));
}

namespace {

void write_tokenizer_files(const fs::path& dir, const fs::path& tokenizer_model, const LlamaConfig& cfg) {
  CHATMILL_CHECK(fs::is_regular_file(tokenizer_model), "tokenizer model ", tokenizer_model, " does not exist");
  fs::copy_file(tokenizer_model, dir / "tokenizer.model");
  // No tokenizer_class: transformers 5's LlamaTokenizer class rebuilds BPE merges from tokenizer.model and
  // splits whitespace runs differently from SentencePiece; without it AutoTokenizer converts the model
  // faithfully (tested in tests/model/check_export.py).
  nlohmann::json tc = {{"add_bos_token", true},
                       {"add_eos_token", false},
                       {"bos_token", "<s>"},
                       {"eos_token", "</s>"},
                       {"unk_token", "<unk>"},
                       {"pad_token", nullptr},
                       {"clean_up_tokenization_spaces", false},
                       {"legacy", true},
                       {"model_max_length", cfg.max_position_embeddings}};
  write_json(dir / "tokenizer_config.json", tc);
  write_json(dir / "special_tokens_map.json", {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}});
}

}  // namespace

void save_hf_model(const Model& m, const fs::path& dir_in, const SaveOptions& opts) {
  const fs::path dir = dir_in.has_filename() ? dir_in : dir_in.parent_path();
  CHATMILL_CHECK(opts.overwrite || !fs::exists(dir), "output folder ", dir,
                 " already exists; choose another path or allow overwriting");
  CHATMILL_CHECK(opts.max_shard_bytes > 0, "max shard size must be positive");
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path());
  const fs::path tmp = dir.string() + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  // Plan shards in HF order: a new shard starts when the next tensor would overflow the current one.
  const auto tensors = named_tensors(m.config, m.weights);
  const size_t elem = at::elementSize(opts.dtype);
  std::vector<std::vector<const std::pair<std::string, at::Tensor>*>> shards(1);
  uint64_t shard_bytes = 0, total = 0;
  for (const auto& t : tensors) {
    uint64_t bytes = static_cast<uint64_t>(t.second.numel()) * elem;
    if (!shards.back().empty() && shard_bytes + bytes > opts.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&t);
    shard_bytes += bytes;
    total += bytes;
  }

  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    const std::string file = shards.size() == 1 ? "model.safetensors" : name;
    std::vector<std::pair<std::string, at::Tensor>> shard;
    for (const auto* t : shards[s]) {
      shard.emplace_back(t->first, t->second);
      weight_map[t->first] = file;
    }
    write_safetensors(tmp / file, shard, opts.dtype);
  }
  if (shards.size() > 1)
    write_json(tmp / "model.safetensors.index.json",
               {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}});

  write_json(tmp / "config.json", config_to_hf_json(m.config, dtype_name(opts.dtype)));
  nlohmann::json gen = {{"bos_token_id", m.config.bos_token_id}};
  gen["eos_token_id"] = m.config.eos_token_ids.size() == 1 ? nlohmann::json(m.config.eos_token_ids[0])
                                                           : nlohmann::json(m.config.eos_token_ids);
  if (m.config.pad_token_id) gen["pad_token_id"] = *m.config.pad_token_id;
  write_json(tmp / "generation_config.json", gen);
  if (opts.tokenizer_model) write_tokenizer_files(tmp, *opts.tokenizer_model, m.config);

  if (fs::exists(dir)) {
    const fs::path old = dir.string() + ".old-" + std::to_string(::getpid());
    fs::rename(dir, old);
    fs::rename(tmp, dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, dir);
  }
}

std::string model_folder_name(const std::filesystem::path& dir) {
  std::filesystem::path p = dir.lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  std::string n = p.filename().string();
  if (n == "model" && p.has_parent_path()) n = p.parent_path().filename().string();
  return n;
}

}  // namespace chatmill::model
