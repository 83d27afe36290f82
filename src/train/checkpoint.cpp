#include "train/checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "common/error.h"
#include "model/hf_checkpoint.h"
#include "model/safetensors.h"

namespace chatmill::train {

namespace fs = std::filesystem;

namespace {

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

std::string optimizer_file(int rank, int world) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "optimizer-rank-%05d-of-%05d.safetensors", rank, world);
  return buf;
}

void write_json(const fs::path& p, const nlohmann::ordered_json& j) {
  std::ofstream out(p);
  CHATMILL_CHECK(out, "cannot write ", p);
  out << j.dump(2) << "\n";
}

}  // namespace

fs::path checkpoints_dir(const fs::path& output_dir) { return output_dir / "checkpoints"; }

std::optional<fs::path> latest_checkpoint(const fs::path& output_dir) {
  const fs::path dir = checkpoints_dir(output_dir);
  if (!fs::is_directory(dir)) return std::nullopt;
  std::optional<fs::path> best;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    // Only committed folders carry the plain name; a save in progress or killed is ".step-...tmp".
    if (name.rfind("step-", 0) != 0 || !fs::exists(e.path() / "trainer_state.json")) continue;
    if (!best || name > best->filename().string()) best = e.path();
  }
  return best;
}

fs::path save_checkpoint(const fs::path& output_dir, const SaveRequest& req, Communicator& comm) {
  const fs::path dir = checkpoints_dir(output_dir);
  const std::string name = step_name(req.contents.step);
  const fs::path tmp = dir / ("." + name + ".tmp");
  const fs::path final_dir = dir / name;
  if (comm.rank() == 0) {
    fs::create_directories(dir);
    fs::remove_all(tmp);  // what a killed save left behind
    fs::create_directories(tmp);
  }
  comm.barrier();
  // Every rank: its optimizer state.
  std::vector<std::pair<std::string, at::Tensor>> opt(req.optimizer_state.begin(), req.optimizer_state.end());
  model::write_safetensors(tmp / optimizer_file(comm.rank(), comm.world_size()), opt);
  comm.barrier();
  if (comm.rank() == 0) {
    model::SaveOptions so;
    so.tokenizer_model = req.tokenizer;
    model::save_hf_model(*req.model, tmp / "model", so);
    // The CPU generator's state: nothing in training draws from it today, but a resumed run must not differ
    // if something does.
    at::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
    model::write_safetensors(tmp / "rng.safetensors", {{"cpu", rng}});
    write_json(tmp / "train_config.json", req.contents.config);
    write_json(tmp / "trainer_state.json", req.contents.trainer_state);
    if (req.pause_before_commit_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(req.pause_before_commit_ms));
    fs::remove_all(final_dir);
    fs::rename(tmp, final_dir);  // the commit
    // Keep the newest K committed checkpoints.
    std::vector<fs::path> all;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind("step-", 0) == 0) all.push_back(e.path());
    std::sort(all.begin(), all.end());
    for (size_t i = 0; i + req.keep_last < all.size(); ++i) fs::remove_all(all[i]);
  }
  comm.barrier();
  return final_dir;
}

std::map<std::string, at::Tensor> load_optimizer_state(const fs::path& ckpt, int rank, int world) {
  const fs::path file = ckpt / optimizer_file(rank, world);
  if (!fs::exists(file)) {
    std::string found;
    for (const auto& e : fs::directory_iterator(ckpt))
      if (e.path().filename().string().rfind("optimizer-", 0) == 0) found += " " + e.path().filename().string();
    CHATMILL_FAIL("checkpoint ", ckpt, " has no optimizer state for rank ", rank, " of ", world,
                  " (it holds:", found.empty() ? " none" : found, "); resume with the world size it was written with");
  }
  auto reader = model::SafetensorsReader::open(file);
  std::map<std::string, at::Tensor> out;
  for (const auto& t : reader.tensors()) out[t.name] = reader.view(t).clone();
  return out;
}

CheckpointContents load_checkpoint_contents(const fs::path& ckpt) {
  CheckpointContents c;
  std::ifstream in(ckpt / "trainer_state.json");
  CHATMILL_CHECK(in, "checkpoint ", ckpt, " has no trainer_state.json");
  try {
    c.trainer_state = nlohmann::ordered_json::parse(in);
    const auto& step = c.trainer_state.at("step");
    CHATMILL_CHECK(step.is_number_integer() && step.get<int64_t>() >= 0, "checkpoint ", ckpt, " is damaged: its ",
                   "trainer_state.json has step ", step.dump(), ", not a count of steps; resume from an earlier ",
                   "checkpoint or start over");
    c.step = step.get<int64_t>();
    std::ifstream cin(ckpt / "train_config.json");
    if (cin) c.config = nlohmann::ordered_json::parse(cin);
  } catch (const nlohmann::json::exception& e) {
    CHATMILL_FAIL("checkpoint ", ckpt, " is damaged: its trainer_state.json or train_config.json does not parse (",
                  e.what(), "); resume from an earlier checkpoint or start over");
  }
  // Restore the CPU generator.
  auto reader = model::SafetensorsReader::open(ckpt / "rng.safetensors");
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  const auto* cpu = reader.find("cpu");
  CHATMILL_CHECK(cpu, "checkpoint ", ckpt, " is damaged: rng.safetensors has no 'cpu' generator state; resume from an ",
                 "earlier checkpoint or start over");
  gen.set_state(reader.view(*cpu).clone());
  return c;
}

}  // namespace chatmill::train
