// Read-only streams over device memory in several access patterns (bench/read_streams.cu), for bench_kernels:
// what read bandwidth a kernel reaches with each, beside the copy bandwidth the decode limit is set against.
// The skinny GEMM streams weights as the "rows" patterns do; the question they answer is how much of the gap
// between its ~87% of copy bandwidth and a plain sweep is its access pattern and how much its loads in flight,
// and whether bulk asynchronous copies into shared memory (TMA, sm_90) close it.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace chatmill::bench {

enum class ReadPattern {
  Sweep,      // every thread 8 loads of 16 bytes in flight, the grid sweeping the buffer front to back
  Rows,       // a warp a row of 8 KB at a time (the skinny GEMM at K 4096), 8 loads a lane in flight
  RowsDeep,   // the same with 16 loads a lane in flight
  RowPairs,   // a warp two rows at once from the buffer's two halves (gate and up), 8 loads a lane each
  BlockRows,  // a block's 8 warps read its 8 rows' 64 KB front to back together, 4 KB a step
  Bulk,       // a block a ring of 4 shared-memory stages of 16 KB, each filled by one bulk copy (cp.async.bulk)
};

const char* describe(ReadPattern p);

// Reads all `bytes` of buf once in pattern p on `stream`. buf 16-byte aligned; bytes a multiple of 64 KB.
// sink: a float the kernel writes only if an impossible checksum comes out (so the loads are kept).
void read_once(ReadPattern p, const void* buf, size_t bytes, float* sink, cudaStream_t stream);

}  // namespace chatmill::bench
