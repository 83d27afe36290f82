// Reads LMSYS-Chat-1M records from JSON Lines (plain, .gz, .zst), validating every field.
// Parquet shards are converted first with scripts/parquet_to_jsonl.py (no Arrow C++ in Debian 12).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "data/record.h"

namespace chatmill::data {

// What a run does with a record that fails validation.
enum class OnBadRecord { Fail, Skip };
OnBadRecord parse_on_bad_record(const std::string& s);  // "fail" | "skip"

// A record that failed validation: `reason` is a stable key for counting
// (malformed_json, missing_field, wrong_type, bad_value, roles_not_alternating, moderation_length).
struct RecordError {
  std::string reason;
  std::string field;  // e.g. "openai_moderation[3].categories.hate"
  std::string message;
};

// Skipped records, counted by reason, with the first few messages kept for the report.
struct ReadReport {
  int64_t records = 0;  // accepted
  int64_t skipped = 0;
  std::map<std::string, int64_t> skipped_by_reason;
  std::vector<std::string> examples;  // "file:line: field: message", at most 20
  void add_skip(const std::string& where, const RecordError& e);
  std::string summary() const;  // one line per reason
};

class LmsysParser;  // holds the JSON parser's buffers between records

// Streams every record of `files` to `fn`. With OnBadRecord::Fail the first bad record throws
// chatmill::Error "file:line: field: message"; with Skip it is counted in `report`.
void read_lmsys(const std::vector<std::filesystem::path>& files, OnBadRecord policy, ReadReport& report,
                const std::function<void(Conversation&&)>& fn);

// Parses one record (exposed for tests). Returns false and fills `err` when the record is bad.
bool parse_lmsys_line(std::string& line, Conversation& out, RecordError& err);

// LMSYS-Chat-1M's JSON for a conversation (key order of the release; shortest round-trip floats).
std::string lmsys_to_json(const Conversation& c);

}  // namespace chatmill::data
