// tfgen firmware: platform hooks (see tfgen_platform.h for how the branch is chosen).
#include "tfgen_platform.h"

#include <cstdarg>
#include <cstdio>

#if defined(ARDUINO)
#include <Arduino.h>
#elif defined(ESP_PLATFORM)
#include "esp_timer.h"
#elif defined(TFGEN_SEMIHOSTING)
#include <cstdint>
#elif defined(__unix__) || defined(__APPLE__) || defined(_WIN32)
#define TFGEN_HOSTED_OS 1
#include <chrono>
#else
#include <ctime>
#endif

namespace tfgen {
namespace platform {

namespace {
constexpr int kPrintfBufferSize = 256;
}  // namespace

#if defined(ARDUINO)

void Init() {
  Serial.begin(115200);
  // Boards with native USB enumerate the port late; wait a little for a terminal, not forever.
  const unsigned long start = millis();
  while (!Serial && millis() - start < 3000) {
  }
}

void Print(const char* text) {
  Serial.print(text);
  Serial.flush();
}

std::uint32_t MicrosNow() { return static_cast<std::uint32_t>(micros()); }
std::uint32_t TicksNow() { return MicrosNow(); }
std::uint32_t TicksPerSecond() { return 1000000u; }

const char* Name() { return "arduino"; }

#elif defined(ESP_PLATFORM)

void Init() {}

void Print(const char* text) {
  std::fputs(text, stdout);
  std::fflush(stdout);
}

std::uint32_t MicrosNow() { return static_cast<std::uint32_t>(esp_timer_get_time()); }
std::uint32_t TicksNow() { return MicrosNow(); }
std::uint32_t TicksPerSecond() { return 1000000u; }

const char* Name() { return "esp-idf"; }

#elif defined(TFGEN_SEMIHOSTING)
// Bare metal under QEMU (an mps2 machine, 25 MHz unless the board's `qemu` build says otherwise):
// time from SysTick, which runs on QEMU's virtual clock.
// Under `qemu-system-arm -icount shift=0` one instruction takes one virtual nanosecond, so a
// microsecond here is 1,000 instructions, deterministically.

namespace {
#ifndef TFGEN_SYSTICK_HZ
#define TFGEN_SYSTICK_HZ 25000000u
#endif
constexpr std::uint32_t kSysTickHz = TFGEN_SYSTICK_HZ;
volatile std::uint32_t* const kSystCsr = reinterpret_cast<volatile std::uint32_t*>(0xE000E010u);
volatile std::uint32_t* const kSystRvr = reinterpret_cast<volatile std::uint32_t*>(0xE000E014u);
volatile std::uint32_t* const kSystCvr = reinterpret_cast<volatile std::uint32_t*>(0xE000E018u);
std::uint32_t last_count = 0;
unsigned long long elapsed_ticks = 0;
}  // namespace

void Init() {
  *kSystRvr = 0x00FFFFFFu;
  *kSystCvr = 0;
  *kSystCsr = 0x5u;  // processor clock, no interrupt, enabled
}

void Print(const char* text) {
  std::fputs(text, stdout);
  std::fflush(stdout);
}

// SysTick counts down over 24 bits; read often enough (every 2^24 ticks) the wraps are accounted for.
static unsigned long long ElapsedTicks() {
  const std::uint32_t count = 0x00FFFFFFu - (*kSystCvr & 0x00FFFFFFu);
  elapsed_ticks += (count - last_count) & 0x00FFFFFFu;
  last_count = count;
  return elapsed_ticks;
}

std::uint32_t MicrosNow() { return static_cast<std::uint32_t>(ElapsedTicks() / (kSysTickHz / 1000000u)); }
std::uint32_t TicksNow() { return static_cast<std::uint32_t>(ElapsedTicks()); }
std::uint32_t TicksPerSecond() { return kSysTickHz; }

const char* Name() { return "qemu"; }

#else  // host, or bare metal with semihosting

void Init() {}

void Print(const char* text) {
  std::fputs(text, stdout);
  std::fflush(stdout);
}

#if defined(TFGEN_HOSTED_OS)
std::uint32_t MicrosNow() {
  const auto since_start = std::chrono::steady_clock::now().time_since_epoch();
  return static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(since_start).count());
}
std::uint32_t TicksNow() {
  const auto since_start = std::chrono::steady_clock::now().time_since_epoch();
  return static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(since_start).count());
}
std::uint32_t TicksPerSecond() { return 1000000000u; }
#else
// Semihosting C libraries implement clock() (newlib: SYS_CLOCK, in centiseconds), not chrono.
std::uint32_t MicrosNow() {
  const std::clock_t now = std::clock();
  return static_cast<std::uint32_t>(static_cast<unsigned long long>(now) * 1000000ULL /
                                    static_cast<unsigned long long>(CLOCKS_PER_SEC));
}
std::uint32_t TicksNow() { return MicrosNow(); }
std::uint32_t TicksPerSecond() { return 1000000u; }
#endif

const char* Name() { return "host"; }

#endif

void Printf(const char* format, ...) {
  char buffer[kPrintfBufferSize];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  Print(buffer);
}

}  // namespace platform
}  // namespace tfgen
