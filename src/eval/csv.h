// RFC 4180 CSV (the MMLU files): comma-separated, double-quoted fields may hold commas, newlines and doubled
// quotes. Errors name the file and line.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace chatmill::eval {

struct CsvRow {
  int64_t line = 0;  // 1-based line where the row starts
  std::vector<std::string> fields;
};

std::vector<CsvRow> read_csv(const std::filesystem::path& file);
std::vector<CsvRow> parse_csv(const std::string& text, const std::string& source);

}  // namespace chatmill::eval
