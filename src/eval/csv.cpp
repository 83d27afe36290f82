#include "eval/csv.h"

#include <fstream>
#include <sstream>

#include "common/error.h"

namespace chatmill::eval {

std::vector<CsvRow> parse_csv(const std::string& text, const std::string& source) {
  std::vector<CsvRow> rows;
  CsvRow row;
  std::string field;
  bool quoted = false, field_started = false, after_quote = false;
  int64_t line = 1;
  row.line = 1;
  auto end_field = [&] {
    row.fields.push_back(std::move(field));
    field.clear();
    field_started = after_quote = false;
  };
  auto end_row = [&] {
    end_field();
    if (!(row.fields.size() == 1 && row.fields[0].empty())) rows.push_back(std::move(row));  // skip blank lines
    row = CsvRow{};
    row.line = line;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
          after_quote = true;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      CHATMILL_CHECK(!field_started, source, ":", line, ": a quote inside an unquoted field; quote the whole field");
      quoted = field_started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      ++line;
      end_row();
    } else {
      CHATMILL_CHECK(!after_quote, source, ":", line, ": text after a closing quote");
      field += c;
      field_started = true;
    }
  }
  CHATMILL_CHECK(!quoted, source, ":", row.line, ": a quoted field is never closed");
  if (!field.empty() || !row.fields.empty() || field_started) end_row();
  return rows;
}

std::vector<CsvRow> read_csv(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  CHATMILL_CHECK(in, "cannot read ", file);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_csv(ss.str(), file.string());
}

}  // namespace chatmill::eval
