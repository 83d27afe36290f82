// A training checkpoint whose small files were damaged (a full disk, a hand edit) is refused with an error
// that names the checkpoint and says what to do, never an abort from the JSON library or a null dereference.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "common/test_env.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

fs::path saved_checkpoint(const std::string& name) {
  const fs::path out = testing::scratch(name);
  model::LlamaConfig cfg = model::llama2_debug();
  cfg.vocab_size = 64;
  cfg.num_layers = 1;
  const model::Model m(cfg, model::init_weights(cfg, 0.02, 1, at::kFloat, at::kCPU));
  train::SaveRequest req;
  req.model = &m;
  req.contents.step = 3;
  req.contents.trainer_state = {{"step", 3}};
  req.contents.config = {{"run", {{"max_steps", 10}}}};
  auto comm = train::make_local_communicator();
  return train::save_checkpoint(out, req, *comm);
}

TEST(CheckpointDamage, AGoodOneLoads) {
  const fs::path ckpt = saved_checkpoint("ckpt_good");
  EXPECT_EQ(train::latest_checkpoint(ckpt.parent_path().parent_path()), ckpt);
  EXPECT_EQ(train::load_checkpoint_contents(ckpt).step, 3);
}

TEST(CheckpointDamage, TrainerStateThatDoesNotParse) {
  const fs::path ckpt = saved_checkpoint("ckpt_bad_state");
  for (const std::string& text : {std::string("{\"step\": 3"), std::string("{\"step\": \"three\"}"),
                                  std::string("{\"epoch\": 1}"), std::string("{\"step\": 2e999}"),
                                  std::string("{\"step\": -1}"), std::string("{\"step\": 3.5}")}) {
    std::ofstream(ckpt / "trainer_state.json", std::ios::trunc) << text;
    testing::expect_error([&] { train::load_checkpoint_contents(ckpt); },
                          {ckpt.string(), "is damaged", "trainer_state.json", "earlier checkpoint"});
  }
  std::ofstream(ckpt / "trainer_state.json", std::ios::trunc) << "{\"step\": 3}";
  std::ofstream(ckpt / "train_config.json", std::ios::trunc) << "{\"run\": ";
  testing::expect_error([&] { train::load_checkpoint_contents(ckpt); }, {ckpt.string(), "is damaged"});
}

TEST(CheckpointDamage, GeneratorStateMissing) {
  const fs::path ckpt = saved_checkpoint("ckpt_no_rng");
  model::write_safetensors(ckpt / "rng.safetensors", {{"cuda", at::zeros({4}, at::kByte)}});
  testing::expect_error([&] { train::load_checkpoint_contents(ckpt); },
                        {ckpt.string(), "no 'cpu' generator state"});
}

}  // namespace
}  // namespace chatmill
