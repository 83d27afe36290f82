// Collectives between the ranks of a run: a c10d process group (Gloo for CPU tensors, NCCL for CUDA ones)
// behind a small interface, with one rank a no-op. Every failure (a peer that died, a timeout) becomes a
// chatmill::Error that says which collective and rank, so no rank hangs silently.
#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "train/parallel/dist_env.h"

namespace chatmill::train {

class Communicator {
 public:
  using Pending = std::function<void()>;  // waits for an asynchronous collective (throws on failure)
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual void all_reduce_sum(at::Tensor& t) = 0;
  virtual Pending all_reduce_sum_async(at::Tensor& t) = 0;  // overlaps with the caller's work
  virtual void broadcast(at::Tensor& t, int root) = 0;
  // in: (world * n), out: (n) = the sum over ranks of slice `rank` of everyone's `in`.
  virtual void reduce_scatter_sum(at::Tensor& out, const at::Tensor& in) = 0;
  // in: (n), out: (world * n), rank r's `in` at slice r.
  virtual void all_gather(at::Tensor& out, const at::Tensor& in) = 0;
  virtual void barrier() = 0;
};

// world_size 1: a communicator whose collectives are identities.
std::unique_ptr<Communicator> make_local_communicator();

// Rendezvous through a c10d TCPStore at env.master_addr:master_port (rank 0 serves it), then a Gloo
// (device cpu) or NCCL (cuda; needs a -DCHATMILL_CUDA=ON build) process group. `timeout` bounds the
// rendezvous and every collective.
std::unique_ptr<Communicator> make_c10d_communicator(const DistEnv& env, bool cuda, std::chrono::milliseconds timeout);

}  // namespace chatmill::train
