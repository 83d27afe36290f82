// The label of positions that carry no loss: -100, the value HF transformers and PyTorch's cross-entropy use.
#pragma once
#include <cstdint>

namespace chatmill::data {

inline constexpr int32_t kIgnoreLabel = -100;

}  // namespace chatmill::data
