// tfgen firmware: platform hooks (see tfgen_platform.h for how the branch is chosen).
#include "tfgen_platform.h"

#include <cstdarg>
#include <cstdio>

#if defined(ARDUINO)
#include <Arduino.h>
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)
#define TFGEN_DWT 1      // Cortex-M3/M4/M7/M33: DWT's cycle counter (the M0+ has none: micros())
extern "C" std::uint32_t SystemCoreClock;   // CMSIS: every Arm Arduino core defines it
#endif
#elif defined(ESP_PLATFORM)
#include "esp_cpu.h"
#include "esp_timer.h"
#include "sdkconfig.h"
#if defined(TFGEN_VALIDATE)
#include "driver/uart.h"
#include "freertos/FreeRTOS.h"
#endif
#elif defined(TFGEN_SEMIHOSTING)
#include <cstdint>
#elif defined(__unix__) || defined(__APPLE__) || defined(_WIN32)
#define TFGEN_HOSTED_OS 1
#include <chrono>
#if defined(TFGEN_VALIDATE) && !defined(_WIN32)
#include <poll.h>
#include <unistd.h>
#endif
#else
#include <ctime>
#endif

namespace tfgen {
namespace platform {

namespace {
constexpr int kPrintfBufferSize = 256;
}  // namespace

#if defined(ARDUINO)

#if defined(TFGEN_DWT)
namespace {
volatile std::uint32_t* const kDemcr = reinterpret_cast<volatile std::uint32_t*>(0xE000EDFCu);
volatile std::uint32_t* const kDwtCtrl = reinterpret_cast<volatile std::uint32_t*>(0xE0001000u);
volatile std::uint32_t* const kDwtCyccnt = reinterpret_cast<volatile std::uint32_t*>(0xE0001004u);
volatile std::uint32_t* const kDwtLar = reinterpret_cast<volatile std::uint32_t*>(0xE0001FB0u);
}  // namespace
#endif

void Init() {
  Serial.begin(115200);
  // Boards with native USB enumerate the port late; wait a little for a terminal, not forever.
  const unsigned long start = millis();
  while (!Serial && millis() - start < 3000) {
  }
#if defined(TFGEN_DWT)
  *kDemcr |= 1u << 24;        // TRCENA: DWT on
  *kDwtLar = 0xC5ACCE55u;     // unlock (Cortex-M7 parts lock DWT; elsewhere the write is ignored)
  *kDwtCyccnt = 0;
  *kDwtCtrl |= 1u;            // CYCCNTENA
#endif
}

void Print(const char* text) {
  Serial.print(text);
  Serial.flush();
}

std::uint32_t MicrosNow() { return static_cast<std::uint32_t>(micros()); }
#if defined(TFGEN_DWT)
std::uint32_t TicksNow() { return *kDwtCyccnt; }
std::uint32_t TicksPerSecond() { return SystemCoreClock; }
const char* TickSource() { return "cycles"; }
#else
std::uint32_t TicksNow() { return MicrosNow(); }
std::uint32_t TicksPerSecond() { return 1000000u; }
const char* TickSource() { return "us"; }
#endif

const char* Name() { return "arduino"; }

void SerialBegin() {}        // Init opened Serial

int SerialRead(std::uint8_t* data, int max, std::uint32_t timeout_ms) {
  const unsigned long start = millis();
  while (Serial.available() <= 0) {
    if (timeout_ms != kForever && millis() - start >= timeout_ms) return 0;
  }
  int n = 0;
  while (n < max && Serial.available() > 0) data[n++] = static_cast<std::uint8_t>(Serial.read());
  return n;
}

void SerialWrite(const std::uint8_t* data, int count) {
  Serial.write(data, static_cast<std::size_t>(count));
  Serial.flush();
}

#elif defined(ESP_PLATFORM)

void Init() {}

void Print(const char* text) {
  std::fputs(text, stdout);
  std::fflush(stdout);
}

std::uint32_t MicrosNow() { return static_cast<std::uint32_t>(esp_timer_get_time()); }
// The CPU's cycle counter (CCOUNT on Xtensa, mcycle on RISC-V): app_main's task stays on one core.
std::uint32_t TicksNow() { return static_cast<std::uint32_t>(esp_cpu_get_cycle_count()); }
std::uint32_t TicksPerSecond() { return CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ * 1000000u; }
const char* TickSource() { return "cycles"; }

const char* Name() { return "esp-idf"; }

#if defined(TFGEN_VALIDATE)
// The console's UART, through the UART driver (ESP-IDF's console alone reads without blocking).
#if !defined(TFGEN_VALIDATE_UART)
#if defined(CONFIG_ESP_CONSOLE_UART_NUM) && CONFIG_ESP_CONSOLE_UART_NUM >= 0
#define TFGEN_VALIDATE_UART CONFIG_ESP_CONSOLE_UART_NUM
#else
#define TFGEN_VALIDATE_UART 0
#endif
#endif
namespace {
constexpr uart_port_t kUart = static_cast<uart_port_t>(TFGEN_VALIDATE_UART);
}  // namespace

void SerialBegin() {
  if (!uart_is_driver_installed(kUart)) uart_driver_install(kUart, 4096, 0, 0, nullptr, 0);
}

int SerialRead(std::uint8_t* data, int max, std::uint32_t timeout_ms) {
  const TickType_t wait = timeout_ms == kForever ? portMAX_DELAY : pdMS_TO_TICKS(timeout_ms);
  if (max <= 0 || uart_read_bytes(kUart, data, 1, wait) <= 0) return 0;
  std::size_t buffered = 0;
  uart_get_buffered_data_len(kUart, &buffered);
  const int more = static_cast<int>(buffered) < max - 1 ? static_cast<int>(buffered) : max - 1;
  const int got = more > 0 ? uart_read_bytes(kUart, data + 1, static_cast<std::uint32_t>(more), 0) : 0;
  return 1 + (got > 0 ? got : 0);
}

void SerialWrite(const std::uint8_t* data, int count) {
  uart_write_bytes(kUart, data, static_cast<std::size_t>(count));
  uart_wait_tx_done(kUart, portMAX_DELAY);
}
#endif

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
// QEMU models no DWT cycle counter; SysTick under -icount counts instructions (see above).
const char* TickSource() { return "systick-icount"; }

const char* Name() { return "qemu"; }

// UART0 of the mps2 machines (QEMU hw/arm/mps2.c: a CMSDK APB UART at 0x40004000, the first -serial):
// DATA, STATE (bit 0 TX full, bit 1 RX full), CTRL (bit 0 TX enable, bit 1 RX enable), BAUDDIV.
namespace {
#ifndef TFGEN_UART_BASE
#define TFGEN_UART_BASE 0x40004000u
#endif
volatile std::uint32_t* const kUart = reinterpret_cast<volatile std::uint32_t*>(TFGEN_UART_BASE);
enum : int { kUartData = 0, kUartState = 1, kUartCtrl = 2, kUartBaudDiv = 4 };
}  // namespace

void SerialBegin() {
  kUart[kUartBaudDiv] = kSysTickHz / 115200u;
  kUart[kUartCtrl] = 0x3u;
}

int SerialRead(std::uint8_t* data, int max, std::uint32_t timeout_ms) {
  const unsigned long long limit = static_cast<unsigned long long>(timeout_ms) * (kSysTickHz / 1000u);
  const unsigned long long start = ElapsedTicks();
  while ((kUart[kUartState] & 0x2u) == 0) {
    if (timeout_ms != kForever && ElapsedTicks() - start >= limit) return 0;
  }
  int n = 0;
  while (n < max && (kUart[kUartState] & 0x2u) != 0) data[n++] = static_cast<std::uint8_t>(kUart[kUartData]);
  return n;
}

void SerialWrite(const std::uint8_t* data, int count) {
  for (int i = 0; i < count; ++i) {
    while ((kUart[kUartState] & 0x1u) != 0) {
    }
    kUart[kUartData] = data[i];
  }
}

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
const char* TickSource() { return "ns"; }
#else
// Semihosting C libraries implement clock() (newlib: SYS_CLOCK, in centiseconds), not chrono.
std::uint32_t MicrosNow() {
  const std::clock_t now = std::clock();
  return static_cast<std::uint32_t>(static_cast<unsigned long long>(now) * 1000000ULL /
                                    static_cast<unsigned long long>(CLOCKS_PER_SEC));
}
std::uint32_t TicksNow() { return MicrosNow(); }
std::uint32_t TicksPerSecond() { return 1000000u; }
const char* TickSource() { return "us"; }
#endif

const char* Name() { return "host"; }

#if defined(TFGEN_VALIDATE) && defined(TFGEN_HOSTED_OS) && !defined(_WIN32)
// The host build's serial link is its standard input and output (a pipe, a pty or a socket).
void SerialBegin() {}

int SerialRead(std::uint8_t* data, int max, std::uint32_t timeout_ms) {
  pollfd in = {0, POLLIN, 0};
  const int wait = timeout_ms == kForever ? -1 : static_cast<int>(timeout_ms);
  if (max <= 0 || poll(&in, 1, wait) <= 0) return 0;
  const ssize_t n = read(0, data, static_cast<std::size_t>(max));
  return n > 0 ? static_cast<int>(n) : 0;
}

void SerialWrite(const std::uint8_t* data, int count) {
  std::fflush(stdout);
  while (count > 0) {
    const ssize_t n = write(1, data, static_cast<std::size_t>(count));
    if (n <= 0) return;
    data += n;
    count -= static_cast<int>(n);
  }
}
#elif defined(TFGEN_VALIDATE)
void SerialBegin() {}
int SerialRead(std::uint8_t*, int, std::uint32_t) { return 0; }
void SerialWrite(const std::uint8_t*, int) {}
#endif

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
