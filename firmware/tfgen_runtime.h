// tfgen firmware: the inference harness around TFLM's MicroInterpreter.
//
// A Runner owns the interpreter built from what the generated tfgen_model.h provides (the model,
// the op resolver filled by RegisterOps, the arena). Init() checks every step and the generated
// header against the model itself, so a stale or hand-edited header fails loudly at start-up
// instead of computing garbage. Every failure is printed as one `error: ...` line.
#ifndef TFGEN_RUNTIME_H_
#define TFGEN_RUNTIME_H_

#include <cstddef>
#include <cstdint>

#include "tfgen_model.h"  // first: it says which runtime the project has (TFGEN_RUNTIME_AOT)
#if !defined(TFGEN_RUNTIME_AOT)
#include "tensorflow/lite/micro/micro_interpreter.h"
#endif
#if defined(TFGEN_PROFILE)
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#endif

// The generated tfgen_model.h and this harness come from one tfgen: a project whose generated files
// and harness files are of different tfgen versions stops here, not with obscure errors further down.
#define TFGEN_FIRMWARE_API_OF_HARNESS 1
#if !defined(TFGEN_FIRMWARE_API) || TFGEN_FIRMWARE_API != TFGEN_FIRMWARE_API_OF_HARNESS
#error "tfgen_model.h and tfgen_runtime.h are of different tfgen versions: regenerate the project with `tfgen generate --force`"
#endif

namespace tfgen {

#if defined(TFGEN_PROFILE)
// The ticks (platform::TicksNow) of each op of the last Invoke, in execution order, for `tfgen
// profile`: TFLM's interpreter calls BeginEvent and EndEvent around every op it invokes. Only in
// profiling builds (-DTFGEN_PROFILE); the normal image has no profiler.
class OpProfiler : public tflite::MicroProfilerInterface {
 public:
  static constexpr int kMaxEvents = 512;
  std::uint32_t BeginEvent(const char* tag) override;
  void EndEvent(std::uint32_t handle) override;
  void Clear() { count_ = 0; }
  int count() const { return count_ < kMaxEvents ? count_ : kMaxEvents; }
  const char* tag(int i) const { return tags_[i]; }
  std::uint32_t ticks(int i) const { return ticks_[i]; }

 private:
  const char* tags_[kMaxEvents] = {};
  std::uint32_t start_[kMaxEvents] = {};
  std::uint32_t ticks_[kMaxEvents] = {};
  int count_ = 0;
};
#endif

// What a tensor is expected to look like; from tfgen_model::TensorInfo or a vector file.
struct TensorSpec {
  TfLiteType type;
  int num_dims;
  const int* dims;
  std::size_t bytes;
  float scale;
  std::int32_t zero_point;
};

TensorSpec SpecOf(const tfgen_model::TensorInfo& info);

// True when ``tensor`` has exactly the spec's type, shape, size, scale and zero point; otherwise
// prints one `error:` line naming ``what`` ("input 0 ..."), the field, and both values.
bool CheckTensor(const TfLiteTensor& tensor, const TensorSpec& spec, const char* what);

// Prints `error: <message>` and a newline.
void PrintError(const char* format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

class Runner {
 public:
  Runner() = default;
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Checks the arena and the model's schema version, registers the ops, builds the interpreter,
  // allocates the tensors and checks inputs and outputs against tfgen_model::kInputs/kOutputs.
  // kTfLiteOk only if all of that worked; call once.
  TfLiteStatus Init();
  bool ready() const { return ready_; }

  // Runs the model once and records how long it took.
  TfLiteStatus Invoke();

  // Puts variable tensors (the state of LSTMs and other stateful models) back to their initial
  // values, so the next Invoke does not depend on earlier ones.
  TfLiteStatus Reset();

  int inputs_size() const { return tfgen_model::kNumInputs; }
  int outputs_size() const { return tfgen_model::kNumOutputs; }
  // nullptr (and an error line) before a successful Init or for an index out of range.
  TfLiteTensor* input(int index);
  TfLiteTensor* output(int index);

  // Quantizes ``count`` floats into elements [first, first + count) of input ``index`` with the
  // input's scale and zero point (int8 and int16 inputs; float32 inputs are copied).
  TfLiteStatus SetInputFloats(int index, const float* values, std::size_t count,
                              std::size_t first = 0);
  // Dequantizes elements [first, first + count) of output ``index`` into ``values``.
  TfLiteStatus GetOutputFloats(int index, float* values, std::size_t count,
                               std::size_t first = 0);

  // Bytes of the arena the interpreter actually uses (valid after Init).
  std::size_t arena_used_bytes() const;
  // Duration of the last successful Invoke, in microseconds.
  std::uint32_t last_invoke_us() const { return last_invoke_us_; }
#if defined(TFGEN_PROFILE)
  // The last Invoke, op by op, and as a whole, in platform ticks.
  const OpProfiler& profiler() const { return profiler_; }
  std::uint32_t last_invoke_ticks() const { return last_invoke_ticks_; }
#endif

#if !defined(TFGEN_RUNTIME_AOT)
  tflite::MicroInterpreter* interpreter() { return interpreter_; }
#endif

 private:
#if !defined(TFGEN_RUNTIME_AOT)
  TfLiteStatus CheckOpsRegistered(const tflite::Model* model);
  TfLiteStatus CheckModelTensors();
#endif
  TfLiteTensor* RawTensor(bool is_input, int index);
  TfLiteStatus RunModel();       // the interpreter's Invoke, or the generated code's
  // With ``type``: also reports the tensor's type and checks that [first, first + span) lies within it.
  TfLiteTensor* Tensor(bool is_input, int index, TfLiteType* type, std::size_t first = 0,
                       std::size_t span = 0);

#if defined(TFGEN_RUNTIME_AOT)
  // The generated code's inputs and outputs, described for SetInputFloats and the harness.
  TfLiteTensor inputs_[tfgen_model::kNumInputs] = {};
  TfLiteTensor outputs_[tfgen_model::kNumOutputs] = {};
  // Their shapes as TfLiteIntArray: the count, then up to 6 dimensions.
  int input_dims_[tfgen_model::kNumInputs][7] = {};
  int output_dims_[tfgen_model::kNumOutputs][7] = {};
#else
  tfgen_model::OpResolver resolver_;
  // The interpreter is built in place once Init has checked what its constructor relies on
  // (an arena, a model of the right schema); no heap is used.
  alignas(tflite::MicroInterpreter) unsigned char storage_[sizeof(tflite::MicroInterpreter)];
  tflite::MicroInterpreter* interpreter_ = nullptr;
#endif
  bool ready_ = false;
  bool init_called_ = false;
  std::uint32_t last_invoke_us_ = 0;
#if defined(TFGEN_PROFILE)
  OpProfiler profiler_;
  std::uint32_t last_invoke_ticks_ = 0;
#endif
};

}  // namespace tfgen

#endif  // TFGEN_RUNTIME_H_
