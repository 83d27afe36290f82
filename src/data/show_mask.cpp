#include "data/show_mask.h"

#include <cstdio>

namespace chatmill::data {

std::string show_mask(const EncodedSample& s, const model::Tokenizer& tok, Highlight h) {
  const std::string on = h == Highlight::Ansi ? "\x1b[30;42m" : "⟦";
  const std::string off = h == Highlight::Ansi ? "\x1b[0m" : "⟧";
  std::string out;
  bool highlighted = false;  // adjacent trained runs (a reply and its </s>) share one highlight
  size_t i = 0;
  while (i < s.ids.size()) {
    const bool trained = s.labels[i] != kIgnoreLabel;
    std::string text;
    if (s.ids[i] == tok.bos_id() || s.ids[i] == tok.eos_id()) {
      text = s.ids[i] == tok.bos_id() ? "<s>" : "</s>";
      ++i;
    } else {
      // A run of ordinary tokens with one training flag, decoded together so multi-byte characters survive.
      std::vector<int64_t> run;
      while (i < s.ids.size() && (s.labels[i] != kIgnoreLabel) == trained && s.ids[i] != tok.bos_id() &&
             s.ids[i] != tok.eos_id())
        run.push_back(s.ids[i++]);
      // SentencePiece drops a leading "▁" when decoding; keep it visible as a space.
      text = (tok.piece(run.front()).rfind("\xe2\x96\x81", 0) == 0 ? " " : "") + tok.decode(run);
    }
    if (trained != highlighted) out += trained ? on : off;
    highlighted = trained;
    out += text;
  }
  if (highlighted) out += off;
  return out;
}

std::string show_mask_table(const EncodedSample& s, const model::Tokenizer& tok) {
  std::string out = "  pos      id  label   piece\n";
  char buf[256];
  for (size_t i = 0; i < s.ids.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%5zu  %6d  %5s   %s\n", i, s.ids[i], s.labels[i] == kIgnoreLabel ? "-100" : "train",
                  tok.piece(s.ids[i]).c_str());
    out += buf;
  }
  return out;
}

}  // namespace chatmill::data
