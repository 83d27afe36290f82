// Training checkpoints: OUT/checkpoints/step-00000042/ holding the model as an HF folder (loadable by
// transformers and `chatmill generate`), each rank's optimizer state, the trainer state (step, data position,
// RNG) and the resolved config. Built under a temporary name and renamed: a run killed during a save never
// leaves a half-written "latest". The last K are kept.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "train/parallel/communicator.h"

namespace chatmill::train {

struct CheckpointContents {
  int64_t step = 0;  // optimizer steps done
  nlohmann::ordered_json trainer_state;  // step, epoch, position, loss, ...
  nlohmann::ordered_json config;         // the resolved TrainConfig
};

std::filesystem::path checkpoints_dir(const std::filesystem::path& output_dir);
// The newest complete checkpoint, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& output_dir);

struct SaveRequest {
  const model::Model* model = nullptr;                 // full weights (rank 0's are written)
  std::map<std::string, at::Tensor> optimizer_state;   // this rank's
  CheckpointContents contents;
  std::optional<std::filesystem::path> tokenizer;      // copied into the model folder
  int64_t keep_last = 2;
  int64_t pause_before_commit_ms = 0;
};

// Collective: every rank calls it. Returns the committed folder.
std::filesystem::path save_checkpoint(const std::filesystem::path& output_dir, const SaveRequest& req, Communicator& comm);

// This rank's optimizer state from a checkpoint, checked against the world size it was written with.
std::map<std::string, at::Tensor> load_optimizer_state(const std::filesystem::path& ckpt, int rank, int world);
CheckpointContents load_checkpoint_contents(const std::filesystem::path& ckpt);

}  // namespace chatmill::train
