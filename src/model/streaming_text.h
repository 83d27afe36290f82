// The text of a growing sequence of generated ids, decoded a few ids at a time, with stop strings searched in
// the new bytes only: a full decode and search per token would make a long answer quadratic.
//
// Each step decodes the window of ids since the last complete output twice, with and without the new ids,
// and appends the difference once it ends in a complete character (a byte-fallback character arrives over
// several ids). Both decodes start at the same id, so SentencePiece's leading-space rule treats them alike
// and the pieces add up to the decode of the whole sequence (tested on the real Llama-2 tokenizer).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace chatmill::model {

// Earliest position of any (non-empty) stop string in `text` at or after `from`, or npos.
size_t find_stop(const std::string& text, const std::vector<std::string>& stops, size_t from = 0);

class StreamingText {
 public:
  // `tok` and `stops` must outlive this object.
  StreamingText(const Tokenizer& tok, const std::vector<std::string>& stops);

  // Appends one id; true once a stop string has appeared (text() then ends before it; later ids are ignored).
  bool add(int64_t id);
  // Appends what ids still wait for the rest of a character decode to (replacement characters, as a full
  // decode gives them); true once a stop string has appeared. Call when the sequence ends.
  bool flush();
  // The complete characters so far, cut before the first stop string.
  const std::string& text() const { return text_; }
  bool stopped() const { return stopped_; }

 private:
  // The text the ids after read_ add, decoded in the window that starts at prefix_ (empty while none).
  std::string pending() const;
  // Searches `piece` after the text for a stop string (cutting there); else appends it if `complete`.
  bool take(const std::string& piece, bool complete);

  const Tokenizer& tok_;
  const std::vector<std::string>& stops_;
  size_t longest_stop_ = 0;
  std::vector<int64_t> ids_;
  size_t prefix_ = 0, read_ = 0;  // the window starts at ids_[prefix_]; ids_[read_..] are not yet in text_
  std::string text_;
  bool stopped_ = false;
};

}  // namespace chatmill::model
