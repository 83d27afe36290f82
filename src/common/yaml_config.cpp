#include "common/yaml_config.h"

#include "common/error.h"

namespace chatmill {

void ConfigErrors::throw_if_any(const std::string& what) const {
  if (items_.empty()) return;
  std::string msg = detail::concat(items_.size(), " problem(s) in ", what, ":");
  for (const auto& e : items_) msg += "\n  - " + e;
  throw Error(msg);
}

YamlObject::YamlObject(YAML::Node node, std::string path, std::string file, std::shared_ptr<ConfigErrors> errors)
    : node_(std::move(node)), path_(std::move(path)), file_(std::move(file)), errors_(std::move(errors)) {
  if (node_ && !node_.IsNull() && !node_.IsMap())
    errors_->add(detail::concat(file_, ":", node_.Mark().line + 1, ": ", path_.empty() ? "the file" : path_,
                                " must be a mapping of keys to values"));
}

std::string YamlObject::where(const std::string& key) const {
  const std::string full = path_.empty() ? key : path_ + "." + key;
  YAML::Node n = node_ && node_.IsMap() ? node_[key] : YAML::Node();
  const int line = n && n.Mark().line >= 0 ? n.Mark().line + 1 : (node_ ? node_.Mark().line + 1 : 0);
  return detail::concat(file_, ":", line, ": ", full);
}

bool YamlObject::has(const std::string& key) const { return node_ && node_.IsMap() && node_[key]; }

namespace {

template <typename T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, int> || std::is_same_v<T, int64_t> || std::is_same_v<T, uint64_t>) return "an integer";
  if constexpr (std::is_same_v<T, double>) return "a number";
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  return "a list of strings";
}

}  // namespace

template <typename T>
void YamlObject::read(const std::string& key, T& out, bool required) {
  known_.insert(key);
  if (!has(key) || node_[key].IsNull()) {
    if (required) errors_->add(where(key) + " is required");
    return;
  }
  YAML::Node n = node_[key];
  try {
    if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (n.IsScalar()) out = {n.as<std::string>()};  // a single item may be written without a list
      else if (n.IsSequence()) out = n.as<std::vector<std::string>>();
      else throw YAML::BadConversion(n.Mark());
    } else {
      if (!n.IsScalar()) throw YAML::BadConversion(n.Mark());
      out = n.as<T>();
    }
  } catch (const YAML::Exception&) {
    errors_->add(where(key) + " must be " + type_name<T>() + ", got " + YAML::Dump(n));
  }
}

template void YamlObject::read<bool>(const std::string&, bool&, bool);
template void YamlObject::read<int>(const std::string&, int&, bool);
template void YamlObject::read<int64_t>(const std::string&, int64_t&, bool);
template void YamlObject::read<uint64_t>(const std::string&, uint64_t&, bool);
template void YamlObject::read<double>(const std::string&, double&, bool);
template void YamlObject::read<std::string>(const std::string&, std::string&, bool);
template void YamlObject::read<std::vector<std::string>>(const std::string&, std::vector<std::string>&, bool);

YamlObject YamlObject::object(const std::string& key) {
  known_.insert(key);
  const std::string full = path_.empty() ? key : path_ + "." + key;
  return YamlObject(has(key) ? node_[key] : YAML::Node(), full, file_, errors_);
}

void YamlObject::check_unknown() {
  if (!node_ || !node_.IsMap()) return;
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar()) {  // "? a: b" or "[a, b]: c": YAML allows such keys, configs have none
      errors_->add(detail::concat(file_, ":", kv.first.Mark().line + 1, ": ", path_.empty() ? "a top-level" : path_,
                                  " key is a ", kv.first.IsMap() ? "mapping" : "list", "; keys are plain names"));
      continue;
    }
    const std::string key = kv.first.as<std::string>();
    if (!known_.count(key)) {
      std::string known;
      for (const auto& k : known_) known += (known.empty() ? "" : ", ") + k;
      errors_->add(detail::concat(file_, ":", kv.first.Mark().line + 1, ": unknown key '",
                                  path_.empty() ? key : path_ + "." + key, "' (known here: ", known, ")"));
    }
  }
}

YAML::Node load_yaml(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  CHATMILL_CHECK(std::filesystem::is_regular_file(file), "config file ", file, " does not exist");
  YAML::Node root;
  try {
    root = YAML::LoadFile(file.string());
  } catch (const YAML::ParserException& e) {
    CHATMILL_FAIL("cannot parse YAML ", file, " at line ", e.mark.line + 1, ": ", e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const auto& o : overrides) {
    const size_t eq = o.find('=');
    CHATMILL_CHECK(eq != std::string::npos && eq > 0, "bad override '", o, "'; write key.sub=value");
    const std::string path = o.substr(0, eq);
    YAML::Node value;
    try {
      value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      CHATMILL_FAIL("bad value in override '", o, "': ", e.what());
    }
    // Walk (creating) the mapping path; yaml-cpp nodes are handles, so `cur` edits `root` in place.
    std::vector<YAML::Node> chain{root};
    size_t start = 0;
    while (true) {
      const size_t dot = path.find('.', start);
      const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      CHATMILL_CHECK(!key.empty(), "bad override '", o, "': empty key");
      if (dot == std::string::npos) {
        chain.back()[key] = value;
        break;
      }
      YAML::Node next = chain.back()[key];
      if (!next.IsMap()) {
        next = YAML::Node(YAML::NodeType::Map);
        chain.back()[key] = next;
      }
      chain.push_back(next);
      start = dot + 1;
    }
  }
  return root;
}

}  // namespace chatmill
