// Compile-only stand-in for ESP-IDF's esp_timer.h.
#pragma once
#include <cstdint>
extern "C" std::int64_t esp_timer_get_time(void);
