// The generated header's API exactly as firmware/README.md states the contract, for compile-only
// checks of firmware/ (no definitions: nothing is linked).
#ifndef TFGEN_MODEL_H_
#define TFGEN_MODEL_H_

#define TFGEN_FIRMWARE_API 1

#include <cstddef>
#include <cstdint>

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

namespace tfgen_model {
inline constexpr char kModelName[] = "contract.tflite";
inline constexpr char kModelSha256[] = "0000000000000000000000000000000000000000000000000000000000000000";
inline constexpr std::size_t kArenaSize = 4096;
inline constexpr int kNumOps = 1;
using OpResolver = tflite::MicroMutableOpResolver<kNumOps>;
TfLiteStatus RegisterOps(OpResolver& resolver);
const unsigned char* ModelData();
unsigned int ModelSize();
std::uint8_t* ArenaBuffer();
struct TensorInfo {
  const char* name; TfLiteType type; int num_dims; int dims[6]; int bytes; float scale; std::int32_t zero_point;
};
inline constexpr int kNumInputs = 1;
inline constexpr int kNumOutputs = 1;
extern const TensorInfo kInputs[kNumInputs];
extern const TensorInfo kOutputs[kNumOutputs];
const unsigned char* VectorData();
unsigned int VectorSize();
}  // namespace tfgen_model

#endif  // TFGEN_MODEL_H_
