// `chatmill plan CONFIG`: the memory one rank needs for a recipe and a world size (parameters, gradients,
// optimizer state, activations, buffers), and whether it fits the device.
#pragma once
#include <cstdint>
#include <string>

#include "model/config.h"
#include "train/config.h"

namespace chatmill::train {

struct MemoryPlan {
  int64_t params = 0, grads = 0, optimizer = 0;  // persistent, per rank (exactly what ParallelModel allocates)
  int64_t activations = 0;                         // saved for backward, one micro-batch
  int64_t buffers = 0;                             // transient: gathered groups, logits, masks
  int64_t total() const { return params + grads + optimizer + activations + buffers; }
};

// `row_length`: tokens per row of the store.
MemoryPlan plan_memory(const model::LlamaConfig& model, const TrainConfig& cfg, int world_size, int64_t row_length);
std::string format_plan(const MemoryPlan& p, const model::LlamaConfig& model, const TrainConfig& cfg, int world_size,
                        double device_gib);

}  // namespace chatmill::train
