// The typed configuration of a training run, filled from one YAML file (plus key.sub=value overrides) by
// one parser that reports every problem with its file and line.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "eval/suite.h"
#include "model/fused_autograd.h"

namespace chatmill::train {

enum class Precision { Float32, Bf16Mixed, Bf16Pure };  // mixed: bf16 compute, fp32 master weights and state
enum class Schedule { Cosine, Linear, Constant };
enum class Strategy { None, Ddp, Zero1, Zero2, Zero3 };
enum class OnNonFinite { Skip, Stop };

struct ModelConfig {
  std::string from;           // an HF folder to fine-tune; empty: a fresh init of `preset`
  std::string preset;         // debug | tiny | 7b | ... (fresh init)
  double init_std = 0.02;
  std::string tokenizer;      // for a fresh init (default: the store's tokenizer check is skipped only if empty)
  std::string device = "cpu";
  Precision precision = Precision::Float32;
  bool activation_checkpointing = false;
  model::Kernels kernels = model::Kernels::Fused;  // fused: hand-written backward ops; reference: HF's op order
};

struct DataConfig {
  std::string store;          // HDF5 token store (chatmill data tokenize)
  int64_t micro_batch_size = 4;    // rows per rank per forward/backward
  int64_t global_batch_size = 8;   // rows per optimizer step, all ranks and micro-batches
};

struct OptimizerConfig {
  double lr = 2e-5;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;  // decoupled (AdamW), on matrices only
  double grad_clip = 1.0;     // global norm; 0 = off
  bool fused = true;          // ATen's fused AdamW kernel where it exists
};

struct ScheduleConfig {
  Schedule kind = Schedule::Cosine;
  double warmup_ratio = 0.03;
  int64_t warmup_steps = -1;  // overrides the ratio when >= 0
  double min_lr_ratio = 0.0;
};

struct RunConfig {
  int64_t epochs = 3;
  int64_t max_steps = -1;     // stops early when >= 0
  uint64_t seed = 42;
  OnNonFinite on_non_finite = OnNonFinite::Stop;
  std::string output_dir = "checkpoints/run";
};

struct ParallelConfig {
  Strategy strategy = Strategy::None;
  double timeout_s = 300;     // a rank that dies or hangs makes the others fail within this
  double bucket_mb = 25;      // DDP gradient buckets
};

struct CheckpointConfig {
  int64_t every_steps = 0;    // 0: only at the end
  int64_t keep_last = 2;
  bool resume = false;        // continue from output_dir's latest checkpoint
  int64_t pause_before_commit_ms = 0;  // for crash tests: widens the window in which a save can be killed
};

struct LoggingConfig {
  int64_t every_steps = 1;
  bool progress = true;       // a progress bar on a terminal
  double peak_tflops = 0;     // the device's dense bf16 peak, for MFU (0: unknown, MFU not reported)
};

struct TrainConfig {
  ModelConfig model;
  DataConfig data;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  RunConfig run;
  ParallelConfig parallel;
  CheckpointConfig checkpoint;
  LoggingConfig logging;
  eval::EvalSuite eval;  // benchmarks on the weights in memory: at the end, and every eval.every_steps

  // Parses `file` with overrides; throws chatmill::Error listing every problem (file:line: key: what).
  static TrainConfig load(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});
  nlohmann::ordered_json to_json() const;  // the resolved config, printed and saved with checkpoints
};

const char* precision_name(Precision p);
const char* strategy_name(Strategy s);
const char* kernels_name(model::Kernels k);

}  // namespace chatmill::train
