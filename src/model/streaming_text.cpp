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

bool StreamingText::append(const std::string& piece) {
  // A stop string found now ends in the new bytes: it starts at most longest_stop_ - 1 bytes before them.
  const size_t old = text_.size();
  text_ += piece;
  if (longest_stop_ == 0) return false;
  const size_t from = old >= longest_stop_ ? old - (longest_stop_ - 1) : 0;
  const size_t at = find_stop(text_, stops_, from);
  if (at != std::string::npos) {
    text_.resize(at);
    stopped_ = true;
  }
  return stopped_;
}

bool StreamingText::add(int64_t id) {
  if (stopped_) return true;
  ids_.push_back(id);
  const std::vector<int64_t> before(ids_.begin() + prefix_, ids_.begin() + read_);
  const std::vector<int64_t> after(ids_.begin() + prefix_, ids_.end());
  const std::string seen = tok_.decode(before), now = tok_.decode(after);
  if (now.size() <= seen.size()) return false;  // nothing new yet
  if (ends_with_replacement(now)) {
    // Unfinished character: not text yet, but a stop string may already match what the whole decode shows
    // (replacement characters included), as a full decode per token would find it.
    if (longest_stop_ == 0) return false;
    const size_t from = text_.size() >= longest_stop_ ? text_.size() - (longest_stop_ - 1) : 0;
    const std::string tail = text_.substr(from) + now.substr(seen.size());
    const size_t at = find_stop(tail, stops_);
    if (at == std::string::npos) return false;
    text_ = text_.substr(0, from) + tail.substr(0, at);
    stopped_ = true;
    return true;
  }
  prefix_ = read_;
  read_ = ids_.size();
  return append(now.substr(seen.size()));
}

bool StreamingText::flush() {
  if (stopped_ || read_ == ids_.size()) return stopped_;
  const std::string seen = tok_.decode(std::vector<int64_t>(ids_.begin() + prefix_, ids_.begin() + read_));
  const std::string now = tok_.decode(std::vector<int64_t>(ids_.begin() + prefix_, ids_.end()));
  prefix_ = read_ = ids_.size();
  return now.size() > seen.size() ? append(now.substr(seen.size())) : false;
}

}  // namespace chatmill::model
