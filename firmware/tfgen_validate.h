// tfgen firmware: validation mode (-DTFGEN_VALIDATE, the `validate` PlatformIO environment; off in
// the normal image). The board answers `tfgen verify --port` over its serial link
// (tfgen_platform.h): the host sends the model's hash and input vectors, the board runs each and
// sends back the outputs and the ticks of the Invoke and of every op (TFLM's profiler interface).
//
// Frames, both ways (integers little-endian):
//   A5 'T' 'F' 'V' | type (1) | length (4) | payload (length) | CRC-32 (4) of type, length and payload
// CRC-32 is zlib's (reflected 0xEDB88320). Bytes outside frames (boot logs, TFLM's messages) are
// skipped by both sides.
//
// Host -> board:
//   'H' hello   the model's sha256, 64 lowercase hex digits. The board answers 'R' if it runs that
//               model, else 'E' (wrong model); it runs no vector before a good hello.
//   'I' infer   vector index (4), then every input tensor's bytes, in order. Answer: 'O'.
// Board -> host:
//   'R' ready   reason (1: 0 boot, 1 hello), protocol (1), 0 (2), ticks per second (4), arena used
//               (4), arena size (4), inputs (4), outputs (4), input bytes (4), output bytes (4), then
//               "sha256 NUL tick-source NUL platform NUL model-name". Sent at boot, unasked.
//   'O' output  vector index (4), Invoke ticks (4), Invoke us (4), op events N (4), N x ticks (4),
//               then every output tensor's bytes, in order.
//   'E' error   code (1), the type of the frame it answers (1; 0 when its header did not come), then
//               a message. Codes: tfgen::ValidateError. The host ignores errors that answer an
//               earlier session's frames (a board keeps the bytes a previous run left on the line).
// A frame that stops short (no byte for TFGEN_VALIDATE_BYTE_TIMEOUT_MS) or fails its CRC is answered
// with 'E', and the board waits for the next frame's start.
#ifndef TFGEN_VALIDATE_H_
#define TFGEN_VALIDATE_H_

#include <cstddef>
#include <cstdint>

#include "tfgen_runtime.h"

namespace tfgen {

inline constexpr std::uint8_t kValidateProtocol = 1;

enum ValidateError : std::uint8_t {
  kErrorCrc = 1,          // a frame's CRC did not match
  kErrorIncomplete = 2,   // a frame stopped before its length
  kErrorWrongModel = 3,   // hello with another model's hash
  kErrorLength = 4,       // a frame of a known type with the wrong length
  kErrorInvoke = 5,       // Reset or Invoke failed
  kErrorNoHello = 6,      // an infer before a good hello
  kErrorType = 7,         // a frame type the board does not know
  kErrorInit = 8,         // the interpreter did not start (arena, ops): nothing can run
};

// CRC-32 (zlib's) of ``count`` bytes, continuing from ``crc`` (0 to start).
std::uint32_t Crc32(std::uint32_t crc, const std::uint8_t* data, std::size_t count);

// Serves validation frames for ever; ``runner`` is initialized here (its failure is reported to the host).
[[noreturn]] void ServeValidation(Runner& runner);

}  // namespace tfgen

#endif  // TFGEN_VALIDATE_H_
