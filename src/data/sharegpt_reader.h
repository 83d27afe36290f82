// Reads ShareGPT training JSON (FastChat's format): [{"id", "conversations": [{"from", "value"}, ...]}].
#pragma once
#include <filesystem>
#include <functional>

#include "data/lmsys_reader.h"
#include "data/record.h"

namespace chatmill::data {

// "human"/"user" speak as the user, "gpt"/"chatgpt"/"bard"/"bing"/"assistant" as the assistant, a leading
// "system" turn becomes the system message. As FastChat does, a first turn not from the user is dropped;
// after that roles must alternate. Bad entries follow `policy` and are reported as "file: entry N".
void read_sharegpt(const std::filesystem::path& file, OnBadRecord policy, ReadReport& report,
                   const std::function<void(Conversation&&)>& fn);

}  // namespace chatmill::data
