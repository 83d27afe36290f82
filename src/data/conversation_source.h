// Reading conversations from any supported input, in batches for parallel work.
#pragma once
#include <filesystem>
#include <functional>
#include <vector>

#include "data/lmsys_reader.h"
#include "data/record.h"

namespace chatmill::data {

// *.json is ShareGPT; anything else (.jsonl, .jsonl.gz, .jsonl.zst) is LMSYS-Chat-1M JSON Lines.
void read_conversations(const std::vector<std::filesystem::path>& files, OnBadRecord policy, ReadReport& report,
                        const std::function<void(Conversation&&)>& fn);

// The same, handing over batches of up to `batch_size` conversations (the last one smaller), in input order;
// a reader thread parses ahead while `fn` runs. Errors of either side are rethrown here.
void read_conversation_batches(const std::vector<std::filesystem::path>& files, OnBadRecord policy, ReadReport& report,
                               size_t batch_size, const std::function<void(std::vector<Conversation>&)>& fn);

}  // namespace chatmill::data
