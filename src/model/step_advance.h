// The end of a greedy decode step, on the device: each row's greedy token becomes the row's next input and
// reaches host memory with no copy queued after the step, and the rows move one column on. With it an engine
// can queue the next step before it reads this one's tokens (infer/engine.h, EngineOptions::overlap).
//
// Shape legend: n rows of the step, B rows of the step state, V vocab.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "model/fused_ops.h"

namespace chatmill::model {

// The (2, B) int64 host buffer advance_greedy writes, zeroed: pinned (so the device can write it) for a CUDA
// device.
at::Tensor advance_ring(int64_t B, at::Device device);

// logits: (n, V) float32 with contiguous rows, on the state's device, 1 <= n <= B. state: (4, B) int64 contiguous:
// ids, columns, lengths, advance (each advance 0 or 1). ring: advance_ring(B, the state's device).
// For each row b < n: ring[columns[b] % 2][b] = argmax(logits[b]) (at::argmax's choice: the first largest, NaN
// above all) if advance[b] is 1, then ids[b] = that id, columns[b] += advance[b], lengths[b] += advance[b]. A
// row's ring entry alternates with its column, so one step's ids stay readable while the next step (one column
// on) runs. An idle row (advance 0) leaves the ring alone, so that a reader who resets each entry it reads sees
// every entry no step wrote as still reset.
// On a CUDA device: one kernel on the current stream, writing `ring` itself; the ids are there once the stream
// has passed this point (an event recorded after it). Elsewhere LibTorch ops, done on return (on a CUDA device
// too: the ring's copy waits for the device).
void advance_greedy(const at::Tensor& logits, const at::Tensor& state, const at::Tensor& ring,
                    fused::ForceReference ref = {});

}  // namespace chatmill::model
