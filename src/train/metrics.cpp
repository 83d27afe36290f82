#include "train/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include "common/error.h"

namespace chatmill::train {

namespace fs = std::filesystem;

MetricsLog::MetricsLog(const fs::path& output_dir, bool progress_bar, int64_t total_steps, int64_t first_step)
    : dir_(output_dir), bar_(progress_bar && ::isatty(STDERR_FILENO)), total_(total_steps), first_(first_step),
      start_(std::chrono::steady_clock::now()) {
  fs::create_directories(dir_);
  out_.open(dir_ / "metrics.jsonl", std::ios::app);
  CHATMILL_CHECK(out_, "cannot write ", dir_ / "metrics.jsonl");
}

void MetricsLog::log(const nlohmann::ordered_json& record) {
  out_ << record.dump() << "\n";
  out_.flush();
}

namespace {

std::string clock(double seconds) {
  const int s = static_cast<int>(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%02d:%02d", s / 60, s % 60);
  return buf;
}

}  // namespace

void MetricsLog::progress(int64_t step, double loss, double lr) {
  if (!bar_) return;
  const double done = static_cast<double>(step + 1) / static_cast<double>(std::max<int64_t>(total_, 1));
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = static_cast<double>(step + 1 - first_) / std::max(elapsed, 1e-9);
  const double eta = static_cast<double>(total_ - step - 1) / std::max(rate, 1e-9);
  const int width = 30, filled = static_cast<int>(done * width);
  std::string bar(filled, '#');
  bar.resize(width, '.');
  char buf[256];
  std::snprintf(buf, sizeof buf, "\r[%s] %lld/%lld loss %.4f lr %.2e %s<%s ", bar.c_str(),
                static_cast<long long>(step + 1), static_cast<long long>(total_), loss, lr, clock(elapsed).c_str(),
                clock(eta).c_str());
  std::cerr << buf << std::flush;
}

void MetricsLog::finish() {
  if (bar_) std::cerr << "\n";
  out_.close();
  // The whole log, the last record of each step winning (a resumed run repeats the steps after its checkpoint).
  std::map<int64_t, double> loss;
  std::ifstream in(dir_ / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("step") && j.contains("loss") && j["loss"].is_number())
      loss[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  std::vector<double> x, y;
  for (const auto& [s, l] : loss) {
    x.push_back(static_cast<double>(s));
    y.push_back(l);
  }
  std::ofstream(dir_ / "loss.svg") << line_chart_svg("Training loss", "step", "loss", x, y);
}

std::string line_chart_svg(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<double>& x, const std::vector<double>& y) {
  const int W = 640, H = 400, left = 60, right = 20, top = 40, bottom = 50;
  double x0 = x.empty() ? 0 : *std::min_element(x.begin(), x.end());
  double x1 = x.empty() ? 1 : *std::max_element(x.begin(), x.end());
  double y0 = y.empty() ? 0 : *std::min_element(y.begin(), y.end());
  double y1 = y.empty() ? 1 : *std::max_element(y.begin(), y.end());
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  auto px = [&](double v) { return left + (v - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double v) { return H - bottom - (v - y0) / (y1 - y0) * (H - top - bottom); };
  char buf[256];
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"400\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"10\" y=\"24\" font-size=\"16\" font-weight=\"bold\">" + title + "</text>\n";
  std::snprintf(buf, sizeof buf, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left, H - bottom, W - right, H - bottom);
  s += buf;
  std::snprintf(buf, sizeof buf, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left, top, left, H - bottom);
  s += buf;
  for (int i = 0; i <= 4; ++i) {  // y ticks
    const double v = y0 + (y1 - y0) * i / 4;
    std::snprintf(buf, sizeof buf, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", left - 6, py(v) + 4, v);
    s += buf;
  }
  for (int i = 0; i <= 4; ++i) {  // x ticks
    const double v = x0 + (x1 - x0) * i / 4;
    std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n", px(v), H - bottom + 18, v);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", (W + left) / 2, H - 10, x_label.c_str());
  s += buf;
  std::snprintf(buf, sizeof buf, "<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">%s</text>\n", H / 2, H / 2, y_label.c_str());
  s += buf;
  std::string pts;
  for (size_t i = 0; i < x.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(x[i]), py(y[i]));
    pts += buf;
  }
  s += "<polyline fill=\"none\" stroke=\"#4C72B0\" stroke-width=\"2\" points=\"" + pts + "\"/>\n";
  return s + "</svg>\n";
}

}  // namespace chatmill::train
