#include "train/parallel/communicator.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <exception>

#include "common/error.h"

namespace chatmill::train {

namespace {

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_sum(at::Tensor&) override {}
  Pending all_reduce_sum_async(at::Tensor&) override { return [] {}; }
  void broadcast(at::Tensor&, int) override {}
  void reduce_scatter_sum(at::Tensor& out, const at::Tensor& in) override { out.copy_(in); }
  void all_gather(at::Tensor& out, const at::Tensor& in) override { out.copy_(in); }
  void barrier() override {}
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

// Wraps a c10d backend; shared by the Gloo path here and the NCCL path in train/cuda/.
class C10dCommunicator : public Communicator {
 public:
  C10dCommunicator(c10::intrusive_ptr<c10d::Backend> pg, int rank, int world, std::string name)
      : pg_(std::move(pg)), rank_(rank), world_(world), name_(std::move(name)) {}
  // As torch.distributed.destroy_process_group does: NCCL warns, and may leave communicators behind, without a
  // shutdown. After a failed collective, or while an error unwinds (this rank may leave collectives queued that
  // its peers never match), abort instead: a clean shutdown would wait on them.
  ~C10dCommunicator() override {
    try {
      if (failed_ || std::uncaught_exceptions() > 0) pg_->abort();
      else pg_->shutdown();
    } catch (const std::exception&) {
    }
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void all_reduce_sum(at::Tensor& t) override {
    std::vector<at::Tensor> v{t};
    run("all_reduce", [&] { return pg_->allreduce(v); });
  }
  Pending all_reduce_sum_async(at::Tensor& t) override {
    std::vector<at::Tensor> v{t};
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = pg_->allreduce(v);
    } catch (const std::exception& e) {
      fail("all_reduce", e);
    }
    return [this, work] {
      try {
        work->wait();
      } catch (const std::exception& e) {
        fail("all_reduce", e);
      }
    };
  }
  void broadcast(at::Tensor& t, int root) override {
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    run("broadcast", [&] { return pg_->broadcast(v, o); });
  }
  void reduce_scatter_sum(at::Tensor& out, const at::Tensor& in) override {
    at::Tensor src = in;
    run("reduce_scatter", [&] { return pg_->_reduce_scatter_base(out, src); });
  }
  void all_gather(at::Tensor& out, const at::Tensor& in) override {
    at::Tensor src = in;
    run("all_gather", [&] { return pg_->_allgather_base(out, src); });
  }
  void barrier() override {
    run("barrier", [&] { return pg_->barrier(); });
  }

 private:
  [[noreturn]] void fail(const char* what, const std::exception& e) {
    failed_ = true;
    CHATMILL_FAIL(name_, " ", what, " failed on rank ", rank_, " of ", world_,
                  ": another rank exited, hung past the timeout, or the network broke (", e.what(), ")");
  }
  template <typename F>
  void run(const char* what, F&& launch) {
    try {
      auto work = launch();
      work->wait();
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }
  c10::intrusive_ptr<c10d::Backend> pg_;
  int rank_, world_;
  std::string name_;
  bool failed_ = false;
};

#ifdef CHATMILL_CUDA
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, const DistEnv& env,
                                                    std::chrono::milliseconds timeout);
#endif

std::unique_ptr<Communicator> make_c10d_communicator(const DistEnv& env, bool cuda, std::chrono::milliseconds timeout) {
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(env.master_port);
    o.isServer = env.rank == 0;
    o.numWorkers = env.world_size;
    o.waitWorkers = true;
    o.timeout = timeout;
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  } catch (const std::exception& e) {
    CHATMILL_FAIL("rendezvous at ", env.master_addr, ":", env.master_port, " failed on rank ", env.rank, " of ",
                  env.world_size, " (", e.what(), "); check MASTER_ADDR/MASTER_PORT and that every rank started");
  }
  if (cuda) {
#ifdef CHATMILL_CUDA
    return std::make_unique<C10dCommunicator>(make_nccl_backend(store, env, timeout), env.rank, env.world_size, "NCCL");
#else
    CHATMILL_FAIL("multi-GPU training needs a build with -DCHATMILL_CUDA=ON (NCCL)");
#endif
  }
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  // On one machine over loopback; across machines on the interface this host's name resolves to.
  const bool loopback = env.master_addr == "127.0.0.1" || env.master_addr == "localhost";
  opts->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, opts);
  return std::make_unique<C10dCommunicator>(pg, env.rank, env.world_size, "Gloo");
}

}  // namespace chatmill::train
