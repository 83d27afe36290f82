// What a run reports: one JSON line per logged step (metrics.jsonl), a progress bar with ETA when stderr is a
// terminal, and a loss-curve plot (loss.svg) at the end.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace chatmill::train {

class MetricsLog {
 public:
  // Appends to OUT/metrics.jsonl (a resumed run continues the same file).
  MetricsLog(const std::filesystem::path& output_dir, bool progress_bar, int64_t total_steps, int64_t first_step);
  void log(const nlohmann::ordered_json& record);   // one line, flushed
  void progress(int64_t step, double loss, double lr);  // redraws the bar (terminal only)
  void finish();                                     // ends the bar; writes loss.svg from the whole log

 private:
  std::filesystem::path dir_;
  std::ofstream out_;
  bool bar_;
  int64_t total_, first_;
  std::chrono::steady_clock::time_point start_;
};

// A line chart of y against x, as SVG.
std::string line_chart_svg(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<double>& x, const std::vector<double>& y);

}  // namespace chatmill::train
