// Import of llama2.c's legacy float32 checkpoints (karpathy/llama2.c `export.py --version 0`).
#pragma once
#include <filesystem>

#include "model/hf_checkpoint.h"

namespace chatmill::model {

// Reads the 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; negative
// vocab_size = untied classifier) and the weights in Meta's layout, and permutes q/k rows from Meta's
// interleaved rotary pairs (2j, 2j+1) to HF's rotate-half pairs (j, j + D/2).
Model load_llama2c(const std::filesystem::path& file, const LoadOptions& opts = {});

// Meta layout -> HF layout for a q or k projection: rows of each head reordered so that rotating
// (j, j + D/2) equals rotating Meta's (2j, 2j+1). w: (heads*D, C).
at::Tensor permute_rotary_rows(const at::Tensor& w, int64_t heads);

}  // namespace chatmill::model
