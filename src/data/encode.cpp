#include "data/encode.h"

#include "common/error.h"

namespace chatmill::data {

namespace {

std::vector<int32_t> to_i32(const std::vector<int64_t>& v) { return std::vector<int32_t>(v.begin(), v.end()); }

}  // namespace

SegmentEncoder::SegmentEncoder(const model::Tokenizer& tok) : tok_(tok) {
  auto whole = tok.encode("a b", false);
  auto a = tok.encode("a", false), b = tok.encode("b", false);
  a.insert(a.end(), b.begin(), b.end());
  CHATMILL_CHECK(whole == a, "tokenizer ", tok.path(), " does not add SentencePiece's dummy prefix (\"▁\") to ",
                 "each encoded text; chat templates need a Llama-style SentencePiece model");
}

std::vector<std::vector<int32_t>> SegmentEncoder::encode_each(const std::vector<Segment>& segments) const {
  std::vector<std::vector<int32_t>> out;
  bool continues = false;  // the previous segment was text
  for (const auto& s : segments) {
    if (s.special == Special::Bos) out.push_back({static_cast<int32_t>(tok_.bos_id())});
    else if (s.special == Special::Eos) out.push_back({static_cast<int32_t>(tok_.eos_id())});
    else if (!continues) out.push_back(to_i32(tok_.encode(s.text, false)));
    else {
      TORCH_INTERNAL_ASSERT(!s.text.empty() && s.text[0] == ' ', "continuation segments start with a space");
      out.push_back(to_i32(tok_.encode(s.text.substr(1), false)));
    }
    continues = s.special == Special::None;
  }
  return out;
}

EncodedSample SegmentEncoder::encode(const std::vector<Segment>& segments) const {
  EncodedSample e;
  auto pieces = encode_each(segments);
  for (size_t i = 0; i < segments.size(); ++i)
    for (int32_t id : pieces[i]) {
      e.ids.push_back(id);
      e.labels.push_back(segments[i].trained ? id : kIgnoreLabel);
    }
  return e;
}

std::optional<EncodedSample> SegmentEncoder::encode_training(const ChatTemplate& t, const Conversation& c,
                                                             int64_t max_length, std::string* why) const {
  const auto segments = t.training_segments(c);
  const auto pieces = encode_each(segments);
  EncodedSample e;
  bool any_trained = false;
  size_t i = 0;
  while (i < segments.size()) {
    // One exchange: its untrained segments, then its trained ones.
    const int ex = segments[i].exchange;
    size_t end = i;
    std::vector<int32_t> head, reply;
    for (; end < segments.size() && segments[end].exchange == ex; ++end) {
      auto& dst = segments[end].trained ? reply : head;
      dst.insert(dst.end(), pieces[end].begin(), pieces[end].end());
    }
    const int64_t room = max_length - static_cast<int64_t>(e.ids.size());
    const int64_t need = static_cast<int64_t>(head.size() + reply.size());
    const bool fits = need <= room;
    if (!fits && static_cast<int64_t>(head.size()) >= room) {
      e.truncated = true;
      break;  // the user turn would be cut: stop before it
    }
    const size_t keep = fits ? reply.size() : static_cast<size_t>(room) - head.size();
    e.ids.insert(e.ids.end(), head.begin(), head.end());
    e.labels.insert(e.labels.end(), head.size(), kIgnoreLabel);
    e.ids.insert(e.ids.end(), reply.begin(), reply.begin() + keep);
    e.labels.insert(e.labels.end(), reply.begin(), reply.begin() + keep);
    any_trained |= keep > 0;
    if (!fits) {
      e.truncated = true;
      break;
    }
    i = end;
  }
  if (!any_trained) {
    if (why) *why = c.messages.size() < 2 ? "no_complete_exchange" : "too_long";
    return std::nullopt;
  }
  return e;
}

}  // namespace chatmill::data
