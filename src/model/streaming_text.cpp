#include "model/streaming_text.h"

#include <algorithm>

namespace chatmill::model {

namespace {

bool ends_with_replacement(const std::string& s) {
  static const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD: SentencePiece's unfinished character
  return s.size() >= 3 && s.compare(s.size() - 3, 3, kReplacement) == 0;
}

}  // namespace

size_t find_stop(const std::string& text, const std::vector<std::string>& stops, size_t from) {
  size_t best = std::string::npos;
  for (const auto& s : stops) {
    if (s.empty()) continue;
    const size_t at = text.find(s, from);
    if (at < best) best = at;
  }
  return best;
}

StreamingText::StreamingText(const Tokenizer& tok, const std::vector<std::string>& stops) : tok_(tok), stops_(stops) {
  for (const auto& s : stops_) longest_stop_ = std::max(longest_stop_, s.size());
}

std::string StreamingText::pending() const {
  auto decode = [&](size_t from, size_t to) {
    return tok_.decode(std::vector<int64_t>(ids_.begin() + from, ids_.begin() + to));
  };
  const std::string seen = decode(prefix_, read_), now = decode(prefix_, ids_.size());
  return now.size() > seen.size() ? now.substr(seen.size()) : std::string();
}

bool StreamingText::take(const std::string& piece, bool complete) {
  const size_t old = text_.size();
  text_ += piece;
  if (longest_stop_ > 0) {
    // A stop string found now ends in the new bytes: it starts at most longest_stop_ - 1 bytes before them. It
    // may match while a character is unfinished (replacement characters included), as a full decode would.
    const size_t at = find_stop(text_, stops_, old >= longest_stop_ ? old - (longest_stop_ - 1) : 0);
    if (at != std::string::npos) {
      text_.resize(at);
      stopped_ = true;
      return true;
    }
  }
  if (!complete) text_.resize(old);  // an unfinished character is not text yet
  return false;
}

bool StreamingText::add(int64_t id) {
  if (stopped_) return true;
  ids_.push_back(id);
  const std::string piece = pending();
  if (piece.empty()) return false;  // nothing new yet
  const bool complete = !ends_with_replacement(piece);
  if (complete) {
    prefix_ = read_;
    read_ = ids_.size();
  }
  return take(piece, complete);
}

bool StreamingText::flush() {
  if (stopped_ || read_ == ids_.size()) return stopped_;
  const std::string piece = pending();
  prefix_ = read_ = ids_.size();
  return take(piece, true);
}

}  // namespace chatmill::model
