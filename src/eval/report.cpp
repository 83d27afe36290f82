#include "eval/report.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "common/error.h"

namespace chatmill::eval {

namespace fs = std::filesystem;

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string fmt(const nlohmann::ordered_json& v) {
  if (!v.is_number()) return "–";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v.get<double>());
  return buf;
}

// Per-category numbers of each benchmark: (chart title, max value, {category: value}).
struct Breakdown {
  std::string title;
  double max = 1;
  std::map<std::string, nlohmann::ordered_json> values;
};

std::vector<Breakdown> breakdowns(const nlohmann::ordered_json& r) {
  std::vector<Breakdown> out;
  if (r.contains("mmlu") && r["mmlu"].contains("categories")) {
    Breakdown b{"MMLU accuracy by category", 1, {}};
    for (auto& [k, v] : r["mmlu"]["categories"].items()) b.values[k] = v.is_object() ? v.value("accuracy", nlohmann::ordered_json()) : v;
    out.push_back(b);
  }
  if (r.contains("mt_bench") && r["mt_bench"].contains("per_category")) {
    Breakdown b{"MT-Bench score by category (1-10)", 10, {}};
    for (auto& [k, v] : r["mt_bench"]["per_category"].items()) b.values[k] = v;
    out.push_back(b);
  }
  if (r.contains("moderation"))
    for (auto& [shots, m] : r["moderation"].items()) {
      Breakdown b{"Moderation F1 by category (" + shots + ")", 1, {}};
      for (auto& [k, v] : m["per_category"].items()) b.values[k] = v["f1"];
      out.push_back(b);
    }
  if (r.contains("jailbreak") && r["jailbreak"].contains("per_source_model")) {
    Breakdown b{"Jailbreak success rate by source model", 1, {}};
    for (auto& [k, v] : r["jailbreak"]["per_source_model"].items()) b.values[k] = v["success_rate"];
    out.push_back(b);
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, nlohmann::ordered_json>> headline(const nlohmann::ordered_json& r) {
  std::vector<std::pair<std::string, nlohmann::ordered_json>> h;
  if (r.contains("mmlu")) {
    h.emplace_back("MMLU micro", r["mmlu"].value("micro_accuracy", nlohmann::ordered_json()));
    h.emplace_back("MMLU macro", r["mmlu"].value("macro_accuracy", nlohmann::ordered_json()));
  }
  if (r.contains("mt_bench")) {
    const auto& m = r["mt_bench"];
    if (m.value("mode", "") == "pairwise") {
      h.emplace_back("MT-Bench win rate", m.value("win_rate", nlohmann::ordered_json()));
    } else {
      h.emplace_back("MT-Bench", m.value("score", nlohmann::ordered_json()));
      h.emplace_back("MT-Bench turn 1", m.value("turn_1", nlohmann::ordered_json()));
      h.emplace_back("MT-Bench turn 2", m.value("turn_2", nlohmann::ordered_json()));
      h.emplace_back("MT-Bench unparsed", m.value("invalid", nlohmann::ordered_json()));
    }
  }
  if (r.contains("moderation"))
    for (auto& [shots, m] : r["moderation"].items()) h.emplace_back("Moderation F1 " + shots, m["micro_f1"]);
  if (r.contains("jailbreak")) h.emplace_back("Jailbreak success", r["jailbreak"]["success_rate"]);
  return h;
}

void write_report(const std::vector<ReportRow>& rows, const fs::path& dir, const std::string& title) {
  fs::create_directories(dir);
  nlohmann::ordered_json all = {{"title", title}, {"rows", nlohmann::ordered_json::array()}};
  for (const auto& r : rows) all["rows"].push_back({{"checkpoint", r.label}, {"path", r.path}, {"results", r.results}});
  std::ofstream(dir / "report.json") << all.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";

  // Columns: the union of every row's headline, in first-seen order.
  std::vector<std::string> cols;
  std::set<std::string> seen;
  for (const auto& r : rows)
    for (const auto& [c, _] : headline(r.results))
      if (seen.insert(c).second) cols.push_back(c);
  auto value = [](const nlohmann::ordered_json& res, const std::string& col) {
    for (const auto& [c, v] : headline(res))
      if (c == col) return v;
    return nlohmann::ordered_json();
  };

  std::ofstream md(dir / "report.md");
  CHATMILL_CHECK(md, "cannot write ", dir / "report.md");
  md << "# " << title << "\n\n| checkpoint |";
  for (const auto& c : cols) md << " " << c << " |";
  md << "\n|---|";
  for (size_t i = 0; i < cols.size(); ++i) md << "---:|";
  md << "\n";
  for (const auto& r : rows) {
    md << "| " << r.label << " |";
    for (const auto& c : cols) md << " " << fmt(value(r.results, c)) << " |";
    md << "\n";
  }
  for (const auto& r : rows)
    for (const auto& b : breakdowns(r.results)) {
      md << "\n## " << r.label << ": " << b.title << "\n\n| category | value |\n|---|---:|\n";
      for (const auto& [k, v] : b.values) md << "| " << k << " | " << fmt(v) << " |\n";
    }

  std::ofstream html(dir / "report.html");
  CHATMILL_CHECK(html, "cannot write ", dir / "report.html");
  html << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" << esc(title) << "</title><style>"
       << "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
       << "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
       << ".chart{margin:1em 0}.row{display:flex;align-items:center;margin:2px 0}.lab{width:220px;font-size:13px}"
       << ".bar{background:#4a7bd0;height:14px}.val{margin-left:6px;font-size:12px}.ck{display:inline-block;"
       << "vertical-align:top;margin-right:3em}</style></head><body>\n<h1>" << esc(title) << "</h1>\n<table><tr><th>checkpoint</th>";
  for (const auto& c : cols) html << "<th>" << esc(c) << "</th>";
  html << "</tr>\n";
  for (const auto& r : rows) {
    html << "<tr><td title=\"" << esc(r.path) << "\">" << esc(r.label) << "</td>";
    for (const auto& c : cols) html << "<td>" << fmt(value(r.results, c)) << "</td>";
    html << "</tr>\n";
  }
  html << "</table>\n";
  for (const auto& r : rows) {
    html << "<h2>" << esc(r.label) << "</h2>\n";
    for (const auto& b : breakdowns(r.results)) {
      html << "<div class=\"ck chart\"><h3>" << esc(b.title) << "</h3>\n";
      for (const auto& [k, v] : b.values) {
        const double x = v.is_number() ? std::max(0.0, std::min(1.0, v.get<double>() / b.max)) : 0.0;
        html << "<div class=\"row\"><span class=\"lab\">" << esc(k) << "</span><span class=\"bar\" style=\"width:"
             << static_cast<int>(x * 300) << "px\"></span><span class=\"val\">" << fmt(v) << "</span></div>\n";
      }
      html << "</div>\n";
    }
  }
  html << "<p>Full results, settings and provenance: report.json; each benchmark's files beside it.</p></body></html>\n";
}

}  // namespace chatmill::eval
