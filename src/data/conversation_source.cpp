#include "data/conversation_source.h"

#include "data/sharegpt_reader.h"

namespace chatmill::data {

void read_conversations(const std::vector<std::filesystem::path>& files, OnBadRecord policy, ReadReport& report,
                        const std::function<void(Conversation&&)>& fn) {
  for (const auto& f : files) {
    if (f.extension() == ".json") read_sharegpt(f, policy, report, fn);
    else read_lmsys({f}, policy, report, fn);
  }
}

void read_conversation_batches(const std::vector<std::filesystem::path>& files, OnBadRecord policy, ReadReport& report,
                               size_t batch_size, const std::function<void(std::vector<Conversation>&)>& fn) {
  std::vector<Conversation> batch;
  batch.reserve(batch_size);
  read_conversations(files, policy, report, [&](Conversation&& c) {
    batch.push_back(std::move(c));
    if (batch.size() == batch_size) {
      fn(batch);
      batch.clear();
    }
  });
  if (!batch.empty()) fn(batch);
}

}  // namespace chatmill::data
