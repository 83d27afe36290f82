// Dense bf16 tensor-core peaks of the data-centre GPUs people train on, for MFU when logging.peak_tflops is
// not set. Figures are NVIDIA's datasheet numbers without sparsity.
#pragma once
#include <string>

namespace chatmill::train {

// The device name as CUDA reports it ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", ...) -> TFLOP/s, or 0
// when the device is not in the table.
double dense_bf16_peak_tflops(const std::string& device_name);

}  // namespace chatmill::train
