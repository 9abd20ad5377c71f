// tfgen firmware: the inference harness (see tfgen_runtime.h).
#include "tfgen_runtime.h"

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#if !defined(TFGEN_RUNTIME_AOT)
#include "tensorflow/compiler/mlir/lite/schema/schema_utils.h"
#include "tensorflow/lite/schema/schema_generated.h"
#endif
#include "tfgen_platform.h"
#include "tfgen_quant.h"

namespace tfgen {

namespace {

constexpr std::size_t kArenaAlignment = 16;
constexpr int kErrorBufferSize = 256;

std::size_t ElementSize(TfLiteType type) {
  switch (type) {
    case kTfLiteInt8:
    case kTfLiteUInt8:
    case kTfLiteBool:
      return 1;
    case kTfLiteInt16:
    case kTfLiteUInt16:
      return 2;
    case kTfLiteFloat32:
    case kTfLiteInt32:
    case kTfLiteUInt32:
      return 4;
    case kTfLiteInt64:
    case kTfLiteFloat64:
      return 8;
    default:
      return 0;
  }
}

// "[1, 49, 10, 1]" into ``out``.
void FormatDims(const int* dims, int num_dims, char* out, std::size_t size) {
  std::size_t used = static_cast<std::size_t>(std::snprintf(out, size, "["));
  for (int i = 0; i < num_dims && used < size; ++i) {
    used += static_cast<std::size_t>(
        std::snprintf(out + used, size - used, i == 0 ? "%d" : ", %d", dims[i]));
  }
  if (used < size) {
    std::snprintf(out + used, size - used, "]");
  }
}

}  // namespace

void PrintError(const char* format, ...) {
  char buffer[kErrorBufferSize];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  platform::Printf("error: %s\n", buffer);
}

TensorSpec SpecOf(const tfgen_model::TensorInfo& info) {
  return TensorSpec{info.type,  info.num_dims, info.dims, static_cast<std::size_t>(info.bytes),
                    info.scale, info.zero_point};
}

bool CheckTensor(const TfLiteTensor& tensor, const TensorSpec& spec, const char* what) {
  if (tensor.type != spec.type) {
    PrintError("%s: type %s, expected %s", what, TfLiteTypeGetName(tensor.type),
               TfLiteTypeGetName(spec.type));
    return false;
  }
  const int num_dims = tensor.dims != nullptr ? tensor.dims->size : 0;
  bool same_shape = num_dims == spec.num_dims;
  for (int i = 0; same_shape && i < num_dims; ++i) {
    same_shape = tensor.dims->data[i] == spec.dims[i];
  }
  if (!same_shape) {
    char got[96];
    char want[96];
    FormatDims(tensor.dims != nullptr ? tensor.dims->data : nullptr, num_dims, got, sizeof(got));
    FormatDims(spec.dims, spec.num_dims, want, sizeof(want));
    PrintError("%s: shape %s, expected %s", what, got, want);
    return false;
  }
  if (tensor.bytes != spec.bytes) {
    PrintError("%s: %lu bytes, expected %lu", what, static_cast<unsigned long>(tensor.bytes),
               static_cast<unsigned long>(spec.bytes));
    return false;
  }
  // Both come from the same float32 in the flatbuffer, so they are equal, not just close.
  if (tensor.params.scale != spec.scale || tensor.params.zero_point != spec.zero_point) {
    PrintError("%s: scale %.9g zero point %ld, expected scale %.9g zero point %ld", what,
               static_cast<double>(tensor.params.scale),
               static_cast<long>(tensor.params.zero_point), static_cast<double>(spec.scale),
               static_cast<long>(spec.zero_point));
    return false;
  }
  return true;
}

#if !defined(TFGEN_RUNTIME_AOT)

Runner::~Runner() {
  if (interpreter_ != nullptr) {
    interpreter_->~MicroInterpreter();
  }
}

TfLiteStatus Runner::Init() {
  if (init_called_) {
    PrintError("Runner::Init called twice");
    return kTfLiteError;
  }
  init_called_ = true;

  std::uint8_t* arena = tfgen_model::ArenaBuffer();
  if (arena == nullptr) {
    PrintError("no tensor arena: allocating %lu bytes failed (PSRAM missing or not enabled?)",
               static_cast<unsigned long>(tfgen_model::kArenaSize));
    return kTfLiteError;
  }
  if (reinterpret_cast<std::uintptr_t>(arena) % kArenaAlignment != 0) {
    PrintError("tensor arena at %p is not %lu-byte aligned", static_cast<void*>(arena),
               static_cast<unsigned long>(kArenaAlignment));
    return kTfLiteError;
  }

  const unsigned char* data = tfgen_model::ModelData();
  if (data == nullptr || tfgen_model::ModelSize() < 8 ||
      !tflite::ModelBufferHasIdentifier(data)) {
    PrintError("model %s: the embedded data is not a .tflite flatbuffer (no TFL3 identifier)",
               tfgen_model::kModelName);
    return kTfLiteError;
  }
  const tflite::Model* model = tflite::GetModel(data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    PrintError("model %s has schema version %lu; this TFLM reads version %d",
               tfgen_model::kModelName, static_cast<unsigned long>(model->version()),
               TFLITE_SCHEMA_VERSION);
    return kTfLiteError;
  }
  if (model->subgraphs() == nullptr || model->subgraphs()->size() < 1) {
    PrintError("model %s has no subgraph", tfgen_model::kModelName);
    return kTfLiteError;
  }

  if (tfgen_model::RegisterOps(resolver_) != kTfLiteOk) {
    PrintError("RegisterOps failed: tfgen_model::kNumOps (%d) is smaller than the ops it adds",
               tfgen_model::kNumOps);
    return kTfLiteError;
  }

  if (CheckOpsRegistered(model) != kTfLiteOk) return kTfLiteError;

#if defined(TFGEN_PER_OP)
  // The per-op dump reads every op's output after Invoke: keep all tensors (a larger arena).
  constexpr bool kPreserveAllTensors = true;
#else
  constexpr bool kPreserveAllTensors = false;
#endif
#if defined(TFGEN_PROFILE)
  tflite::MicroProfilerInterface* profiler = &profiler_;
#else
  tflite::MicroProfilerInterface* profiler = nullptr;
#endif
  tflite::MicroInterpreter* interpreter = new (storage_) tflite::MicroInterpreter(
      model, resolver_, arena, tfgen_model::kArenaSize, nullptr, profiler, kPreserveAllTensors);
  if (interpreter->initialization_status() != kTfLiteOk) {
    PrintError("the TFLM interpreter did not initialize (see TFLM's message above)");
    interpreter->~MicroInterpreter();
    return kTfLiteError;
  }
  if (interpreter->AllocateTensors() != kTfLiteOk) {
    PrintError(
        "AllocateTensors failed: the tensor arena (kArenaSize, %lu bytes) is too small for this "
        "model (see TFLM's message above)",
        static_cast<unsigned long>(tfgen_model::kArenaSize));
    interpreter->~MicroInterpreter();
    return kTfLiteError;
  }
  interpreter_ = interpreter;
  if (CheckModelTensors() != kTfLiteOk) {
    interpreter_->~MicroInterpreter();
    interpreter_ = nullptr;
    return kTfLiteError;
  }
  ready_ = true;
  return kTfLiteOk;
}

namespace {

// Whether some operator of some subgraph uses operator code ``index``. Converters may leave codes that
// no operator uses in the table (an unused DEQUANTIZE, say); TFLM resolves only the codes its
// operators use, and so does tfgen's resolver, so only those must be registered.
bool OpCodeUsed(const tflite::Model* model, uint32_t index) {
  const auto* subgraphs = model->subgraphs();
  if (subgraphs == nullptr) return false;
  for (const tflite::SubGraph* subgraph : *subgraphs) {
    const auto* operators = subgraph->operators();
    if (operators == nullptr) continue;
    for (const tflite::Operator* op : *operators) {
      if (op->opcode_index() == index) return true;
    }
  }
  return false;
}

}  // namespace

TfLiteStatus Runner::CheckOpsRegistered(const tflite::Model* model) {
  const auto* codes = model->operator_codes();
  if (codes == nullptr) return kTfLiteOk;
  bool ok = true;
  for (uint32_t i = 0; i < codes->size(); ++i) {
    if (!OpCodeUsed(model, i)) continue;
    const tflite::OperatorCode* code = codes->Get(i);
    const tflite::BuiltinOperator op = tflite::GetBuiltinCode(code);
    if (op == tflite::BuiltinOperator_CUSTOM) {
      const char* name = code->custom_code() != nullptr ? code->custom_code()->c_str() : "";
      if (resolver_.FindOp(name) == nullptr) {
        PrintError("custom op %s is not registered: RegisterOps lacks it (regenerate the project)",
                   name);
        ok = false;
      }
    } else if (resolver_.FindOp(op) == nullptr) {
      PrintError("op %s is not registered: RegisterOps lacks it (regenerate the project)",
                 tflite::EnumNameBuiltinOperator(op));
      ok = false;
    }
  }
  return ok ? kTfLiteOk : kTfLiteError;
}

TfLiteStatus Runner::CheckModelTensors() {
  const int num_inputs = static_cast<int>(interpreter_->inputs_size());
  const int num_outputs = static_cast<int>(interpreter_->outputs_size());
  if (num_inputs != tfgen_model::kNumInputs || num_outputs != tfgen_model::kNumOutputs) {
    PrintError(
        "model %s has %d inputs and %d outputs, tfgen_model.h says %d and %d: regenerate the "
        "project",
        tfgen_model::kModelName, num_inputs, num_outputs, tfgen_model::kNumInputs,
        tfgen_model::kNumOutputs);
    return kTfLiteError;
  }
  bool ok = true;
  char what[80];
  for (int i = 0; i < num_inputs; ++i) {
    std::snprintf(what, sizeof(what), "input %d (%s) against tfgen_model.h", i,
                  tfgen_model::kInputs[i].name);
    ok = CheckTensor(*interpreter_->input(i), SpecOf(tfgen_model::kInputs[i]), what) && ok;
  }
  for (int i = 0; i < num_outputs; ++i) {
    std::snprintf(what, sizeof(what), "output %d (%s) against tfgen_model.h", i,
                  tfgen_model::kOutputs[i].name);
    ok = CheckTensor(*interpreter_->output(i), SpecOf(tfgen_model::kOutputs[i]), what) && ok;
  }
  if (!ok) {
    PrintError("tfgen_model.h does not describe model %s: regenerate the project",
               tfgen_model::kModelName);
    return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteStatus Runner::RunModel() { return interpreter_->Invoke(); }  // its profiler: given at Init

TfLiteStatus Runner::Reset() {
  if (interpreter_ == nullptr) {
    PrintError("Reset before a successful Init");
    return kTfLiteError;
  }
  if (interpreter_->Reset() != kTfLiteOk) {
    PrintError("Reset failed (see TFLM's message above)");
    return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteTensor* Runner::RawTensor(bool is_input, int index) {
  return is_input ? interpreter_->input(static_cast<std::size_t>(index))
                  : interpreter_->output(static_cast<std::size_t>(index));
}

std::size_t Runner::arena_used_bytes() const {
  return interpreter_ != nullptr ? interpreter_->arena_used_bytes() : 0;
}

#else  // TFGEN_RUNTIME_AOT: the generated code is the model (tfgen_aot.cc)

}  // namespace tfgen

void tfgen_model::ScratchError(int op, const char* name, long needed, long planned) {
  tfgen::PrintError("op %d (%s) needs %ld bytes of scratch, the plan gave it %ld: regenerate the project, and "
                    "report it if it persists", op, name, needed, planned);
}

namespace tfgen {

Runner::~Runner() = default;

namespace {
void Describe(TfLiteTensor* tensor, int* dims, const tfgen_model::TensorInfo& info, std::uint8_t* data) {
  dims[0] = info.num_dims;
  for (int d = 0; d < info.num_dims; ++d) dims[1 + d] = info.dims[d];
  tensor->dims = reinterpret_cast<TfLiteIntArray*>(dims);
  tensor->type = info.type;
  tensor->data.raw = reinterpret_cast<char*>(data);
  tensor->bytes = static_cast<std::size_t>(info.bytes);
  tensor->params.scale = info.scale;
  tensor->params.zero_point = info.zero_point;
}
}  // namespace

TfLiteStatus Runner::Init() {
  if (init_called_) {
    PrintError("Runner::Init called twice");
    return kTfLiteError;
  }
  init_called_ = true;
  if (tfgen_model::ArenaBuffer() == nullptr) {
    PrintError("could not allocate the %lu-byte activation buffer", static_cast<unsigned long>(tfgen_model::kArenaSize));
    return kTfLiteError;
  }
  if (reinterpret_cast<std::uintptr_t>(tfgen_model::ArenaBuffer()) % kArenaAlignment != 0) {
    PrintError("the activation buffer is not %lu-byte aligned", static_cast<unsigned long>(kArenaAlignment));
    return kTfLiteError;
  }
  if (tfgen_model::Prepare() != kTfLiteOk) return kTfLiteError;
  for (int i = 0; i < tfgen_model::kNumInputs; ++i) {
    Describe(&inputs_[i], input_dims_[i], tfgen_model::kInputs[i], tfgen_model::InputData(i));
  }
  for (int o = 0; o < tfgen_model::kNumOutputs; ++o) {
    Describe(&outputs_[o], output_dims_[o], tfgen_model::kOutputs[o], tfgen_model::OutputData(o));
  }
  ready_ = true;
  return kTfLiteOk;
}

TfLiteStatus Runner::RunModel() {
#if defined(TFGEN_PROFILE)
  return tfgen_model::Invoke(&profiler_);
#else
  return tfgen_model::Invoke(nullptr);
#endif
}

// The covered ops keep no state between invocations: nothing to reset.
TfLiteStatus Runner::Reset() {
  if (!ready_) {
    PrintError("Reset before a successful Init");
    return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteTensor* Runner::RawTensor(bool is_input, int index) {
  return is_input ? &inputs_[index] : &outputs_[index];
}

std::size_t Runner::arena_used_bytes() const { return ready_ ? tfgen_model::kArenaSize : 0; }

#endif  // TFGEN_RUNTIME_AOT

TfLiteStatus Runner::Invoke() {
  if (!ready_) {
    PrintError("Invoke before a successful Init");
    return kTfLiteError;
  }
#if defined(TFGEN_PROFILE)
  profiler_.Clear();
  const std::uint32_t start_ticks = platform::TicksNow();
#endif
  const std::uint32_t start = platform::MicrosNow();
  const TfLiteStatus status = RunModel();
  const std::uint32_t elapsed = platform::MicrosNow() - start;
#if defined(TFGEN_PROFILE)
  last_invoke_ticks_ = platform::TicksNow() - start_ticks;
#endif
  if (status != kTfLiteOk) {
    PrintError("Invoke failed (see the message above)");
    return status;
  }
  last_invoke_us_ = elapsed;
  return kTfLiteOk;
}

TfLiteTensor* Runner::input(int index) {
  return Tensor(true, index, nullptr);
}

TfLiteTensor* Runner::output(int index) {
  return Tensor(false, index, nullptr);
}

TfLiteTensor* Runner::Tensor(bool is_input, int index, TfLiteType* type, std::size_t first,
                             std::size_t span) {
  const char* kind = is_input ? "input" : "output";
  const int count = is_input ? tfgen_model::kNumInputs : tfgen_model::kNumOutputs;
  if (!ready_) {
    PrintError("%s %d requested before a successful Init", kind, index);
    return nullptr;
  }
  if (index < 0 || index >= count) {
    PrintError("no %s %d: the model has %d", kind, index, count);
    return nullptr;
  }
  TfLiteTensor* tensor = RawTensor(is_input, index);
  if (tensor != nullptr && type != nullptr) {
    *type = tensor->type;
    const std::size_t size = ElementSize(tensor->type);
    const std::size_t elements = size != 0 ? tensor->bytes / size : 0;
    if (first > elements || span > elements - first) {
      PrintError("%s %d holds %lu values; cannot %s [%lu, %lu)", kind, index,
                 static_cast<unsigned long>(elements), is_input ? "set" : "get",
                 static_cast<unsigned long>(first), static_cast<unsigned long>(first + span));
      return nullptr;
    }
  }
  return tensor;
}

TfLiteStatus Runner::SetInputFloats(int index, const float* values, std::size_t count,
                                    std::size_t first) {
  TfLiteType type = kTfLiteNoType;
  TfLiteTensor* tensor = Tensor(true, index, &type, first, count);
  if (tensor == nullptr) {
    return kTfLiteError;
  }
  const float scale = tensor->params.scale;
  const std::int32_t zero_point = tensor->params.zero_point;
  switch (type) {
    case kTfLiteInt8:
      AffineQuantize(values, tensor->data.int8 + first, count, scale, zero_point);
      return kTfLiteOk;
    case kTfLiteInt16:
      AffineQuantize(values, tensor->data.i16 + first, count, scale, zero_point);
      return kTfLiteOk;
    case kTfLiteFloat32:
      std::memcpy(tensor->data.f + first, values, count * sizeof(float));
      return kTfLiteOk;
    default:
      PrintError("input %d is %s; SetInputFloats takes int8, int16 and float32 inputs", index,
                 TfLiteTypeGetName(type));
      return kTfLiteError;
  }
}

TfLiteStatus Runner::GetOutputFloats(int index, float* values, std::size_t count,
                                     std::size_t first) {
  TfLiteType type = kTfLiteNoType;
  TfLiteTensor* tensor = Tensor(false, index, &type, first, count);
  if (tensor == nullptr) {
    return kTfLiteError;
  }
  const float scale = tensor->params.scale;
  const std::int32_t zero_point = tensor->params.zero_point;
  switch (type) {
    case kTfLiteInt8:
      Dequantize(tensor->data.int8 + first, values, count, scale, zero_point);
      return kTfLiteOk;
    case kTfLiteInt16:
      Dequantize(tensor->data.i16 + first, values, count, scale, zero_point);
      return kTfLiteOk;
    case kTfLiteFloat32:
      std::memcpy(values, tensor->data.f + first, count * sizeof(float));
      return kTfLiteOk;
    default:
      PrintError("output %d is %s; GetOutputFloats takes int8, int16 and float32 outputs", index,
                 TfLiteTypeGetName(type));
      return kTfLiteError;
  }
}

#if defined(TFGEN_PROFILE)
std::uint32_t OpProfiler::BeginEvent(const char* tag) {
  const int handle = count_++;
  if (handle < kMaxEvents) {
    tags_[handle] = tag;
    start_[handle] = platform::TicksNow();
  }
  return static_cast<std::uint32_t>(handle);
}

void OpProfiler::EndEvent(std::uint32_t handle) {
  if (handle < static_cast<std::uint32_t>(kMaxEvents)) ticks_[handle] = platform::TicksNow() - start_[handle];
}
#endif

}  // namespace tfgen
