#include "model/tokenizer.h"

#include <sentencepiece_processor.h>

#include <atomic>
#include <unordered_map>

#include "common/error.h"

namespace chatmill::model {

// The cache lives per thread (no locks on the hot path), keyed by a per-load id so that a tokenizer loaded
// later at the same address never sees another model's entries.
struct Tokenizer::WordCache {
  static constexpr size_t kMaxWords = 1 << 20;  // per thread: start over when full
  uint64_t id;
};

namespace {

std::atomic<uint64_t> next_cache_id{1};

std::unordered_map<std::string, std::vector<int>>& thread_cache(uint64_t id) {
  thread_local std::unordered_map<uint64_t, std::unordered_map<std::string, std::vector<int>>> caches;
  return caches[id];
}

}  // namespace

namespace {

// Cuts text before every space that follows a non-space: "a  b c" -> "a", "  b", " c". Runs of spaces
// stay with the word after them, as SentencePiece's "▁" does.
template <typename F>
void for_each_word(std::string_view text, F&& f) {
  size_t start = 0;
  for (size_t i = 1; i < text.size(); ++i)
    if (text[i] == ' ' && text[i - 1] != ' ') {
      f(text.substr(start, i - start), start == 0);
      start = i;
    }
  if (!text.empty()) f(text.substr(start), start == 0);
}

}  // namespace

std::vector<int> Tokenizer::encode_piece(std::string_view text) const {
  std::vector<int> ids;
  auto status = sp_->Encode(text, &ids);
  CHATMILL_CHECK(status.ok(), "tokenizer ", path_, " failed to encode text: ", status.ToString());
  return ids;
}

Tokenizer Tokenizer::load(const std::filesystem::path& model_file) {
  CHATMILL_CHECK(std::filesystem::is_regular_file(model_file), "tokenizer file ", model_file,
                 " does not exist; pass --tokenizer FILE or put tokenizer.model in the model folder");
  Tokenizer t;
  t.sp_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
  auto status = t.sp_->Load(model_file.string());
  CHATMILL_CHECK(status.ok(), "cannot load tokenizer ", model_file, " as a SentencePiece model: ", status.ToString());
  t.path_ = model_file;
  // The word cache is exact only for models that add the dummy "▁" and keep every space: probe that the
  // per-word rule reproduces whole-text encodings, else encode whole texts.
  t.cache_ = std::make_shared<WordCache>(WordCache{next_cache_id++});
  for (const char* probe : {"a b", "Hello world, again", "two  spaces   three", " lead", "trail  ", "trail ", "x \n y\t z",
                            "   ", "日本 語 😀 ok"}) {
    if (t.encode(probe, false) != t.encode_uncached(probe, false)) {
      t.cache_.reset();
      break;
    }
  }
  return t;
}

std::vector<int64_t> Tokenizer::encode_uncached(const std::string& text, bool add_bos) const {
  std::vector<int> ids = encode_piece(text);
  std::vector<int64_t> out;
  out.reserve(ids.size() + 1);
  if (add_bos) out.push_back(bos_id());
  out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos) const {
  if (!cache_) return encode_uncached(text, add_bos);
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos) out.push_back(bos_id());
  auto& cache = thread_cache(cache_->id);
  std::string key;
  for_each_word(text, [&](std::string_view word, bool first) {
    // Every key starts with the space that SentencePiece's dummy prefix stands for on the first word.
    key.assign(first ? " " : "");
    key.append(word);
    if (auto it = cache.find(key); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
    // A lone trailing space is the one word the dummy prefix cannot stand for (SentencePiece encodes ""
    // as nothing): it is the piece "▁" itself.
    std::vector<int> ids = key.size() == 1 ? std::vector<int>{sp_->PieceToId("\xe2\x96\x81")}
                                           : encode_piece(std::string_view(key).substr(1));
    out.insert(out.end(), ids.begin(), ids.end());
    if (cache.size() >= WordCache::kMaxWords) cache.clear();
    cache.emplace(key, std::move(ids));
  });
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> v;
  v.reserve(ids.size());
  for (int64_t id : ids) {
    CHATMILL_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " is outside the tokenizer's vocabulary [0, ",
                   vocab_size(), ") of ", path_);
    v.push_back(static_cast<int>(id));
  }
  std::string text;
  auto status = sp_->Decode(v, &text);
  CHATMILL_CHECK(status.ok(), "tokenizer ", path_, " failed to decode: ", status.ToString());
  return text;
}

std::string Tokenizer::piece(int64_t id) const {
  CHATMILL_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " is outside the vocabulary of ", path_);
  return sp_->IdToPiece(static_cast<int>(id));
}

int64_t Tokenizer::bos_id() const { return sp_->bos_id(); }
int64_t Tokenizer::eos_id() const { return sp_->eos_id(); }
int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

Tokenizer resolve_tokenizer(const std::filesystem::path& model_dir,
                            const std::optional<std::filesystem::path>& explicit_file) {
  if (explicit_file) return Tokenizer::load(*explicit_file);
  const auto file = model_dir / "tokenizer.model";
  CHATMILL_CHECK(std::filesystem::exists(file), "model folder ", model_dir,
                 " has no tokenizer.model; pass --tokenizer FILE, or use --prompt-ids");
  return Tokenizer::load(file);
}

}  // namespace chatmill::model
