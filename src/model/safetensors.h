// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON naming each tensor's
// dtype, shape and [begin, end) byte range in the data buffer that follows.
#pragma once
#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/mapped_file.h"

namespace chatmill::model {

struct SafetensorInfo {
  std::string name;
  std::string dtype;  // as written in the file: "F32", "BF16", ...
  at::ScalarType scalar_type;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data buffer
  uint64_t end = 0;
};

// Memory-maps a file and validates its whole header before any tensor is used.
class SafetensorsReader {
 public:
  // Throws chatmill::Error naming the file (and tensor) on every malformed input.
  static SafetensorsReader open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_->path(); }
  const std::vector<SafetensorInfo>& tensors() const { return tensors_; }
  const SafetensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A CPU tensor viewing the mapped bytes (no copy). Read-only memory: copy it before writing.
  at::Tensor view(const SafetensorInfo& t) const;
  // Drops the tensor's pages from this process's resident memory once they have been copied.
  void release(const SafetensorInfo& t) const;

 private:
  std::shared_ptr<MappedFile> file_;
  uint64_t data_start_ = 0;
  std::vector<SafetensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// "F32" <-> at::kFloat and the rest; unknown names return false.
bool scalar_type_from_safetensors(const std::string& dtype, at::ScalarType& out);
std::string safetensors_dtype_name(at::ScalarType t);

// Writes tensors (any device; each is copied to the CPU, and cast to `dtype` unless Undefined, in turn, so
// memory holds one tensor at a time) through a temporary file renamed into place, so a reader never sees a
// half-written file.
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       at::ScalarType dtype = at::ScalarType::Undefined,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace chatmill::model
