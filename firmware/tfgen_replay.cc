// tfgen firmware: test-vector replay (see tfgen_replay.h for the output lines).
#include "tfgen_replay.h"

#include <cstdio>
#include <cstring>

#if !defined(TFGEN_RUNTIME_AOT)
#include "tensorflow/lite/micro/memory_helpers.h"
#include "tensorflow/lite/schema/schema_generated.h"
#endif
#include "tfgen_platform.h"

namespace tfgen {

namespace {

constexpr unsigned char kMagic[4] = {'T', 'F', 'G', 'V'};
constexpr std::uint16_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 48;      // magic .. sha256
constexpr std::size_t kDescriptorBytes = 16;  // type .. zero point, before the dims
constexpr int kHexBytesPerChunk = 32;

std::uint16_t ReadU16(const unsigned char* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}

std::uint32_t ReadU32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

float ReadF32(const unsigned char* p) {
  const std::uint32_t bits = ReadU32(p);
  float value;
  static_assert(sizeof(value) == sizeof(bits), "float is not 32 bits");
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// True when ``hex`` (64 hex digits) spells the 32 bytes of ``digest``.
bool SameDigest(const char* hex, const unsigned char* digest) {
  for (int i = 0; i < 32; ++i) {
    const int high = HexDigit(hex[2 * i]);
    const int low = high < 0 ? -1 : HexDigit(hex[2 * i + 1]);
    if (low < 0 || ((high << 4) | low) != digest[i]) {
      return false;
    }
  }
  return hex[64] == '\0';
}

void PrintHexLine(const char* prefix, const unsigned char* bytes, std::size_t size) {
  static const char kDigits[] = "0123456789abcdef";
  char chunk[2 * kHexBytesPerChunk + 2];
  platform::Print(prefix);
  for (std::size_t start = 0; start < size; start += kHexBytesPerChunk) {
    std::size_t n = 0;
    for (std::size_t i = start; i < size && i < start + kHexBytesPerChunk; ++i) {
      chunk[n++] = kDigits[bytes[i] >> 4];
      chunk[n++] = kDigits[bytes[i] & 0x0f];
    }
    chunk[n] = '\0';
    platform::Print(chunk);
  }
  platform::Print("\n");
}

struct Stats {
  std::uint32_t vectors = 0;
  unsigned long long invoke_us_total = 0;
  std::uint32_t invoke_us_max = 0;
  unsigned long mismatched_bytes = 0;
};

int Finish(const char* result, const Stats& stats, Runner& runner) {
  const unsigned long mean =
      stats.vectors != 0 ? static_cast<unsigned long>(stats.invoke_us_total / stats.vectors) : 0;
  platform::Printf(
      "summary result=%s vectors=%lu arena_used=%lu arena_size=%lu invoke_us_mean=%lu "
      "invoke_us_max=%lu mismatched_bytes=%lu\n",
      result, static_cast<unsigned long>(stats.vectors),
      static_cast<unsigned long>(runner.arena_used_bytes()),
      static_cast<unsigned long>(tfgen_model::kArenaSize), mean,
      static_cast<unsigned long>(stats.invoke_us_max), stats.mismatched_bytes);
  return std::strcmp(result, "pass") == 0 ? 0 : 1;
}

}  // namespace

bool VectorFile::Parse(const unsigned char* data, std::size_t size) {
  if (data == nullptr || size < kHeaderBytes) {
    PrintError("test vectors: %lu bytes, shorter than the 48-byte header",
               static_cast<unsigned long>(data == nullptr ? 0 : size));
    return false;
  }
  if (std::memcmp(data, kMagic, sizeof(kMagic)) != 0) {
    PrintError("test vectors: no TFGV magic; embed a file written by `tfgen reference`");
    return false;
  }
  const std::uint16_t version = ReadU16(data + 4);
  if (version != kVersion) {
    PrintError("test vectors: format version %u; this firmware reads version %u",
               static_cast<unsigned>(version), static_cast<unsigned>(kVersion));
    return false;
  }
  num_inputs_ = ReadU16(data + 6);
  num_outputs_ = ReadU16(data + 8);
  num_vectors_ = ReadU32(data + 12);
  std::memcpy(sha256_, data + 16, sizeof(sha256_));
  if (num_inputs_ + num_outputs_ > kMaxTensors) {
    PrintError("test vectors: %d inputs and %d outputs; this firmware reads at most %d in all",
               num_inputs_, num_outputs_, kMaxTensors);
    return false;
  }
  std::size_t pos = kHeaderBytes;
  record_bytes_ = 0;
  for (int t = 0; t < num_inputs_ + num_outputs_; ++t) {
    if (size - pos < kDescriptorBytes) {
      PrintError("test vectors: truncated tensor descriptors");
      return false;
    }
    const unsigned char* d = data + pos;
    Tensor& tensor = tensors_[t];
    tensor.type = static_cast<TfLiteType>(d[0]);
    tensor.num_dims = d[1];
    tensor.bytes = ReadU32(d + 4);
    tensor.scale = ReadF32(d + 8);
    tensor.zero_point = static_cast<std::int32_t>(ReadU32(d + 12));
    pos += kDescriptorBytes;
    if (tensor.num_dims > kMaxDims ||
        size - pos < static_cast<std::size_t>(tensor.num_dims) * 4) {
      PrintError("test vectors: tensor %d has %d dimensions (at most %d) or is truncated", t,
                 tensor.num_dims, kMaxDims);
      return false;
    }
    for (int i = 0; i < tensor.num_dims; ++i) {
      tensor.dims[i] = static_cast<int>(static_cast<std::int32_t>(ReadU32(data + pos)));
      pos += 4;
    }
    offsets_[t] = record_bytes_;
    record_bytes_ += tensor.bytes;
  }
  const std::size_t rest = size - pos;
  if (record_bytes_ == 0 || rest % record_bytes_ != 0 || rest / record_bytes_ != num_vectors_) {
    PrintError("test vectors: %lu bytes of records, expected %lu vectors of %lu bytes",
               static_cast<unsigned long>(rest), static_cast<unsigned long>(num_vectors_),
               static_cast<unsigned long>(record_bytes_));
    return false;
  }
  records_ = data + pos;
  return true;
}

bool VectorFile::Matches(Runner& runner) const {
  if (!SameDigest(tfgen_model::kModelSha256, sha256_)) {
    char file_hex[65];
    for (int i = 0; i < 32; ++i) {
      std::snprintf(file_hex + 2 * i, 3, "%02x", sha256_[i]);
    }
    PrintError("test vectors are for model sha256 %s, the firmware embeds %s (%s)", file_hex,
               tfgen_model::kModelSha256, tfgen_model::kModelName);
    return false;
  }
  if (num_inputs_ != runner.inputs_size() || num_outputs_ != runner.outputs_size()) {
    PrintError("test vectors have %d inputs and %d outputs, the model %d and %d", num_inputs_,
               num_outputs_, runner.inputs_size(), runner.outputs_size());
    return false;
  }
  bool ok = true;
  char what[64];
  for (int t = 0; t < num_inputs_ + num_outputs_; ++t) {
    const bool is_input = t < num_inputs_;
    const int index = is_input ? t : t - num_inputs_;
    TfLiteTensor* tensor = is_input ? runner.input(index) : runner.output(index);
    if (tensor == nullptr) {
      return false;
    }
    const Tensor& want = tensors_[t];
    std::snprintf(what, sizeof(what), "%s %d against the test vectors",
                  is_input ? "input" : "output", index);
    ok = CheckTensor(*tensor,
                     TensorSpec{want.type, want.num_dims, want.dims, want.bytes, want.scale,
                                want.zero_point},
                     what) &&
         ok;
  }
  return ok;
}

const unsigned char* VectorFile::input_data(std::uint32_t v, int i) const {
  return records_ + static_cast<std::size_t>(v) * record_bytes_ + offsets_[i];
}

const unsigned char* VectorFile::output_data(std::uint32_t v, int o) const {
  return records_ + static_cast<std::size_t>(v) * record_bytes_ + offsets_[num_inputs_ + o];
}

#if defined(TFGEN_PER_OP)
#ifndef TFGEN_PER_OP_VECTOR
#define TFGEN_PER_OP_VECTOR 0
#endif
// Every op's outputs, in execution order: `opout <vector> <op> <tensor> <hex>`, for `tfgen verify
// --per-op`, which compares them with the oracle's to name the first op that diverges.
#if defined(TFGEN_RUNTIME_AOT)
static void DumpOpOutputs(Runner&, std::uint32_t v) {
  char prefix[64];
  for (int k = 0; k < tfgen_model::kNumOpOutputs; ++k) {
    const tfgen_model::OpOutput& out = tfgen_model::kOpOutputs[k];
    std::snprintf(prefix, sizeof(prefix), "opout %lu %d %d ", static_cast<unsigned long>(v), out.op, out.tensor);
    PrintHexLine(prefix, tfgen_model::BufferData(out.buffer), static_cast<std::size_t>(out.bytes));
  }
}
#else
static void DumpOpOutputs(Runner& runner, std::uint32_t v) {
  tflite::MicroInterpreter* interpreter = runner.interpreter();
  const tflite::Model* model = tflite::GetModel(tfgen_model::ModelData());
  const auto* ops = model->subgraphs()->Get(0)->operators();
  char prefix[64];
  for (unsigned op = 0; ops != nullptr && op < ops->size(); ++op) {
    const auto* outputs = ops->Get(op)->outputs();
    for (unsigned k = 0; outputs != nullptr && k < outputs->size(); ++k) {
      const int index = outputs->Get(k);
      const TfLiteEvalTensor* tensor = interpreter->GetTensor(index, 0);
      if (tensor == nullptr || tensor->data.raw == nullptr) continue;
      std::size_t bytes = 0;
      if (tflite::TfLiteEvalTensorByteLength(tensor, &bytes) != kTfLiteOk) continue;
      std::snprintf(prefix, sizeof(prefix), "opout %lu %u %d ", static_cast<unsigned long>(v), op,
                    index);
      PrintHexLine(prefix, reinterpret_cast<const unsigned char*>(tensor->data.raw), bytes);
    }
  }
}
#endif  // TFGEN_RUNTIME_AOT
#endif

#if defined(TFGEN_PROFILE)
// Each op's ticks in this Invoke, in execution order: `profile <vector> <event> <ticks> <op>`, then
// `profile_invoke <vector> <ticks>` for the whole Invoke, for `tfgen profile`.
static void PrintProfile(const Runner& runner, std::uint32_t v) {
  const OpProfiler& p = runner.profiler();
  if (v == 0) platform::Printf("profile_clock %lu\n", static_cast<unsigned long>(platform::TicksPerSecond()));
  for (int i = 0; i < p.count(); ++i) {
    platform::Printf("profile %lu %d %lu %s\n", static_cast<unsigned long>(v), i,
                     static_cast<unsigned long>(p.ticks(i)), p.tag(i) != nullptr ? p.tag(i) : "?");
  }
  platform::Printf("profile_invoke %lu %lu\n", static_cast<unsigned long>(v),
                   static_cast<unsigned long>(runner.last_invoke_ticks()));
}
#endif

int ReplayVectors(Runner& runner) {
  Stats stats;
  platform::Printf("tfgen replay model=%s platform=%s\n", tfgen_model::kModelName,
                   platform::Name());
  if (!runner.ready() && runner.Init() != kTfLiteOk) {
    return Finish("error", stats, runner);
  }
  const unsigned char* data = tfgen_model::VectorData();
  if (data == nullptr) {
    PrintError("no test vectors embedded: generate the project with vectors (`tfgen reference`)");
    return Finish("error", stats, runner);
  }
  VectorFile file;
  if (!file.Parse(data, tfgen_model::VectorSize()) || !file.Matches(runner)) {
    return Finish("error", stats, runner);
  }
  platform::Printf("vectors count=%lu inputs=%d outputs=%d\n",
                   static_cast<unsigned long>(file.num_vectors()), file.num_inputs(),
                   file.num_outputs());
  char prefix[48];
  for (std::uint32_t v = 0; v < file.num_vectors(); ++v) {
    if (runner.Reset() != kTfLiteOk) {
      return Finish("error", stats, runner);
    }
    for (int i = 0; i < file.num_inputs(); ++i) {
      std::memcpy(runner.input(i)->data.raw, file.input_data(v, i), file.input(i).bytes);
    }
    if (runner.Invoke() != kTfLiteOk) {
      PrintError("vector %lu: Invoke failed", static_cast<unsigned long>(v));
      return Finish("error", stats, runner);
    }
#if defined(TFGEN_PER_OP)
    if (v == TFGEN_PER_OP_VECTOR) DumpOpOutputs(runner, v);
#endif
#if defined(TFGEN_PROFILE)
    PrintProfile(runner, v);
#endif
    ++stats.vectors;
    stats.invoke_us_total += runner.last_invoke_us();
    if (runner.last_invoke_us() > stats.invoke_us_max) {
      stats.invoke_us_max = runner.last_invoke_us();
    }
    for (int o = 0; o < file.num_outputs(); ++o) {
      const unsigned char* got =
          reinterpret_cast<const unsigned char*>(runner.output(o)->data.raw);
      const unsigned char* expected = file.output_data(v, o);
      const std::size_t bytes = file.output(o).bytes;
      std::snprintf(prefix, sizeof(prefix), "out %lu %d ", static_cast<unsigned long>(v), o);
      PrintHexLine(prefix, got, bytes);
      unsigned long differing = 0;
      std::size_t first = 0;
      for (std::size_t b = bytes; b-- > 0;) {
        if (got[b] != expected[b]) {
          ++differing;
          first = b;
        }
      }
      if (differing != 0) {
        platform::Printf("mismatch %lu %d bytes=%lu first=%lu expected=%02x got=%02x\n",
                         static_cast<unsigned long>(v), o, differing,
                         static_cast<unsigned long>(first), expected[first], got[first]);
        stats.mismatched_bytes += differing;
      }
    }
  }
  return Finish(stats.mismatched_bytes == 0 ? "pass" : "mismatch", stats, runner);
}

}  // namespace tfgen
