// Every YAML under configs/ parses; recipe errors are reported together; launcher environments are read;
// `plan` agrees with what the trainer allocates.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "common/test_env.h"
#include "common/yaml_config.h"
#include "data/subsets/build.h"
#include "data/tokenize.h"
#include "model/weights.h"
#include "train/config.h"
#include "train/parallel/dist_env.h"
#include "eval/suite.h"
#include "train/parallel_model.h"
#include "train/plan.h"

namespace chatmill {
namespace {

namespace fs = std::filesystem;

TEST(Configs, EveryYamlUnderConfigsParses) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(testing::source_dir() / "configs")) {
    if (e.path().extension() != ".yaml") continue;
    const std::string dir = e.path().parent_path().filename().string();
    const std::string name = e.path().filename().string();
    SCOPED_TRACE(e.path().string());
    if (dir == "train") {
      EXPECT_NO_THROW(train::TrainConfig::load(e.path()));
    } else if (name.find("tokenize") != std::string::npos) {
      auto errors = std::make_shared<ConfigErrors>();
      YamlObject root(load_yaml(e.path()), "", e.path().string(), errors);
      data::TokenizeConfig::from_yaml(root);
      EXPECT_TRUE(errors->empty());
    } else if (dir == "eval") {
      EXPECT_NO_THROW(eval::load_sweep_config(e.path().string()));
    } else if (name.find("subsets") != std::string::npos) {
      EXPECT_NO_THROW(data::parse_build_config(e.path(), {}));
    } else {
      ADD_FAILURE() << "no parser known for " << e.path() << "; teach this test about it";
    }
    ++n;
  }
  EXPECT_GE(n, 4);
}

TEST(Configs, RecipeOverridesAndErrors) {
  auto dir = testing::scratch("train_config");
  std::ofstream(dir / "r.yaml") << "model: {preset: debug, tokenizer: t.model}\ndata: {store: s.h5}\n";
  auto c = train::TrainConfig::load(dir / "r.yaml", {"optimizer.lr=0.5", "parallel.strategy=zero2", "run.max_steps=7"});
  EXPECT_EQ(c.optimizer.lr, 0.5);
  EXPECT_EQ(c.parallel.strategy, train::Strategy::Zero2);
  EXPECT_EQ(c.run.max_steps, 7);
  EXPECT_EQ(c.to_json()["parallel"]["strategy"], "zero2");
  EXPECT_EQ(c.model.kernels, model::Kernels::Fused);  // the default
  EXPECT_EQ(c.to_json()["model"]["kernels"], "fused");
  EXPECT_EQ(train::TrainConfig::load(dir / "r.yaml", {"model.kernels=reference"}).model.kernels, model::Kernels::Reference);
  std::ofstream(dir / "bad.yaml")
      << "model: {preset: debug, from: x, precision: fp8, kernels: triton}\ndata: {}\nschedule: {kind: step}\nextra: 1\n";
  testing::expect_error([&] { train::TrainConfig::load(dir / "bad.yaml"); },
                        {"bad.yaml:1: model.precision is 'fp8'", "model.kernels is 'triton'; choose one of: fused, reference",
                         "give exactly one of model.from", "data.store is required", "schedule.kind is 'step'",
                         "bad.yaml:4: unknown key 'extra'"});
}

TEST(DistEnv, ReadsTorchrunSlurmAndMpirun) {
  auto from = [](std::map<std::string, std::string> vars) {
    return train::dist_env_from_environment([vars](const char* k) -> const char* {
      auto it = vars.find(k);
      return it == vars.end() ? nullptr : it->second.c_str();
    });
  };
  auto t = from({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "3"}, {"MASTER_ADDR", "node1"}, {"MASTER_PORT", "29600"}});
  EXPECT_EQ(t.launcher, "torchrun");
  EXPECT_EQ(t.rank, 3);
  EXPECT_EQ(t.world_size, 8);
  EXPECT_EQ(t.master_addr, "node1");
  EXPECT_EQ(t.master_port, 29600);
  auto s = from({{"SLURM_PROCID", "9"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "1"}, {"SLURM_NODELIST", "gpu[003-004,010]"}});
  EXPECT_EQ(s.launcher, "slurm");
  EXPECT_EQ(s.rank, 9);
  EXPECT_EQ(s.local_rank, 1);
  EXPECT_EQ(s.master_addr, "gpu003");
  auto m = from({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  EXPECT_EQ(m.launcher, "mpirun");
  EXPECT_EQ(m.world_size, 2);
  EXPECT_EQ(from({}).world_size, 1);
  EXPECT_EQ(train::first_slurm_host("a1,b2"), "a1");
  testing::expect_error([&] { from({{"RANK", "4"}, {"WORLD_SIZE", "2"}}); }, {"rank 4 is not below the world size 2"});
  testing::expect_error([&] { from({{"RANK", "x"}, {"WORLD_SIZE", "2"}}); }, {"RANK='x'"});
}

TEST(Plan, PersistentBytesEqualWhatTheTrainerAllocates) {
  model::LlamaConfig m = model::llama2_debug();
  for (auto strategy : {train::Strategy::None, train::Strategy::Ddp, train::Strategy::Zero1, train::Strategy::Zero2,
                        train::Strategy::Zero3}) {
    train::TrainConfig cfg;
    cfg.parallel.strategy = strategy;
    auto comm = train::make_local_communicator();
    train::ParallelModel pm(m, model::init_weights(m, 0.02, 0, at::kFloat, at::kCPU), strategy,
                            train::Precision::Float32, false, cfg.optimizer, *comm, at::kCPU);
    auto measured = pm.memory();
    auto plan = train::plan_memory(m, cfg, 1, 128);
    EXPECT_EQ(plan.params, measured.params) << train::strategy_name(strategy);
    EXPECT_EQ(plan.grads, measured.grads) << train::strategy_name(strategy);
    EXPECT_EQ(plan.optimizer, measured.optimizer) << train::strategy_name(strategy);
  }
}

}  // namespace
}  // namespace chatmill
