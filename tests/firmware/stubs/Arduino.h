// Compile-only stand-in for the Arduino core's Arduino.h: just what firmware/ uses.
#ifndef TFGEN_TEST_ARDUINO_H_
#define TFGEN_TEST_ARDUINO_H_
#include <cstddef>
#include <cstdint>
struct TfgenTestSerial {
  void begin(unsigned long) {}
  void print(const char*) {}
  void flush() {}
  int available() { return 0; }
  int read() { return -1; }
  std::size_t write(const std::uint8_t*, std::size_t n) { return n; }
  explicit operator bool() const { return true; }
};
extern TfgenTestSerial Serial;
unsigned long micros();
unsigned long millis();
void delay(unsigned long);
#endif
