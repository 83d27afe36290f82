#include "train/parallel/dist_env.h"

#include <cstdlib>

#include "common/error.h"

namespace chatmill::train {

namespace {

int to_int(const char* name, const char* value) {
  char* end = nullptr;
  long v = std::strtol(value, &end, 10);
  CHATMILL_CHECK(end != value && *end == '\0' && v >= 0, "environment variable ", name, "='", value,
                 "' is not a non-negative integer");
  return static_cast<int>(v);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  const size_t comma = nodelist.find(',');
  const size_t bracket = nodelist.find('[');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket))
    return nodelist.substr(0, comma);
  // prefix[a-b,c] -> prefix + a (zero padding kept)
  std::string first = nodelist.substr(bracket + 1);
  first = first.substr(0, first.find_first_of("-,]"));
  return nodelist.substr(0, bracket) + first;
}

DistEnv dist_env_from_environment(const std::function<const char*(const char*)>& getenv_fn) {
  auto get = [&](const char* name) -> const char* {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return (v != nullptr && *v != '\0') ? v : nullptr;
  };
  DistEnv e;
  if (get("RANK") && get("WORLD_SIZE")) {
    e.launcher = "torchrun";
    e.rank = to_int("RANK", get("RANK"));
    e.world_size = to_int("WORLD_SIZE", get("WORLD_SIZE"));
    if (get("LOCAL_RANK")) e.local_rank = to_int("LOCAL_RANK", get("LOCAL_RANK"));
  } else if (get("SLURM_PROCID") && get("SLURM_NTASKS")) {
    e.launcher = "slurm";
    e.rank = to_int("SLURM_PROCID", get("SLURM_PROCID"));
    e.world_size = to_int("SLURM_NTASKS", get("SLURM_NTASKS"));
    if (get("SLURM_LOCALID")) e.local_rank = to_int("SLURM_LOCALID", get("SLURM_LOCALID"));
    if (get("SLURM_NODELIST")) e.master_addr = first_slurm_host(get("SLURM_NODELIST"));
  } else if (get("OMPI_COMM_WORLD_RANK") && get("OMPI_COMM_WORLD_SIZE")) {
    e.launcher = "mpirun";
    e.rank = to_int("OMPI_COMM_WORLD_RANK", get("OMPI_COMM_WORLD_RANK"));
    e.world_size = to_int("OMPI_COMM_WORLD_SIZE", get("OMPI_COMM_WORLD_SIZE"));
    if (get("OMPI_COMM_WORLD_LOCAL_RANK")) e.local_rank = to_int("OMPI_COMM_WORLD_LOCAL_RANK", get("OMPI_COMM_WORLD_LOCAL_RANK"));
  }
  // MASTER_ADDR / MASTER_PORT win whatever the launcher (SLURM and mpirun scripts export them too).
  if (get("MASTER_ADDR")) e.master_addr = get("MASTER_ADDR");
  if (get("MASTER_PORT")) e.master_port = to_int("MASTER_PORT", get("MASTER_PORT"));
  CHATMILL_CHECK(e.world_size >= 1 && e.rank < e.world_size, "rank ", e.rank, " is not below the world size ",
                 e.world_size, " (from the ", e.launcher, " environment)");
  return e;
}

}  // namespace chatmill::train
