// JSON inputs whose values changed type or went missing (what other tools and hand edits write): every parser
// answers with its own error, naming the file (or, for an HTTP body, a 400), never with a JSON library exception.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "common/fuzz.h"
#include "common/test_env.h"
#include "common/text.h"
#include "data/lmsys_reader.h"
#include "data/sharegpt_reader.h"
#include "data/subsets/conversation_filters.h"
#include "eval/moderation.h"
#include "eval/mt_bench_data.h"
#include "model/config.h"
#include "model/hf_checkpoint.h"
#include "model/safetensors.h"
#include "serve/openai_api.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

// A JSON Lines file with one line's JSON mutated.
std::string mutate_jsonl(const std::vector<std::string>& lines, std::mt19937_64& rng) {
  const size_t k = rng() % lines.size();
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i)
    out += (i == k ? testing::mutate_json(nlohmann::json::parse(lines[i]), rng).dump() : lines[i]) + "\n";
  return out;
}

void fuzz_jsonl(const fs::path& good, const fs::path& file, int rounds, uint64_t seed,
                const std::function<void()>& load) {
  const auto lines = lines_of(read_text_file(good, "fuzz seed file"));
  ASSERT_FALSE(lines.empty()) << good;
  std::mt19937_64 rng(seed);
  testing::FuzzTally t;
  for (int i = 0; i < testing::fuzz_rounds(rounds) && !t.foreign; ++i)
    testing::try_mutant(mutate_jsonl(lines, rng), file, i, t, load);
  EXPECT_GT(t.rejected, 0) << file;
}

const fs::path kSample = testing::source_dir() / "data" / "sample";

TEST(JsonTypeFuzz, OpenAiRequests) {
  const nlohmann::json chat = nlohmann::json::parse(
      R"({"model": "tiny", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
          {"role": "assistant", "content": "Hello"}, {"role": "user", "content": [{"type": "text", "text": "More"}]}],
          "max_tokens": 12, "temperature": 0.7, "top_p": 0.9, "top_k": 5, "seed": 3, "stop": ["\n\n", "END"],
          "stream": true, "stream_options": {"include_usage": true}, "n": 1})");
  const nlohmann::json completion = nlohmann::json::parse(
      R"({"model": "tiny", "prompt": [1, 15043], "max_tokens": 5, "temperature": 0, "stop": "x"})");
  std::mt19937_64 rng(21);
  for (int i = 0; i < testing::fuzz_rounds(4000); ++i) {
    const bool is_chat = i % 2 == 0;
    const std::string body = testing::mutate_json(is_chat ? chat : completion, rng).dump();
    serve::ParsedRequest p;
    try {
      const auto e = serve::parse_request(body, is_chat, p);
      if (e) EXPECT_TRUE(e->status == 400 || e->status == 404) << body;
    } catch (const std::exception& ex) {
      FAIL() << body << " threw " << ex.what();
    }
  }
}

TEST(JsonTypeFuzz, LmsysRecords) {
  const auto lines = lines_of(read_text_file(kSample / "lmsys_chat_sample.jsonl", "fuzz seed file"));
  std::mt19937_64 rng(22);
  for (int i = 0; i < testing::fuzz_rounds(4000); ++i) {
    std::string line = testing::mutate_json(nlohmann::json::parse(lines[i % lines.size()]), rng).dump();
    data::Conversation c;
    data::RecordError err;
    try {
      if (!data::parse_lmsys_line(line, c, err)) EXPECT_FALSE(err.reason.empty()) << line;
    } catch (const std::exception& ex) {
      FAIL() << line << " threw " << ex.what();
    }
  }
}

TEST(JsonTypeFuzz, ConfigAndEvalFiles) {
  const fs::path dir = testing::scratch("json_fuzz_files");
  const std::string config = model::config_to_hf_json(model::llama2_7b(), "bfloat16").dump();
  std::ofstream(dir / "config_good.json") << config << "\n";
  fuzz_jsonl(dir / "config_good.json", dir / "config.json", 1500, 23,
             [&] { model::load_hf_config(dir / "config.json"); });
  fuzz_jsonl(kSample / "mt_bench" / "question.jsonl", dir / "q.jsonl", 1000, 24,
             [&] { eval::load_mt_questions(dir / "q.jsonl"); });
  fuzz_jsonl(kSample / "mt_bench" / "judge_prompts.jsonl", dir / "p.jsonl", 1000, 25,
             [&] { eval::load_judge_prompts(dir / "p.jsonl"); });
  fuzz_jsonl(kSample / "mt_bench" / "reference_answer" / "sample-reference.jsonl", dir / "a.jsonl", 1000, 26,
             [&] { eval::load_model_answers(dir / "a.jsonl"); });
  fuzz_jsonl(kSample / "moderation_eval.jsonl", dir / "m.jsonl", 1000, 27,
             [&] { eval::load_moderation_items(dir / "m.jsonl"); });
  fuzz_jsonl(kSample / "arena_votes_sample.jsonl", dir / "v.jsonl", 1000, 28,
             [&] { data::UpvoteBuilder(dir / "v.jsonl", {}, false); });
}

TEST(JsonTypeFuzz, ShareGpt) {
  const fs::path dir = testing::scratch("json_fuzz_sharegpt");
  const nlohmann::json good = nlohmann::json::parse(read_text_file(kSample / "sharegpt_sample.json", "fuzz seed file"));
  std::mt19937_64 rng(29);
  testing::FuzzTally t;
  for (int i = 0; i < testing::fuzz_rounds(1000) && !t.foreign; ++i)
    testing::try_mutant(testing::mutate_json(good, rng).dump(), dir / "s.json", i, t, [&] {
      data::ReadReport r;
      data::read_sharegpt(dir / "s.json", data::OnBadRecord::Skip, r, [](data::Conversation&&) {});
    });
}

TEST(JsonTypeFuzz, SafetensorsHeaderAndShardIndex) {
  const fs::path dir = testing::scratch("json_fuzz_st");
  model::LlamaConfig cfg = model::llama2_debug();
  cfg.vocab_size = 64;
  cfg.num_layers = 1;
  const model::Model m(cfg, model::init_weights(cfg, 0.02, 1, at::kFloat, at::kCPU));
  model::SaveOptions so;
  so.max_shard_bytes = 40000;  // several shards and an index
  so.overwrite = true;
  model::save_hf_model(m, dir / "good", so);
  const fs::path index = dir / "good" / "model.safetensors.index.json";
  ASSERT_TRUE(fs::exists(index));

  // The header of the first shard, rewritten with a mutated header and the same data.
  std::string first;
  for (const auto& e : fs::directory_iterator(dir / "good"))
    if (e.path().extension() == ".safetensors" && (first.empty() || e.path().string() < first))
      first = e.path().string();
  const std::string bytes = read_text_file(first, "fuzz seed file");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
  std::mt19937_64 rng(30);
  testing::FuzzTally t;
  const fs::path file = dir / "h.safetensors";
  for (int i = 0; i < testing::fuzz_rounds(1500) && !t.foreign; ++i) {
    const std::string h = testing::mutate_json(header, rng).dump();
    const uint64_t len = h.size();
    std::string out(reinterpret_cast<const char*>(&len), 8);
    testing::try_mutant(out + h + bytes.substr(8 + n), file, i, t, [&] {
      auto r = model::SafetensorsReader::open(file);
      for (const auto& info : r.tensors()) (void)r.view(info);
    });
  }
  EXPECT_GT(t.rejected, 500);

  // The shard index, in a copy of the folder.
  fs::remove_all(dir / "copy");
  fs::copy(dir / "good", dir / "copy");
  std::ofstream(dir / "index_good.json")
      << nlohmann::json::parse(read_text_file(index, "fuzz seed file")).dump() << "\n";
  fuzz_jsonl(dir / "index_good.json", dir / "copy" / "model.safetensors.index.json", 400, 31,
             [&] { model::load_hf_model(dir / "copy"); });
}

}  // namespace
}  // namespace chatmill
