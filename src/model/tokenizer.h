// SentencePiece tokenizer (the Llama-2 tokenizer.model). Special tokens are ids, never text.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace chatmill::model {

class Tokenizer {
 public:
  // Throws chatmill::Error naming the file when it is missing or not a SentencePiece model.
  static Tokenizer load(const std::filesystem::path& model_file);

  // Plain text in, ids out: "<s>" in the text is text, not the bos id. add_bos prepends bos_id().
  std::vector<int64_t> encode(const std::string& text, bool add_bos) const;
  // The same ids without the word cache: SentencePiece on the whole text (tests compare the two).
  std::vector<int64_t> encode_uncached(const std::string& text, bool add_bos) const;
  // Whether encode() may use the word cache (decided at load by probing the model).
  bool word_cache_enabled() const { return cache_ != nullptr; }
  // Control ids (bos, eos) decode to nothing, as in HF's decode(skip_special_tokens=True).
  std::string decode(const std::vector<int64_t>& ids) const;
  std::string piece(int64_t id) const;

  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t vocab_size() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  struct WordCache;
  std::vector<int> encode_piece(std::string_view text) const;  // SentencePiece on one string
  std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
  // Llama's SentencePiece BPE never merges across the start of a space-led word, so the ids of a text are
  // the concatenation of its words' ids: each distinct word is encoded once per thread and remembered.
  // Null when the model is not of that kind.
  std::shared_ptr<WordCache> cache_;
  std::filesystem::path path_;
};

// The tokenizer of a model folder: `explicit_file` when given, else DIR/tokenizer.model.
Tokenizer resolve_tokenizer(const std::filesystem::path& model_dir,
                            const std::optional<std::filesystem::path>& explicit_file);

}  // namespace chatmill::model
