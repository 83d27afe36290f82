#include "model/safetensors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "common/error.h"

namespace chatmill::model {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;  // the format's own limit

const std::vector<std::pair<std::string, at::ScalarType>>& dtype_table() {
  static const std::vector<std::pair<std::string, at::ScalarType>> table = {
      {"BOOL", at::kBool},   {"U8", at::kByte},     {"I8", at::kChar},       {"I16", at::kShort},
      {"U16", at::kUInt16},  {"I32", at::kInt},     {"U32", at::kUInt32},    {"I64", at::kLong},
      {"U64", at::kUInt64},  {"F16", at::kHalf},    {"BF16", at::kBFloat16}, {"F32", at::kFloat},
      {"F64", at::kDouble},  {"F8_E4M3", at::kFloat8_e4m3fn}, {"F8_E5M2", at::kFloat8_e5m2}};
  return table;
}

std::string known_dtypes() {
  std::string s;
  for (auto& [name, _] : dtype_table()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

}  // namespace

bool scalar_type_from_safetensors(const std::string& dtype, at::ScalarType& out) {
  for (auto& [name, t] : dtype_table())
    if (name == dtype) {
      out = t;
      return true;
    }
  return false;
}

std::string safetensors_dtype_name(at::ScalarType t) {
  for (auto& [name, s] : dtype_table())
    if (s == t) return name;
  CHATMILL_FAIL("dtype ", t, " cannot be stored in safetensors");
}

SafetensorsReader SafetensorsReader::open(const std::filesystem::path& path) {
  SafetensorsReader r;
  r.file_ = MappedFile::open(path);
  const uint64_t size = r.file_->size();
  const std::string where = path.string();
  CHATMILL_CHECK(size >= 8, "truncated safetensors file ", where, ": it is ", size,
                 " bytes, but the format starts with an 8-byte header length");
  uint64_t n = 0;
  std::memcpy(&n, r.file_->data(), 8);  // little-endian on every platform chatmill runs on
  CHATMILL_CHECK(n <= kMaxHeaderBytes, "bad safetensors file ", where, ": header length ", n,
                 " exceeds the format's 100 MB limit (corrupt file, or not a safetensors file)");
  CHATMILL_CHECK(8 + n <= size, "bad safetensors file ", where, ": header length ", n,
                 " runs past the end of the file (", size, " bytes); the file is truncated or not safetensors");
  r.data_start_ = 8 + n;
  const uint64_t data_size = size - r.data_start_;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(r.file_->data()) + 8,
                                   reinterpret_cast<const char*>(r.file_->data()) + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    CHATMILL_FAIL("malformed JSON header in safetensors file ", where, ": ", e.what());
  }
  CHATMILL_CHECK(header.is_object(), "bad safetensors file ", where, ": the header must be a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      CHATMILL_CHECK(v.is_object(), "bad safetensors file ", where, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        CHATMILL_CHECK(m.value().is_string(), "bad safetensors file ", where, ": __metadata__ value '", m.key(),
                       "' is not a string");
        r.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string ctx = detail::concat("safetensors file ", where, ", tensor '", name, "'");
    CHATMILL_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
                   "bad ", ctx, ": each entry needs dtype, shape and data_offsets");
    SafetensorInfo t;
    t.name = name;
    CHATMILL_CHECK(v["dtype"].is_string(), "bad ", ctx, ": dtype must be a string");
    t.dtype = v["dtype"].get<std::string>();
    CHATMILL_CHECK(scalar_type_from_safetensors(t.dtype, t.scalar_type), "bad ", ctx, ": unknown dtype '", t.dtype,
                   "' (known: ", known_dtypes(), ")");
    const auto& shape = v["shape"];
    CHATMILL_CHECK(shape.is_array(), "bad ", ctx, ": shape must be a list of integers");
    uint64_t numel = 1;
    for (const auto& d : shape) {
      CHATMILL_CHECK(d.is_number_unsigned(), "bad ", ctx, ": shape ", shape.dump(), " has a non-integer or negative entry");
      const uint64_t n = d.get<uint64_t>();
      CHATMILL_CHECK(n == 0 || numel <= (uint64_t{1} << 62) / n, "bad ", ctx, ": shape ", shape.dump(),
                     " is impossibly large");
      t.shape.push_back(static_cast<int64_t>(n));
      numel *= n;
    }
    const auto& off = v["data_offsets"];
    CHATMILL_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                   "bad ", ctx, ": data_offsets must be two non-negative integers [begin, end)");
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    CHATMILL_CHECK(t.begin <= t.end, "bad ", ctx, ": data_offsets [", t.begin, ", ", t.end, ") has begin > end");
    CHATMILL_CHECK(t.end <= data_size, "bad ", ctx, ": data_offsets [", t.begin, ", ", t.end,
                   ") run past the end of the data buffer (", data_size, " bytes); the file is truncated");
    const uint64_t need = numel * at::elementSize(t.scalar_type);
    CHATMILL_CHECK(t.end - t.begin == need, "bad ", ctx, ": data_offsets cover ", t.end - t.begin,
                   " bytes but dtype ", t.dtype, " and shape ", shape.dump(), " need ", need);
    r.tensors_.push_back(std::move(t));
  }

  // No two tensors may share bytes.
  std::vector<const SafetensorInfo*> by_offset;
  for (auto& t : r.tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto* a = by_offset[i - 1];
    const auto* b = by_offset[i];
    CHATMILL_CHECK(b->begin >= a->end || b->begin == b->end || a->begin == a->end, "bad safetensors file ", where,
                   ": tensors '", a->name, "' [", a->begin, ", ", a->end, ") and '", b->name, "' [", b->begin, ", ",
                   b->end, ") overlap");
  }
  for (size_t i = 0; i < r.tensors_.size(); ++i) r.index_[r.tensors_[i].name] = i;
  return r;
}

const SafetensorInfo* SafetensorsReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

at::Tensor SafetensorsReader::view(const SafetensorInfo& t) const {
  const uint8_t* p = file_->data() + data_start_ + t.begin;
  const size_t elem = at::elementSize(t.scalar_type);
  if (t.end == t.begin) return at::empty(t.shape, at::TensorOptions().dtype(t.scalar_type));
  if (reinterpret_cast<uintptr_t>(p) % elem != 0) {
    // Offsets need not be aligned: copy misaligned tensors instead of handing kernels a bad pointer.
    at::Tensor out = at::empty(t.shape, at::TensorOptions().dtype(t.scalar_type));
    std::memcpy(out.data_ptr(), p, t.end - t.begin);
    return out;
  }
  auto keep = file_;  // the view keeps the mapping alive
  return at::from_blob(const_cast<uint8_t*>(p), t.shape, [keep](void*) {},
                       at::TensorOptions().dtype(t.scalar_type));
}

void SafetensorsReader::release(const SafetensorInfo& t) const {
  file_->release(data_start_ + t.begin, t.end - t.begin);
}

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors, at::ScalarType dtype,
                       const std::map<std::string, std::string>& metadata) {
  auto stored = [dtype](const at::Tensor& t) { return dtype == at::ScalarType::Undefined ? t.scalar_type() : dtype; };
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    CHATMILL_CHECK(!header.contains(name), "cannot write ", path, ": tensor name '", name, "' appears twice");
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * at::elementSize(stored(t));
    header[name] = {{"dtype", safetensors_dtype_name(stored(t))},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as the reference writer does
  const uint64_t n = json.size();

  const std::filesystem::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    CHATMILL_CHECK(out, "cannot create ", tmp, ": check that the folder exists and is writable");
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(json.data(), static_cast<std::streamsize>(n));
    for (const auto& [name, t] : tensors) {
      at::Tensor c = t.detach().to(at::kCPU, stored(t)).contiguous();
      out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
    }
    out.flush();
    CHATMILL_CHECK(out, "failed writing ", tmp, " (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace chatmill::model
