// SHA-256 of files and strings (OpenSSL), as lowercase hex: manifests and tokenizer identity.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace chatmill {

std::string sha256_file(const std::filesystem::path& path);
std::string sha256_string(std::string_view data);

}  // namespace chatmill
