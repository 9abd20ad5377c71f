// tfgen firmware: TFLM's reference SOFTMAX under tfgen's name, for the ESP chips' projects where
// esp-tflite-micro's ESP-NN softmax would overrun its scratch buffer.
//
// esp-tflite-micro 1.3.8's kernels/esp_nn/softmax.cc sizes the int8 kernel's scratch buffer from the
// input's dims[1] (4 bytes each) while esp_nn_softmax_s8 writes one int32 per element of the last
// dimension: for an input such as 1x1x1xN it writes 4*N bytes into a 4-byte buffer in the arena.
// tfgen's plan registers this kernel for such models instead (the generated RegisterOps says so).
// It is TFLM's own reference code path: SoftmaxInit and SoftmaxPrepare from softmax_common.cc
// (which esp-tflite-micro compiles too) and reference_ops::Softmax, as kernels/softmax.cc calls them.
#ifndef TFGEN_SOFTMAX_H_
#define TFGEN_SOFTMAX_H_

#include "tensorflow/lite/micro/micro_common.h"

namespace tfgen {

TFLMRegistration Register_SOFTMAX_REFERENCE();

}  // namespace tfgen

#endif  // TFGEN_SOFTMAX_H_
