// Random damage to the other files users hand to chatmill: an HF config.json, a llama2.c checkpoint, a
// SentencePiece model, MMLU CSVs, MT-Bench questions, judge prompts and answers, a ShareGPT file. Each mutant
// loads or fails with a chatmill::Error naming the file; never a crash or a library's own exception.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <random>

#include "common/fuzz.h"
#include "common/test_env.h"
#include "common/text.h"
#include "data/lmsys_reader.h"
#include "data/sharegpt_reader.h"
#include "eval/mmlu.h"
#include "eval/mt_bench_data.h"
#include "model/config.h"
#include "model/hf_checkpoint.h"
#include "model/llama2c.h"
#include "model/tokenizer.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

const std::string kText = "{}[],:\"0123456789-eE.+ \\\n\tutrfaln_\x01\xc3\xff";

// `rounds` mutants of `good` written to `file` (keeping its name, which some loaders read) and given to `load`.
void fuzz_file(const std::string& good, const fs::path& file, const std::string& alphabet, int rounds, uint64_t seed,
               const std::function<void()>& load, size_t span = 0) {
  ASSERT_FALSE(good.empty()) << file;
  std::mt19937_64 rng(seed);
  testing::FuzzTally t;
  for (int i = 0; i < testing::fuzz_rounds(rounds) && !t.foreign; ++i)
    testing::try_mutant(testing::mutate(good, alphabet, 4, rng, span), file, i, t, load);
  EXPECT_GT(t.rejected, 0) << file;
}

TEST(FileFuzz, HfConfigJson) {
  const fs::path dir = testing::scratch("fuzz_config");
  const std::string good = model::config_to_hf_json(model::llama2_7b(), "bfloat16").dump(2);
  fuzz_file(good, dir / "config.json", kText, 3000, 1, [&] { model::load_hf_config(dir / "config.json"); });
}

TEST(FileFuzz, Llama2cHeaderAndSize) {
  const fs::path src = testing::shared_data() / "models" / "stories260K" / "stories260K.bin";
  if (!fs::exists(src)) GTEST_SKIP() << "needs " << src;
  const fs::path dir = testing::scratch("fuzz_llama2c");
  const std::string good = read_text_file(src, "fuzz seed file");
  // Bytes: the 28-byte header (any byte value), then truncations of the weights.
  std::string bytes(256, '\0');
  for (int b = 0; b < 256; ++b) bytes[b] = static_cast<char>(b);
  fuzz_file(good, dir / "m.bin", bytes, 400, 2, [&] { model::load_llama2c(dir / "m.bin"); }, 28);
}

TEST(FileFuzz, SentencePieceModel) {
  const fs::path dir = testing::scratch("fuzz_spm");
  const std::string good =
      read_text_file(testing::source_dir() / "data" / "sample" / "tokenizer.model", "fuzz seed file");
  std::string bytes(256, '\0');
  for (int b = 0; b < 256; ++b) bytes[b] = static_cast<char>(b);
  fuzz_file(good, dir / "tokenizer.model", bytes, 300, 3, [&] {
    const auto tok = model::Tokenizer::load(dir / "tokenizer.model");
    (void)tok.encode("Hello, world: 123 ünïcode", true);
  }, 4096);
}

TEST(FileFuzz, MmluCsv) {
  const fs::path src = testing::source_dir() / "data" / "sample" / "mmlu";
  const fs::path dir = testing::scratch("fuzz_mmlu");
  fs::remove_all(dir);
  fs::copy(src, dir, fs::copy_options::recursive);
  const fs::path victim = dir / "dev" / "nutrition_dev.csv";
  fuzz_file(read_text_file(victim, "fuzz seed file"), victim, ",\"\n\r ABCD0123\\\xc3\xff", 1500, 4,
            [&] { eval::load_mmlu(dir); });
}

TEST(FileFuzz, MtBenchFiles) {
  const fs::path src = testing::source_dir() / "data" / "sample" / "mt_bench";
  const fs::path dir = testing::scratch("fuzz_mt_bench");
  fuzz_file(read_text_file(src / "question.jsonl", "fuzz seed file"), dir / "question.jsonl", kText, 2000, 5,
            [&] { eval::load_mt_questions(dir / "question.jsonl"); });
  fuzz_file(read_text_file(src / "judge_prompts.jsonl", "fuzz seed file"), dir / "judge_prompts.jsonl", kText, 2000, 6,
            [&] { eval::load_judge_prompts(dir / "judge_prompts.jsonl"); });
  fuzz_file(read_text_file(src / "reference_answer" / "sample-reference.jsonl", "fuzz seed file"),
            dir / "answers.jsonl", kText, 2000,
            7, [&] { eval::load_model_answers(dir / "answers.jsonl"); });
}

TEST(FileFuzz, ShareGptFile) {
  const fs::path dir = testing::scratch("fuzz_sharegpt");
  const std::string good =
      read_text_file(testing::source_dir() / "data" / "sample" / "sharegpt_sample.json", "fuzz seed file");
  fuzz_file(good, dir / "s.json", kText, 2000, 8, [&] {
    data::ReadReport r;
    data::read_sharegpt(dir / "s.json", data::OnBadRecord::Skip, r, [](data::Conversation&&) {});
  });
}

}  // namespace
}  // namespace chatmill
