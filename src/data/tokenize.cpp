#include "data/tokenize.h"


#include <fstream>
#include <optional>

#include "common/error.h"
#include "common/text.h"
#include "common/parallel.h"
#include "common/sha256.h"
#include "data/conversation_source.h"

namespace chatmill::data {

TokenizeConfig TokenizeConfig::from_yaml(YamlObject& y) {
  TokenizeConfig c;
  y.read("inputs", c.inputs, true);
  y.read("tokenizer", c.tokenizer, true);
  y.read("template", c.template_name);
  y.read("system", c.system);
  y.read("max_length", c.max_length);
  y.read("row_length", c.row_length);
  y.read("packing", c.packing);
  y.read("on_bad_record", c.on_bad_record);
  y.read("manifest", c.manifest);
  y.read("output", c.output, true);
  y.read("batch_size", c.batch_size);
  y.read("threads", c.threads);
  y.check_unknown();
  return c;
}

TokenizeReport tokenize_dataset(const TokenizeConfig& cfg) {
  auto tok = model::Tokenizer::load(cfg.tokenizer);
  SegmentEncoder encoder(tok);
  ChatTemplate tmpl = ChatTemplate::by_name(cfg.template_name);
  if (!cfg.system.empty()) tmpl.system = cfg.system;
  CHATMILL_CHECK(cfg.max_length > 0 && cfg.batch_size > 0, "max_length and batch_size must be positive");

  StoreMetadata meta;
  meta.tokenizer_sha256 = sha256_file(cfg.tokenizer);
  meta.template_name = template_name(tmpl.kind);
  meta.max_length = cfg.max_length;
  meta.row_length = cfg.row_length > 0 ? cfg.row_length : cfg.max_length;
  meta.packing = parse_packing(cfg.packing);
  meta.pad_id = tok.eos_id();  // Llama has no pad token; padding carries no loss and no attention
  if (!cfg.manifest.empty()) meta.manifest = read_text_file(cfg.manifest, "manifest");

  TokenizeReport report;
  TokenStoreWriter writer(cfg.output, meta);
  std::vector<std::optional<EncodedSample>> encoded;
  std::vector<std::string> why;
  std::vector<std::filesystem::path> files(cfg.inputs.begin(), cfg.inputs.end());
  read_conversation_batches(files, parse_on_bad_record(cfg.on_bad_record), report.read, cfg.batch_size,
                            [&](std::vector<Conversation>& batch) {
    encoded.assign(batch.size(), std::nullopt);
    why.assign(batch.size(), "");
    parallel_for(static_cast<int64_t>(batch.size()), cfg.threads, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) encoded[i] = encoder.encode_training(tmpl, batch[i], cfg.max_length, &why[i]);
    });
    for (size_t i = 0; i < batch.size(); ++i) {  // in input order: the store is deterministic
      if (!encoded[i]) {
        ++report.dropped[why[i]];
        continue;
      }
      report.truncated += encoded[i]->truncated;
      writer.add(*encoded[i]);
    }
  });
  report.store = writer.finish();
  return report;
}

}  // namespace chatmill::data
