#include "model/tokenizer.h"

#include <sentencepiece_processor.h>

#include "common/error.h"

namespace chatmill::model {

Tokenizer Tokenizer::load(const std::filesystem::path& model_file) {
  CHATMILL_CHECK(std::filesystem::is_regular_file(model_file), "tokenizer file ", model_file,
                 " does not exist; pass --tokenizer FILE or put tokenizer.model in the model folder");
  Tokenizer t;
  t.sp_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
  auto status = t.sp_->Load(model_file.string());
  CHATMILL_CHECK(status.ok(), "cannot load tokenizer ", model_file, " as a SentencePiece model: ", status.ToString());
  t.path_ = model_file;
  return t;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int> ids;
  auto status = sp_->Encode(text, &ids);
  CHATMILL_CHECK(status.ok(), "tokenizer ", path_, " failed to encode text: ", status.ToString());
  std::vector<int64_t> out;
  out.reserve(ids.size() + 1);
  if (add_bos) out.push_back(bos_id());
  out.insert(out.end(), ids.begin(), ids.end());
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
