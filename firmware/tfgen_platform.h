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

// What TicksNow counts: "cycles" (the core's cycle counter: DWT CYCCNT on Cortex-M3/M4/M7/M33,
// the CPU's on ESP chips), "systick-icount" (QEMU: instructions, see above), "ns" or "us".
const char* TickSource();

// Name of the platform branch compiled in ("esp-idf", "arduino", "qemu", "host").
const char* Name();

// The serial link of validation builds (-DTFGEN_VALIDATE, firmware/tfgen_validate.h): the console
// UART on ESP-IDF, Serial on Arduino, UART0 on QEMU's mps2 machines (its -serial), stdin/stdout on
// the host. SerialBegin once; SerialRead waits up to ``timeout_ms`` for a first byte (forever for
// kForever) and returns how many it read (0: none came); SerialWrite returns once the bytes are out.
constexpr std::uint32_t kForever = 0xFFFFFFFFu;
void SerialBegin();
int SerialRead(std::uint8_t* data, int max, std::uint32_t timeout_ms);
void SerialWrite(const std::uint8_t* data, int count);

}  // namespace platform
}  // namespace tfgen

#endif  // TFGEN_PLATFORM_H_
