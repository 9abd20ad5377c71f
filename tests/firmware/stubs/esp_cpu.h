// Compile-only stand-in for ESP-IDF's esp_cpu.h (IDF 5).
#pragma once
#include <cstdint>
typedef std::uint32_t esp_cpu_cycle_count_t;
extern "C" esp_cpu_cycle_count_t esp_cpu_get_cycle_count(void);
