// Option parsing shared by the subcommands: devices, dtypes, sizes, id lists.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace chatmill::cli {

// "cpu", "cuda", "cuda:1"; errors when CUDA is asked for but not available.
at::Device parse_device(const std::string& s);
// "5GB" (10^9), "500MB", "2GiB" (2^30), or a plain byte count.
uint64_t parse_size(const std::string& s);
// "1 2 3" or "1,2,3" -> ids; errors name the bad item.
std::vector<int64_t> parse_ids(const std::string& s);
// The tokenizer file: `given` when set, else $CHATMILL_TOKENIZER (where users keep the Llama-2
// tokenizer.model); errors say how to pass one.
std::string tokenizer_or_default(const std::string& given);
// Sets the intra-op thread count when n > 0.
void set_threads(int n);

}  // namespace chatmill::cli
