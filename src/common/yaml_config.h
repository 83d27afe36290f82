// Typed reading of YAML config files: every problem (unknown key, wrong type, missing key) is collected
// with its file and line, and all are reported together. `key.sub=value` overrides apply before reading.
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace chatmill {

class ConfigErrors {
 public:
  void add(const std::string& e) { items_.push_back(e); }
  bool empty() const { return items_.empty(); }
  // Throws chatmill::Error listing every problem.
  void throw_if_any(const std::string& what) const;

 private:
  std::vector<std::string> items_;
};

// One mapping of the file. read() marks a key as known; check_unknown() reports the rest.
class YamlObject {
 public:
  YamlObject(YAML::Node node, std::string path, std::string file, std::shared_ptr<ConfigErrors> errors);

  // T: bool, int, int64_t, uint64_t, double, std::string, std::vector<std::string>. Absent and not required:
  // `out` keeps its default.
  template <typename T>
  void read(const std::string& key, T& out, bool required = false);
  bool has(const std::string& key) const;
  YamlObject object(const std::string& key);  // an absent key gives an empty object
  void check_unknown();
  ConfigErrors& errors() { return *errors_; }
  std::string where(const std::string& key) const;  // "file:line: path.key"

 private:
  YAML::Node node_;
  std::string path_, file_;
  std::shared_ptr<ConfigErrors> errors_;
  std::set<std::string> known_;
};

// Loads `file` and applies overrides "a.b.c=value" (value parsed as YAML). Throws chatmill::Error on a
// file that does not parse, naming the file and line.
YAML::Node load_yaml(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});

}  // namespace chatmill
