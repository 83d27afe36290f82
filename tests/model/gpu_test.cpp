// The model on a CUDA device against the same HF references; skipped where no GPU is present
// (scripts/gpu_check.sh runs them on the GPU machine).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "common/test_env.h"
#include "model/generate.h"
#include "model/hf_checkpoint.h"
#include "model/step_graph.h"

namespace chatmill {
namespace {

using testing::max_abs_diff;
using testing::read_all;
using testing::testdata;

#define REQUIRE_CUDA() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine"

std::vector<model::GenerationRequest> reference_requests(const std::string& name,
                                                         std::vector<std::vector<int64_t>>* expected) {
  std::ifstream in(testdata() / "ref" / (name + "_generate.json"));
  auto j = nlohmann::json::parse(in);
  *expected = j["generated"].get<std::vector<std::vector<int64_t>>>();
  std::vector<model::GenerationRequest> reqs;
  for (const auto& p : j["prompts"]) {
    model::GenerationRequest r;
    r.prompt = p.get<std::vector<int64_t>>();
    r.max_new_tokens = 64;
    r.stop_on_eos = false;
    reqs.push_back(r);
  }
  return reqs;
}

TEST(GpuParity, Float32LogitsAndGreedyTokensOnCuda) {
  REQUIRE_CUDA();
  for (std::string name : {"mha_untied", "gqa_tied"}) {
    auto ref = read_all(testdata() / "ref" / (name + ".safetensors"));
    model::Model m = model::load_hf_model(testdata() / "models" / name, {at::kFloat, at::kCUDA});
    at::Tensor logits = model::forward_logits(m, ref["input_ids"].to(at::kCUDA)).cpu();
    const double diff = max_abs_diff(logits, ref["logits"]);
    std::cout << name << ": cuda float32 logits max |chatmill - HF cpu| = " << diff << "\n";
    EXPECT_LE(diff, 1e-4);
    std::vector<std::vector<int64_t>> expected;
    auto reqs = reference_requests(name, &expected);
    auto out = model::generate(m, reqs);
    for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(out[i].tokens, expected[i]) << name << " prompt " << i;
  }
}

TEST(GpuParity, Bfloat16LogitsOnCuda) {
  REQUIRE_CUDA();
  auto ref = read_all(testdata() / "ref" / "gqa_tied.safetensors");
  model::Model m = model::load_hf_model(testdata() / "models" / "gqa_tied", {at::kBFloat16, at::kCUDA});
  at::Tensor logits = model::forward_logits(m, ref["input_ids"].to(at::kCUDA)).cpu();
  const double scale = ref["logits"].abs().max().item<double>();
  const double diff = max_abs_diff(logits, ref["logits_bf16"]);
  std::cout << "gqa_tied: cuda bf16 logits max |chatmill - HF cpu bf16| = " << diff << " (max |logit| " << scale << ")\n";
  EXPECT_LE(diff, 0.03 * scale);
}

TEST(GpuDecode, CudaGraphStepEqualsEagerStep) {
  REQUIRE_CUDA();
  if (!model::cuda_graphs_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON";
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    model::Model m = model::load_hf_model(testdata() / "models" / "gqa_sharded", {dtype, at::kCUDA});
    std::vector<std::vector<int64_t>> expected;
    auto reqs = reference_requests("gqa_sharded", &expected);
    model::GenerateOptions eager, graph;
    eager.static_decode = true;
    graph.static_decode = graph.cuda_graph = true;
    auto a = model::generate(m, reqs, eager);
    auto b = model::generate(m, reqs, graph);
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(a[i].tokens, b[i].tokens) << "prompt " << i << " dtype " << dtype;
      if (dtype == at::kFloat) EXPECT_EQ(b[i].tokens, expected[i]) << "prompt " << i;
    }
  }
}

}  // namespace
}  // namespace chatmill
