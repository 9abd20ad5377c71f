// tfgen firmware: validation mode, the board's side of `tfgen verify --port` (see tfgen_validate.h).
#include "tfgen_validate.h"

#if defined(TFGEN_VALIDATE)

#if !defined(TFGEN_PROFILE)
#error "validation builds time every op: compile with -DTFGEN_PROFILE too"
#endif

#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "tfgen_platform.h"

#ifndef TFGEN_VALIDATE_BYTE_TIMEOUT_MS
#define TFGEN_VALIDATE_BYTE_TIMEOUT_MS 1000u
#endif

namespace tfgen {

std::uint32_t Crc32(std::uint32_t crc, const std::uint8_t* data, std::size_t count) {
  static constexpr std::uint32_t kNibble[16] = {
      0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
      0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
      0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
  crc = ~crc;
  for (std::size_t i = 0; i < count; ++i) {
    crc ^= data[i];
    crc = (crc >> 4) ^ kNibble[crc & 0xFu];
    crc = (crc >> 4) ^ kNibble[crc & 0xFu];
  }
  return ~crc;
}

namespace {

constexpr std::uint8_t kMagic[4] = {0xA5, 'T', 'F', 'V'};
constexpr std::uint32_t kByteTimeoutMs = TFGEN_VALIDATE_BYTE_TIMEOUT_MS;
constexpr std::size_t kHashHex = 64;

// The link's bytes, read a chunk at a time.
class Reader {
 public:
  bool Next(std::uint8_t* byte, std::uint32_t timeout_ms) {
    if (pos_ == len_) {
      pos_ = 0;
      len_ = platform::SerialRead(buf_, static_cast<int>(sizeof(buf_)), timeout_ms);
      if (len_ <= 0) {
        len_ = 0;
        return false;
      }
    }
    *byte = buf_[pos_++];
    return true;
  }

  // ``count`` bytes into ``into`` (nullptr: dropped), each within the byte timeout, into the CRC;
  // how many came.
  std::size_t Read(std::uint8_t* into, std::size_t count, std::uint32_t* crc) {
    std::uint8_t b = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (!Next(&b, kByteTimeoutMs)) return i;
      if (into != nullptr) into[i] = b;
      if (crc != nullptr) *crc = Crc32(*crc, &b, 1);
    }
    return count;
  }

 private:
  std::uint8_t buf_[64] = {};
  int len_ = 0;
  int pos_ = 0;
};

// One frame out: header, payload in pieces, CRC; buffered so the link sees few writes.
class Writer {
 public:
  void Begin(std::uint8_t type, std::uint32_t length) {
    Raw(kMagic, sizeof(kMagic));
    crc_ = 0;
    Put(&type, 1);
    U32(length);
  }
  void Put(const void* data, std::size_t count) {
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    crc_ = Crc32(crc_, bytes, count);
    Raw(bytes, count);
  }
  void U32(std::uint32_t v) {
    const std::uint8_t le[4] = {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
                                static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
    Put(le, sizeof(le));
  }
  void End() {
    const std::uint32_t crc = crc_;
    const std::uint8_t le[4] = {static_cast<std::uint8_t>(crc), static_cast<std::uint8_t>(crc >> 8),
                                static_cast<std::uint8_t>(crc >> 16), static_cast<std::uint8_t>(crc >> 24)};
    Raw(le, sizeof(le));
    Flush();
  }

 private:
  void Raw(const std::uint8_t* data, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      if (used_ == sizeof(buf_)) Flush();
      buf_[used_++] = data[i];
    }
  }
  void Flush() {
    if (used_ != 0) platform::SerialWrite(buf_, static_cast<int>(used_));
    used_ = 0;
  }
  std::uint8_t buf_[128] = {};
  std::size_t used_ = 0;
  std::uint32_t crc_ = 0;
};

std::uint32_t FromLe(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

std::size_t InputBytes() {
  std::size_t n = 0;
  for (int i = 0; i < tfgen_model::kNumInputs; ++i) n += static_cast<std::size_t>(tfgen_model::kInputs[i].bytes);
  return n;
}

std::size_t OutputBytes() {
  std::size_t n = 0;
  for (int o = 0; o < tfgen_model::kNumOutputs; ++o) n += static_cast<std::size_t>(tfgen_model::kOutputs[o].bytes);
  return n;
}

class Server {
 public:
  explicit Server(Runner& runner) : runner_(runner) {}

  [[noreturn]] void Run() {
    platform::SerialBegin();
    ready_ = runner_.Init() == kTfLiteOk;
    if (ready_) {
      SendReady(0);
    } else {
      SendError(kErrorInit, 0, "the interpreter did not start on the board (see its console): arena or ops");
    }
    for (;;) {
      std::uint8_t type = 0;
      std::uint32_t length = 0;
      if (!ReadHeader(&type, &length)) continue;
      current_ = type;
      if (type == 'H') {
        Hello(length);
      } else if (type == 'I') {
        Infer(length);
      } else {
        SendError(kErrorType, type, "unknown frame type 0x%02x", type);
      }
    }
  }

 private:
  // Waits (for ever) for a frame's start, then reads its type and length.
  bool ReadHeader(std::uint8_t* type, std::uint32_t* length) {
    std::uint8_t b = 0;
    std::size_t matched = 0;
    while (matched < sizeof(kMagic)) {
      if (!reader_.Next(&b, matched == 0 ? platform::kForever : kByteTimeoutMs)) {
        matched = 0;
        continue;
      }
      matched = b == kMagic[matched] ? matched + 1 : (b == kMagic[0] ? 1 : 0);
    }
    crc_ = 0;
    std::uint8_t header[5];
    const std::size_t got = reader_.Read(header, sizeof(header), &crc_);
    if (got != sizeof(header)) {
      SendError(kErrorIncomplete, 0, "a frame's header stopped after %lu of 5 bytes", static_cast<unsigned long>(got));
      return false;
    }
    *type = header[0];
    *length = FromLe(header + 1);
    return true;
  }

  // Reads ``count`` payload bytes (into ``into``, or dropped); false, and an error sent, if they stop short.
  bool Payload(std::uint8_t* into, std::size_t count, std::size_t done, std::size_t total) {
    const std::size_t got = reader_.Read(into, count, &crc_);
    if (got == count) return true;
    SendError(kErrorIncomplete, current_, "a frame stopped after %lu of its %lu bytes (nothing for %lu ms)",
              static_cast<unsigned long>(done + got), static_cast<unsigned long>(total),
              static_cast<unsigned long>(kByteTimeoutMs));
    return false;
  }

  // Reads the CRC and checks it; false, and an error sent, if it does not match.
  bool CrcMatches(std::size_t total) {
    std::uint8_t le[4];
    if (reader_.Read(le, sizeof(le), nullptr) != sizeof(le)) {
      SendError(kErrorIncomplete, current_, "a frame of %lu bytes stopped in its CRC (nothing for %lu ms)",
                static_cast<unsigned long>(total), static_cast<unsigned long>(kByteTimeoutMs));
      return false;
    }
    if (FromLe(le) != crc_) {
      SendError(kErrorCrc, current_, "a frame of %lu bytes failed its CRC (a byte changed on the line)",
                static_cast<unsigned long>(total));
      return false;
    }
    return true;
  }

  void Hello(std::uint32_t length) {
    if (length != kHashHex) {
      SendError(kErrorLength, current_, "a hello of %lu bytes; it is a sha256 in %lu hex digits",
                static_cast<unsigned long>(length), static_cast<unsigned long>(kHashHex));
      return;
    }
    std::uint8_t hash[kHashHex];
    if (!Payload(hash, sizeof(hash), 0, length) || !CrcMatches(length)) return;
    if (!ready_) {
      SendError(kErrorInit, current_, "the interpreter did not start on the board (see its console): arena or ops");
      return;
    }
    if (std::memcmp(hash, tfgen_model::kModelSha256, kHashHex) != 0) {
      hello_ = false;
      SendError(kErrorWrongModel, current_, "this board runs %s, sha256 %s", tfgen_model::kModelName,
                tfgen_model::kModelSha256);
      return;
    }
    hello_ = true;
    SendReady(1);
  }

  void Infer(std::uint32_t length) {
    const std::size_t in_bytes = InputBytes();
    if (length != 4 + in_bytes) {
      SendError(kErrorLength, current_, "an input frame of %lu bytes; this model takes 4 + %lu",
                static_cast<unsigned long>(length), static_cast<unsigned long>(in_bytes));
      return;
    }
    // Inputs go straight into the input tensors, after Reset (the state of stateful models).
    const bool reset = ready_ && runner_.Reset() == kTfLiteOk;
    std::uint8_t index_le[4];
    if (!Payload(index_le, sizeof(index_le), 0, length)) return;
    std::size_t done = sizeof(index_le);
    for (int i = 0; i < tfgen_model::kNumInputs; ++i) {
      const std::size_t bytes = static_cast<std::size_t>(tfgen_model::kInputs[i].bytes);
      std::uint8_t* into = ready_ ? reinterpret_cast<std::uint8_t*>(runner_.input(i)->data.raw) : nullptr;
      if (!Payload(into, bytes, done, length)) return;
      done += bytes;
    }
    if (!CrcMatches(length)) return;
    if (!ready_) {
      SendError(kErrorInit, current_, "the interpreter did not start on the board (see its console): arena or ops");
    } else if (!hello_) {
      SendError(kErrorNoHello, current_, "an input before a hello with this board's model hash");
    } else if (!reset || runner_.Invoke() != kTfLiteOk) {
      SendError(kErrorInvoke, current_, "vector %lu: %s failed on the board (see its console)",
                static_cast<unsigned long>(FromLe(index_le)), reset ? "Invoke" : "Reset");
    } else {
      SendOutputs(FromLe(index_le));
    }
  }

  void SendOutputs(std::uint32_t index) {
    const OpProfiler& profile = runner_.profiler();
    const int events = profile.count();
    writer_.Begin('O', static_cast<std::uint32_t>(16 + 4 * events + OutputBytes()));
    writer_.U32(index);
    writer_.U32(runner_.last_invoke_ticks());
    writer_.U32(runner_.last_invoke_us());
    writer_.U32(static_cast<std::uint32_t>(events));
    for (int e = 0; e < events; ++e) writer_.U32(profile.ticks(e));
    for (int o = 0; o < tfgen_model::kNumOutputs; ++o) {
      writer_.Put(runner_.output(o)->data.raw, static_cast<std::size_t>(tfgen_model::kOutputs[o].bytes));
    }
    writer_.End();
  }

  void SendReady(std::uint8_t reason) {
    const char* strings[4] = {tfgen_model::kModelSha256, platform::TickSource(), platform::Name(),
                              tfgen_model::kModelName};
    std::size_t text = 0;
    for (const char* s : strings) text += std::strlen(s) + 1;
    const std::uint8_t head[4] = {reason, kValidateProtocol, 0, 0};
    writer_.Begin('R', static_cast<std::uint32_t>(sizeof(head) + 4 * 7 + text - 1));
    writer_.Put(head, sizeof(head));
    writer_.U32(platform::TicksPerSecond());
    writer_.U32(static_cast<std::uint32_t>(runner_.arena_used_bytes()));
    writer_.U32(static_cast<std::uint32_t>(tfgen_model::kArenaSize));
    writer_.U32(static_cast<std::uint32_t>(tfgen_model::kNumInputs));
    writer_.U32(static_cast<std::uint32_t>(tfgen_model::kNumOutputs));
    writer_.U32(static_cast<std::uint32_t>(InputBytes()));
    writer_.U32(static_cast<std::uint32_t>(OutputBytes()));
    for (int k = 0; k < 4; ++k) writer_.Put(strings[k], std::strlen(strings[k]) + (k < 3 ? 1 : 0));
    writer_.End();
  }

  // ``answers``: the type of the frame this error answers (0: not known, its header did not come).
  void SendError(std::uint8_t code, std::uint8_t answers, const char* format, ...)
#if defined(__GNUC__)
      __attribute__((format(printf, 4, 5)))
#endif
  {
    char message[192];
    va_list args;
    va_start(args, format);
    const int n = std::vsnprintf(message, sizeof(message), format, args);
    va_end(args);
    const std::size_t len = n < 0 ? 0 : (static_cast<std::size_t>(n) < sizeof(message) ? n : sizeof(message) - 1);
    writer_.Begin('E', static_cast<std::uint32_t>(2 + len));
    writer_.Put(&code, 1);
    writer_.Put(&answers, 1);
    writer_.Put(message, len);
    writer_.End();
  }

  Runner& runner_;
  Reader reader_;
  Writer writer_;
  std::uint32_t crc_ = 0;
  std::uint8_t current_ = 0;      // the type of the frame being answered
  bool ready_ = false;
  bool hello_ = false;
};

}  // namespace

void ServeValidation(Runner& runner) {
  Server server(runner);
  server.Run();
}

}  // namespace tfgen

#endif  // TFGEN_VALIDATE
