#include "op_profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <vector>

#include "common/error.h"

namespace chatmill::bench {

namespace {

namespace prof = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;

std::set<ActivityType> activities(bool cuda) {
  std::set<ActivityType> a{ActivityType::CPU};
  if (cuda) a.insert(ActivityType::CUDA);
  return a;
}

struct Total {
  int64_t calls = 0;
  double us = 0;
};

// Rows sorted by time, largest first; a kernel's long template name is cut to keep the table readable.
void write_table(std::ofstream& out, const std::string& title, const std::map<std::string, Total>& rows,
                 int64_t steps, int top) {
  std::vector<std::pair<std::string, Total>> sorted(rows.begin(), rows.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.us > b.second.us; });
  double all = 0;
  for (const auto& r : sorted) all += r.second.us;
  char total[64];
  std::snprintf(total, sizeof total, "%.2f", all / static_cast<double>(steps) / 1e3);
  out << "### " << title << ": " << total << " ms per step\n\n"
      << "| name | calls per step | us per step | share |\n|---|---|---|---|\n";
  for (int i = 0; i < top && i < static_cast<int>(sorted.size()); ++i) {
    std::string name = sorted[i].first;
    if (name.size() > 110) name = name.substr(0, 107) + "...";
    for (char& c : name)
      if (c == '|') c = '/';
    const double us = sorted[i].second.us / static_cast<double>(steps);
    char numbers[96];
    std::snprintf(numbers, sizeof numbers, " | %g | %.1f | %.1f%% |\n",
                  static_cast<double>(sorted[i].second.calls) / static_cast<double>(steps), us,
                  all > 0 ? 100 * sorted[i].second.us / all : 0.0);
    out << "| " << name << numbers;
  }
  out << "\n";
}

}  // namespace

OpProfile::OpProfile(bool cuda) : cuda_(cuda) {
  const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
  prof::prepareProfiler(config, activities(cuda_));
  prof::enableProfiler(config, activities(cuda_));
  running_ = true;
}

OpProfile::~OpProfile() {
  if (running_) prof::disableProfiler();
}

void OpProfile::finish(const std::string& path, int64_t steps, int top) {
  CHATMILL_CHECK(running_, "OpProfile::finish called twice");
  running_ = false;
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
  std::map<std::string, Total> gpu, cpu;
  for (const prof::KinetoEvent& e : result->events()) {
    auto& table = e.deviceType() == c10::DeviceType::CUDA ? gpu : cpu;
    Total& t = table[e.name()];
    t.calls += 1;
    t.us += static_cast<double>(e.durationNs()) / 1e3;
  }
  std::ofstream out(path);
  CHATMILL_CHECK(out.good(), "cannot write the profile to ", path, ": check that its folder exists and is writable");
  out << "Profile of " << steps << " step(s), per step.\n\n";
  if (cuda_) write_table(out, "GPU kernels and copies (busy time)", gpu, std::max<int64_t>(steps, 1), top);
  write_table(out, "CPU operators (inclusive: nested calls overlap)", cpu, std::max<int64_t>(steps, 1), top);
}

}  // namespace chatmill::bench
