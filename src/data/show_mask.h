// Renders an encoded sample for a person: trained tokens highlighted, special tokens shown as <s> / </s>.
#pragma once
#include <string>

#include "data/encode.h"
#include "model/tokenizer.h"

namespace chatmill::data {

enum class Highlight { Ansi, Brackets };  // green background on a terminal; ⟦trained⟧ in plain text

std::string show_mask(const EncodedSample& s, const model::Tokenizer& tok, Highlight h);
// One line per token: position, id, piece, label.
std::string show_mask_table(const EncodedSample& s, const model::Tokenizer& tok);

}  // namespace chatmill::data
