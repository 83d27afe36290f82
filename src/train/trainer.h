// `chatmill train`: load, set up, loop (data -> forward/backward -> communicate -> clip -> step -> log ->
// checkpoint), save, report.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "train/config.h"
#include "train/parallel/dist_env.h"

namespace chatmill::train {

struct TrainSummary {
  int64_t steps = 0;            // optimizer steps done (all of the run, resumed ones included)
  int64_t first_step = 0;       // where this process started (0, or the resumed checkpoint's step)
  double first_loss = 0, last_loss = 0;
  std::filesystem::path final_checkpoint;
  int64_t skipped_steps = 0;    // non-finite steps skipped
};

TrainSummary run_training(const TrainConfig& cfg, const DistEnv& env);

}  // namespace chatmill::train
