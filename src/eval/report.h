// The results table of an evaluation sweep: one row per checkpoint, the headline number of each benchmark, and
// the per-category breakdowns, as JSON (everything), markdown (the table) and one self-contained HTML page
// (the table and per-category bars).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace chatmill::eval {

struct ReportRow {
  std::string label;              // e.g. "step-000040"
  std::string path;               // the checkpoint folder
  nlohmann::ordered_json results;  // run_eval_suite's output
};

// Writes DIR/report.json, DIR/report.md and DIR/report.html.
void write_report(const std::vector<ReportRow>& rows, const std::filesystem::path& dir, const std::string& title);

// The headline columns of a row: (column name, value or null).
std::vector<std::pair<std::string, nlohmann::ordered_json>> headline(const nlohmann::ordered_json& results);

}  // namespace chatmill::eval
