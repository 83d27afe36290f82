#include "data/line_reader.h"

#include <zlib.h>
#include <zstd.h>

#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace chatmill::data {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class PlainReader : public LineReader {
 public:
  explicit PlainReader(const std::filesystem::path& p) : LineReader(p), f_(std::fopen(p.c_str(), "rb")) {
    CHATMILL_CHECK(f_ != nullptr, "cannot open ", p, ": ", std::strerror(errno));
  }
  ~PlainReader() override { std::fclose(f_); }

 protected:
  size_t read_some(char* out, size_t n) override {
    size_t got = std::fread(out, 1, n, f_);
    CHATMILL_CHECK(got > 0 || !std::ferror(f_), "read error in ", path());
    return got;
  }

 private:
  FILE* f_;
};

class GzipReader : public LineReader {
 public:
  explicit GzipReader(const std::filesystem::path& p) : LineReader(p), f_(gzopen(p.c_str(), "rb")) {
    CHATMILL_CHECK(f_ != nullptr, "cannot open ", p, ": ", std::strerror(errno));
    gzbuffer(f_, 1 << 18);
  }
  ~GzipReader() override { gzclose(f_); }

 protected:
  size_t read_some(char* out, size_t n) override {
    int got = gzread(f_, out, static_cast<unsigned>(n));
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(f_, &code);
      CHATMILL_FAIL("corrupt gzip data in ", path(), ": ", msg);
    }
    return static_cast<size_t>(got);
  }

 private:
  gzFile f_;
};

class ZstdReader : public LineReader {
 public:
  explicit ZstdReader(const std::filesystem::path& p)
      : LineReader(p), f_(std::fopen(p.c_str(), "rb")), ctx_(ZSTD_createDCtx()), in_(ZSTD_DStreamInSize()) {
    CHATMILL_CHECK(f_ != nullptr, "cannot open ", p, ": ", std::strerror(errno));
  }
  ~ZstdReader() override {
    std::fclose(f_);
    ZSTD_freeDCtx(ctx_);
  }

 protected:
  size_t read_some(char* out, size_t n) override {
    ZSTD_outBuffer output{out, n, 0};
    while (output.pos == 0) {
      if (input_.pos == input_.size) {
        input_ = {in_.data(), std::fread(in_.data(), 1, in_.size(), f_), 0};
        if (input_.size == 0) {
          CHATMILL_CHECK(last_ret_ == 0, "truncated zstd stream in ", path());
          return 0;
        }
      }
      last_ret_ = ZSTD_decompressStream(ctx_, &output, &input_);
      CHATMILL_CHECK(!ZSTD_isError(last_ret_), "corrupt zstd data in ", path(), ": ", ZSTD_getErrorName(last_ret_));
    }
    return output.pos;
  }

 private:
  FILE* f_;
  ZSTD_DCtx* ctx_;
  std::vector<char> in_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  size_t last_ret_ = 0;
};

}  // namespace

std::unique_ptr<LineReader> LineReader::open(const std::filesystem::path& path) {
  CHATMILL_CHECK(std::filesystem::is_regular_file(path), "input file ", path, " does not exist");
  const std::string name = path.string();
  if (ends_with(name, ".gz")) return std::make_unique<GzipReader>(path);
  if (ends_with(name, ".zst") || ends_with(name, ".zstd")) return std::make_unique<ZstdReader>(path);
  return std::make_unique<PlainReader>(path);
}

bool LineReader::next(std::string& line) {
  line.clear();
  while (true) {
    char* start = buf_.data() + begin_;
    char* nl = static_cast<char*>(std::memchr(start, '\n', end_ - begin_));
    if (nl != nullptr) {
      line.append(start, nl);
      begin_ = static_cast<size_t>(nl - buf_.data()) + 1;
      break;
    }
    line.append(start, buf_.data() + end_);
    begin_ = end_ = 0;
    if (eof_) {
      if (line.empty()) return false;
      break;  // a last line without '\n'
    }
    end_ = read_some(buf_.data(), buf_.size());
    eof_ = end_ == 0;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  ++line_no_;
  return true;
}

}  // namespace chatmill::data
