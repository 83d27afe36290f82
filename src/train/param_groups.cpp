#include "train/param_groups.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>

#include "common/error.h"

namespace chatmill::train {

std::vector<ParamGroup> make_param_groups(const model::LlamaConfig& cfg, int world) {
  model::Weights w;
  auto params = model::named_parameters(cfg, w);
  std::vector<ParamGroup> groups;
  auto group_of = [&](const std::string& name) -> std::string {
    if (name == "model.embed_tokens.weight") return "embed";
    if (name.rfind("model.layers.", 0) == 0) {
      const size_t dot = name.find('.', 13);
      return "layers." + name.substr(13, dot - 13);
    }
    return "head";
  };
  for (const auto& p : params) {
    const std::string g = group_of(p.name);
    if (groups.empty() || groups.back().name != g) groups.push_back({g, {}, {}, {}, {}, 0, 0});
    ParamGroup& grp = groups.back();
    int64_t n = 1;
    for (int64_t d : p.shape) n *= d;
    grp.names.push_back(p.name);
    grp.shapes.push_back(p.shape);
    grp.offsets.push_back(grp.numel);
    grp.decay.push_back(p.shape.size() >= 2);
    grp.numel += n;
  }
  for (auto& g : groups) g.padded = (g.numel + world - 1) / world * world;
  return groups;
}

at::Tensor flatten_group(const ParamGroup& g, const std::vector<at::Tensor>& tensors, at::TensorOptions opts) {
  TORCH_INTERNAL_ASSERT(tensors.size() == g.names.size());
  at::Tensor flat = at::zeros({g.padded}, opts);
  for (size_t i = 0; i < tensors.size(); ++i)
    flat.narrow(0, g.offsets[i], tensors[i].numel()).copy_(tensors[i].detach().reshape({-1}));
  return flat;
}

std::vector<at::Tensor> group_views(const ParamGroup& g, const at::Tensor& flat) {
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < g.names.size(); ++i) {
    int64_t n = 1;
    for (int64_t d : g.shapes[i]) n *= d;
    out.push_back(flat.narrow(0, g.offsets[i], n).view(g.shapes[i]));
  }
  return out;
}

std::vector<at::Tensor*> group_slots(const model::LlamaConfig& cfg, const ParamGroup& g, model::Weights& w) {
  std::map<std::string, at::Tensor*> by_name;
  for (auto& p : model::named_parameters(cfg, w)) by_name[p.name] = p.slot;
  std::vector<at::Tensor*> out;
  for (const auto& n : g.names) out.push_back(by_name.at(n));
  return out;
}

std::vector<DecayRun> decay_runs(const ParamGroup& g, int64_t begin, int64_t size) {
  std::vector<DecayRun> runs;
  auto add = [&](int64_t lo, int64_t hi, bool decay) {  // flat range [lo, hi)
    lo = std::max(lo, begin);
    hi = std::min(hi, begin + size);
    if (lo >= hi) return;
    if (!runs.empty() && runs.back().decay == decay && runs.back().begin + runs.back().length == lo - begin)
      runs.back().length += hi - lo;
    else
      runs.push_back({lo - begin, hi - lo, decay});
  };
  for (size_t i = 0; i < g.names.size(); ++i) {
    int64_t n = 1;
    for (int64_t d : g.shapes[i]) n *= d;
    add(g.offsets[i], g.offsets[i] + n, g.decay[i]);
  }
  add(g.numel, g.padded, false);
  return runs;
}

}  // namespace chatmill::train
