// Streams the lines of a text file, plain or compressed (.gz with zlib, .zst with libzstd), in bounded memory.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace chatmill::data {

class LineReader {
 public:
  // The decompressor is chosen by the file name's ending; throws chatmill::Error naming the file.
  static std::unique_ptr<LineReader> open(const std::filesystem::path& path);
  virtual ~LineReader() = default;

  // The next line without its '\n' (and '\r'); false at the end of the file.
  bool next(std::string& line);
  int64_t line_number() const { return line_no_; }  // 1-based number of the last line returned
  const std::filesystem::path& path() const { return path_; }

 protected:
  explicit LineReader(std::filesystem::path path) : path_(std::move(path)) {}
  // Fills up to n bytes; returns 0 at the end. Throws on corrupt input.
  virtual size_t read_some(char* out, size_t n) = 0;

 private:
  std::filesystem::path path_;
  std::vector<char> buf_ = std::vector<char>(1 << 20);
  size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  int64_t line_no_ = 0;
};

}  // namespace chatmill::data
