// A read-only memory map of a whole file, shared by the tensors that view it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace chatmill {

class MappedFile {
 public:
  // Throws chatmill::Error naming the path when the file cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // Tells the kernel the pages of [offset, offset+length) are no longer needed, so a loader that has
  // copied them out does not hold the file twice in resident memory.
  void release(uint64_t offset, uint64_t length) const;

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace chatmill
