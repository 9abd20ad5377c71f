// Compile-only stand-in for the Arduino core's Arduino.h: just what firmware/ uses.
#ifndef TFGEN_TEST_ARDUINO_H_
#define TFGEN_TEST_ARDUINO_H_
struct TfgenTestSerial {
  void begin(unsigned long) {}
  void print(const char*) {}
  void flush() {}
  explicit operator bool() const { return true; }
};
extern TfgenTestSerial Serial;
unsigned long micros();
unsigned long millis();
void delay(unsigned long);
#endif
