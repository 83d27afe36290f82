// Where this process sits in a multi-process run, read once at start-up from the variables that the usual
// launchers set: torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), SLURM's srun
// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_LAUNCH_NODE_IPADDR / SLURM_NODELIST) and Open MPI's
// mpirun (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK). Passed down explicitly.
#pragma once
#include <functional>
#include <string>

namespace chatmill::train {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // torchrun | slurm | mpirun | none
};

// `getenv` is injectable for tests; by default the process environment. Throws chatmill::Error naming the
// variable when a value is malformed or inconsistent.
DistEnv dist_env_from_environment(const std::function<const char*(const char*)>& getenv = {});

// The first host of a SLURM node list: "gpu[003-006,010],cpu1" -> "gpu003".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace chatmill::train
