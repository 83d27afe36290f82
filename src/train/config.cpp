#include "train/config.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/yaml_config.h"

namespace chatmill::train {

namespace {

// Reads an enum spelled as one of `names`; an unknown spelling is a config error naming the choices.
template <typename E>
void read_enum(YamlObject& y, const std::string& key, E& out, const std::vector<std::pair<std::string, E>>& names) {
  std::string s;
  y.read(key, s);
  if (s.empty()) return;
  for (const auto& [name, value] : names)
    if (name == s) {
      out = value;
      return;
    }
  std::string choices;
  for (const auto& [name, _] : names) choices += (choices.empty() ? "" : ", ") + name;
  y.errors().add(y.where(key) + " is '" + s + "'; choose one of: " + choices);
}

const std::vector<std::pair<std::string, Precision>> kPrecisions = {
    {"float32", Precision::Float32}, {"bf16-mixed", Precision::Bf16Mixed}, {"bf16", Precision::Bf16Pure}};
const std::vector<std::pair<std::string, model::Kernels>> kKernels = {{"fused", model::Kernels::Fused},
                                                                     {"reference", model::Kernels::Reference}};
const std::vector<std::pair<std::string, Schedule>> kSchedules = {
    {"cosine", Schedule::Cosine}, {"linear", Schedule::Linear}, {"constant", Schedule::Constant}};
const std::vector<std::pair<std::string, Strategy>> kStrategies = {
    {"none", Strategy::None}, {"ddp", Strategy::Ddp}, {"zero1", Strategy::Zero1}, {"zero2", Strategy::Zero2},
    {"zero3", Strategy::Zero3}};
const std::vector<std::pair<std::string, OnNonFinite>> kNonFinite = {{"skip", OnNonFinite::Skip},
                                                                     {"stop", OnNonFinite::Stop}};

// The spelling of `v` in its table (a reference into the table, which lives as long as the program).
template <typename E>
const std::string& name_of(E v, const std::vector<std::pair<std::string, E>>& names) {
  static const std::string unknown = "?";
  for (const auto& [n, e] : names)
    if (e == v) return n;
  return unknown;
}

}  // namespace

const char* precision_name(Precision p) { return name_of(p, kPrecisions).c_str(); }
const char* strategy_name(Strategy s) { return name_of(s, kStrategies).c_str(); }
const char* kernels_name(model::Kernels k) { return name_of(k, kKernels).c_str(); }

TrainConfig TrainConfig::load(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  auto errors = std::make_shared<ConfigErrors>();
  YamlObject root(load_yaml(file, overrides), "", file.string(), errors);
  TrainConfig c;

  YamlObject m = root.object("model");
  m.read("from", c.model.from);
  m.read("preset", c.model.preset);
  m.read("init_std", c.model.init_std);
  m.read("tokenizer", c.model.tokenizer);
  m.read("device", c.model.device);
  read_enum(m, "precision", c.model.precision, kPrecisions);
  m.read("activation_checkpointing", c.model.activation_checkpointing);
  read_enum(m, "kernels", c.model.kernels, kKernels);
  m.check_unknown();
  if (c.model.from.empty() == c.model.preset.empty())
    errors->add(m.where("from") + ": give exactly one of model.from (an HF folder) and model.preset (a fresh init)");

  YamlObject d = root.object("data");
  d.read("store", c.data.store, true);
  d.read("micro_batch_size", c.data.micro_batch_size);
  d.read("global_batch_size", c.data.global_batch_size);
  d.check_unknown();
  if (c.data.micro_batch_size <= 0 || c.data.global_batch_size <= 0)
    errors->add(d.where("global_batch_size") + ": micro and global batch sizes must be positive");

  YamlObject o = root.object("optimizer");
  o.read("lr", c.optimizer.lr);
  o.read("beta1", c.optimizer.beta1);
  o.read("beta2", c.optimizer.beta2);
  o.read("eps", c.optimizer.eps);
  o.read("weight_decay", c.optimizer.weight_decay);
  o.read("grad_clip", c.optimizer.grad_clip);
  o.read("fused", c.optimizer.fused);
  o.check_unknown();
  if (!(c.optimizer.lr >= 0)) errors->add(o.where("lr") + " must be >= 0");

  YamlObject s = root.object("schedule");
  read_enum(s, "kind", c.schedule.kind, kSchedules);
  s.read("warmup_ratio", c.schedule.warmup_ratio);
  s.read("warmup_steps", c.schedule.warmup_steps);
  s.read("min_lr_ratio", c.schedule.min_lr_ratio);
  s.check_unknown();
  if (c.schedule.warmup_ratio < 0 || c.schedule.warmup_ratio > 1)
    errors->add(s.where("warmup_ratio") + " must be in [0, 1]");

  YamlObject r = root.object("run");
  r.read("epochs", c.run.epochs);
  r.read("max_steps", c.run.max_steps);
  r.read("seed", c.run.seed);
  read_enum(r, "on_non_finite", c.run.on_non_finite, kNonFinite);
  r.read("output_dir", c.run.output_dir);
  r.check_unknown();

  YamlObject p = root.object("parallel");
  read_enum(p, "strategy", c.parallel.strategy, kStrategies);
  p.read("timeout_s", c.parallel.timeout_s);
  p.read("bucket_mb", c.parallel.bucket_mb);
  p.check_unknown();

  YamlObject k = root.object("checkpoint");
  k.read("every_steps", c.checkpoint.every_steps);
  k.read("keep_last", c.checkpoint.keep_last);
  k.read("resume", c.checkpoint.resume);
  k.read("pause_before_commit_ms", c.checkpoint.pause_before_commit_ms);
  k.check_unknown();
  if (c.checkpoint.keep_last < 1) errors->add(k.where("keep_last") + " must be at least 1");

  YamlObject l = root.object("logging");
  l.read("every_steps", c.logging.every_steps);
  l.read("progress", c.logging.progress);
  l.read("peak_tflops", c.logging.peak_tflops);
  l.check_unknown();

  if (root.has("eval")) {
    YamlObject e = root.object("eval");
    c.eval = eval::read_eval_suite(e);
  }

  root.check_unknown();
  errors->throw_if_any(file.string());
  return c;
}

nlohmann::ordered_json TrainConfig::to_json() const {
  return {{"model",
           {{"from", model.from}, {"preset", model.preset}, {"init_std", model.init_std}, {"tokenizer", model.tokenizer},
            {"device", model.device}, {"precision", name_of(model.precision, kPrecisions)},
            {"activation_checkpointing", model.activation_checkpointing},
            {"kernels", kernels_name(model.kernels)}}},
          {"data",
           {{"store", data.store}, {"micro_batch_size", data.micro_batch_size},
            {"global_batch_size", data.global_batch_size}}},
          {"optimizer",
           {{"lr", optimizer.lr}, {"beta1", optimizer.beta1}, {"beta2", optimizer.beta2}, {"eps", optimizer.eps},
            {"weight_decay", optimizer.weight_decay}, {"grad_clip", optimizer.grad_clip}, {"fused", optimizer.fused}}},
          {"schedule",
           {{"kind", name_of(schedule.kind, kSchedules)}, {"warmup_ratio", schedule.warmup_ratio},
            {"warmup_steps", schedule.warmup_steps}, {"min_lr_ratio", schedule.min_lr_ratio}}},
          {"run",
           {{"epochs", run.epochs}, {"max_steps", run.max_steps}, {"seed", run.seed},
            {"on_non_finite", name_of(run.on_non_finite, kNonFinite)}, {"output_dir", run.output_dir}}},
          {"parallel",
           {{"strategy", name_of(parallel.strategy, kStrategies)}, {"timeout_s", parallel.timeout_s},
            {"bucket_mb", parallel.bucket_mb}}},
          {"checkpoint",
           {{"every_steps", checkpoint.every_steps}, {"keep_last", checkpoint.keep_last}, {"resume", checkpoint.resume},
            {"pause_before_commit_ms", checkpoint.pause_before_commit_ms}}},
          {"logging", {{"every_steps", logging.every_steps}, {"progress", logging.progress}, {"peak_tflops", logging.peak_tflops}}},
          {"eval", eval.empty() ? nlohmann::ordered_json(nullptr) : eval::eval_suite_json(eval)}};
}

}  // namespace chatmill::train
