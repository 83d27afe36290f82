// `chatmill train`: load, set up, loop (data -> forward/backward -> communicate -> clip -> step -> log ->
// checkpoint), save, report.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
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
  bool stopped = false;         // a stop was asked for: the run saved where it was and left before `total`
};

// `stop_requested`, polled once per step on every rank (the ranks agree through the step's first collective,
// so all stop at the same step): when it says true anywhere, the run saves a checkpoint and returns early.
TrainSummary run_training(const TrainConfig& cfg, const DistEnv& env,
                          const std::function<bool()>& stop_requested = {});

}  // namespace chatmill::train
