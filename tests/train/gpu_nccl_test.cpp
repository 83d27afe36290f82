// On a CUDA machine (scripts/gpu_check.sh): the NCCL process group that multi-GPU training uses, built
// through the same rendezvous (TCPStore) as a real run, with one rank: every collective the trainer calls runs
// through NCCL on CUDA tensors and returns what a world of one must. (Two ranks need two GPUs: NCCL refuses
// two ranks on one device; tests/train/check_train_cli.py runs the same collectives with two Gloo ranks.)
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "model/step_graph.h"
#include "train/parallel/communicator.h"

namespace chatmill {
namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(GpuNccl, OneRankRunsEveryCollectiveThroughNccl) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device here; scripts/gpu_check.sh runs this on the GPU machine";
  if (!model::cuda_graphs_built()) GTEST_SKIP() << "built without -DCHATMILL_CUDA=ON (no NCCL)";
  train::DistEnv env;
  env.master_port = free_port();
  auto comm = train::make_c10d_communicator(env, /*cuda=*/true, std::chrono::milliseconds(60000));
  ASSERT_EQ(comm->world_size(), 1);
  auto opts = at::TensorOptions().dtype(at::kFloat).device("cuda:0");
  const at::Tensor x = at::randn({1000}, opts);

  at::Tensor a = x.clone();
  comm->all_reduce_sum(a);
  EXPECT_TRUE(a.equal(x)) << "all_reduce over one rank";
  at::Tensor b = x.clone();
  auto pending = comm->all_reduce_sum_async(b);
  pending();
  EXPECT_TRUE(b.equal(x)) << "asynchronous all_reduce";
  at::Tensor c = x.clone();
  comm->broadcast(c, 0);
  EXPECT_TRUE(c.equal(x)) << "broadcast";
  at::Tensor shard = at::empty({1000}, opts);
  comm->reduce_scatter_sum(shard, x);
  EXPECT_TRUE(shard.equal(x)) << "reduce_scatter";
  at::Tensor gathered = at::empty({1000}, opts);
  comm->all_gather(gathered, x);
  EXPECT_TRUE(gathered.equal(x)) << "all_gather";
  at::Tensor h = x.to(at::kBFloat16);
  comm->all_reduce_sum(h);
  EXPECT_TRUE(h.equal(x.to(at::kBFloat16))) << "bf16 all_reduce";
  comm->barrier();
}

}  // namespace
}  // namespace chatmill
