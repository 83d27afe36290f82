// `chatmill data tokenize`: conversations -> template -> ids and labels -> packed rows in an HDF5 store.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/yaml_config.h"
#include "data/lmsys_reader.h"
#include "data/token_store.h"

namespace chatmill::data {

struct TokenizeConfig {
  std::vector<std::string> inputs;  // LMSYS JSONL (.gz/.zst) or ShareGPT .json files
  std::string tokenizer;            // tokenizer.model
  std::string template_name = "vicuna_v1.1";
  std::string system;               // overrides the template's system message when set
  int64_t max_length = 2048;
  int64_t row_length = 0;           // 0: max_length
  std::string packing = "packed";   // packed | padded
  std::string on_bad_record = "skip";
  std::string manifest;             // the subset's manifest.json, embedded in the store
  std::string output;               // the .h5 file
  int64_t batch_size = 2048;        // conversations encoded in parallel at a time
  int threads = 0;                  // encoding threads (0: one per core)

  static TokenizeConfig from_yaml(YamlObject& y);  // errors collected in y
};

struct TokenizeReport {
  ReadReport read;
  StoreStats store;
  std::map<std::string, int64_t> dropped;  // samples not stored, by reason
  int64_t truncated = 0;
};

TokenizeReport tokenize_dataset(const TokenizeConfig& cfg);

}  // namespace chatmill::data
