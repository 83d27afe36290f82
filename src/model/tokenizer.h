// SentencePiece tokenizer (the Llama-2 tokenizer.model). Special tokens are ids, never text.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
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
  // Control ids (bos, eos) decode to nothing, as in HF's decode(skip_special_tokens=True).
  std::string decode(const std::vector<int64_t>& ids) const;
  std::string piece(int64_t id) const;

  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t vocab_size() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::filesystem::path path_;
};

// The tokenizer of a model folder: `explicit_file` when given, else DIR/tokenizer.model.
Tokenizer resolve_tokenizer(const std::filesystem::path& model_dir,
                            const std::optional<std::filesystem::path>& explicit_file);

}  // namespace chatmill::model
