// The model's parameters in groups that compute, communicate and shard together: the embedding, each decoder
// layer, and the head (final norm + LM head). Each group lives in one flat float32 buffer padded to a
// multiple of the world size, so that rank r owns the contiguous slice r of every group.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "train/optimizer.h"

namespace chatmill::train {

struct ParamGroup {
  std::string name;                         // "embed", "layers.3", "head"
  std::vector<std::string> names;           // HF names of its parameters
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> offsets;             // into the flat buffer
  std::vector<bool> decay;                  // weight decay applies (matrices, not norms)
  int64_t numel = 0;                        // real elements
  int64_t padded = 0;                       // numel rounded up to a multiple of the world size
  int64_t shard_size(int world) const { return padded / world; }
};

// Groups in forward order. A tied LM head is the embedding's (the head group then holds the norm only).
std::vector<ParamGroup> make_param_groups(const model::LlamaConfig& cfg, int world);

// Flat float32 buffer of a group, from (the same order of) full parameter tensors.
at::Tensor flatten_group(const ParamGroup& g, const std::vector<at::Tensor>& tensors, at::TensorOptions opts);
// Views of a flat buffer as the group's parameters (sharing its storage).
std::vector<at::Tensor> group_views(const ParamGroup& g, const at::Tensor& flat);
// The slots in `w` that hold the group's parameters, in group order.
std::vector<at::Tensor*> group_slots(const model::LlamaConfig& cfg, const ParamGroup& g, model::Weights& w);
// The decay runs of the flat buffer's elements [begin, begin + size) (a rank's shard, or all of it), relative
// to begin: neighbouring parameters of the same kind merged, the padding without decay.
std::vector<DecayRun> decay_runs(const ParamGroup& g, int64_t begin, int64_t size);

}  // namespace chatmill::train
