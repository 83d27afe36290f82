// Learning-rate schedules with linear warmup, as HF transformers defines them (get_cosine_schedule_with_warmup,
// get_linear_schedule_with_warmup, get_constant_schedule_with_warmup), plus a floor (min_lr_ratio).
#pragma once
#include <cstdint>

#include "train/config.h"

namespace chatmill::train {

int64_t warmup_steps(const ScheduleConfig& s, int64_t total_steps);
// The learning rate used for optimizer step `step` (0-based) of `total_steps`.
double lr_at(const ScheduleConfig& s, double base_lr, int64_t step, int64_t total_steps);

}  // namespace chatmill::train
