// Template segments -> token ids and labels (-100 = not trained), with truncation at whole turns.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/ignore_label.h"
#include "model/tokenizer.h"

namespace chatmill::data {

struct EncodedSample {
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;  // ids where trained, kIgnoreLabel elsewhere
  bool truncated = false;
};

// Tokenises segments one by one. Special segments become ids. A text segment that follows a special token
// (or starts the sample) is encoded as SentencePiece encodes any text, with its dummy-prefix "▁"; a text
// segment that continues the previous one starts with one space, and that space is the dummy prefix of its
// own encoding. Because Llama's SentencePiece model splits words before "▁", this gives exactly the ids of
// the whole rendered string (checked against transformers in tests/data).
class SegmentEncoder {
 public:
  // Checks that the tokenizer has the dummy-prefix behaviour the continuation rule relies on.
  explicit SegmentEncoder(const model::Tokenizer& tok);

  EncodedSample encode(const std::vector<Segment>& segments) const;

  // Training encoding capped at max_length tokens: whole exchanges while they fit; then, if the next
  // exchange's user part fits whole, it and as much of the reply as fits (no eos). A user turn is never cut.
  // Returns nothing (and sets `why`) when no trained token fits or there is no complete exchange.
  std::optional<EncodedSample> encode_training(const ChatTemplate& t, const Conversation& c, int64_t max_length,
                                               std::string* why = nullptr) const;

  const model::Tokenizer& tokenizer() const { return tok_; }

 private:
  std::vector<std::vector<int32_t>> encode_each(const std::vector<Segment>& segments) const;
  const model::Tokenizer& tok_;
};

}  // namespace chatmill::data
