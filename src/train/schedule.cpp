#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace chatmill::train {

int64_t warmup_steps(const ScheduleConfig& s, int64_t total_steps) {
  if (s.warmup_steps >= 0) return s.warmup_steps;
  return static_cast<int64_t>(std::ceil(s.warmup_ratio * static_cast<double>(total_steps)));  // HF's get_warmup_steps
}

double lr_at(const ScheduleConfig& s, double base_lr, int64_t step, int64_t total_steps) {
  const int64_t warm = warmup_steps(s, total_steps);
  if (step < warm) return base_lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warm));
  double factor = 1.0;
  const double progress = static_cast<double>(step - warm) / static_cast<double>(std::max<int64_t>(1, total_steps - warm));
  if (s.kind == Schedule::Cosine) factor = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  else if (s.kind == Schedule::Linear) factor = std::max(0.0, static_cast<double>(total_steps - step) /
                                                                   static_cast<double>(std::max<int64_t>(1, total_steps - warm)));
  return base_lr * (s.min_lr_ratio + (1.0 - s.min_lr_ratio) * factor);
}

}  // namespace chatmill::train
