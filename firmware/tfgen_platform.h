// tfgen firmware: the platform hooks, the only code that differs between ESP-IDF, Arduino and the
// host (or a bare-metal target with semihosting, such as QEMU's MPS2 boards).
//
// Which one is compiled is decided by the toolchain's own macros, in this order:
//   ARDUINO        Arduino cores (also Arduino-ESP32, which defines ESP_PLATFORM too): Serial, micros()
//   ESP_PLATFORM   ESP-IDF: printf to the console UART, esp_timer_get_time()
//   otherwise      host or semihosting: fputs to stdout; std::chrono on a hosted OS, clock() elsewhere
#ifndef TFGEN_PLATFORM_H_
#define TFGEN_PLATFORM_H_

#include <cstdint>

namespace tfgen {
namespace platform {

// Once, before anything is printed (opens the serial port on Arduino).
void Init();

// Writes ``text`` as is (no newline added) and makes sure it leaves the device.
void Print(const char* text);

// printf-style formatting into a fixed buffer, then Print. Longer results are cut, never overrun.
void Printf(const char* format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

// A free-running microsecond counter. It wraps (after 2^32 us, about 71 minutes); take
// differences of two readings as std::uint32_t and they stay right across a wrap.
std::uint32_t MicrosNow();

// A free-running counter of TicksPerSecond() ticks a second, for profiling ops: QEMU's SysTick clock on
// the emulated boards (under -icount shift=0 a tick is a fixed number of instructions), nanoseconds on
// a hosted OS, microseconds elsewhere. Take differences as std::uint32_t, as for MicrosNow.
std::uint32_t TicksNow();
std::uint32_t TicksPerSecond();

// Name of the platform branch compiled in ("esp-idf", "arduino", "host").
const char* Name();

}  // namespace platform
}  // namespace tfgen

#endif  // TFGEN_PLATFORM_H_
