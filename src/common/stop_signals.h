// A long job (training) asked to stop at its next safe point: SIGTERM (scancel, preemption, torchrun passing on
// its own), SIGINT (Ctrl-C) and SIGUSR1 (SLURM's --signal=USR1@SECONDS warning) set a flag that the job polls;
// a second Ctrl-C kills at once. Handlers are installed for the object's lifetime; one object at a time.
#pragma once

namespace chatmill {

class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // 0, or the first signal received.
  int received() const;
};

}  // namespace chatmill
