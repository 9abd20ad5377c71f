// Compile-only stand-in for ESP-IDF's FreeRTOS.h.
#pragma once
#include <cstdint>
typedef std::uint32_t TickType_t;
#define pdMS_TO_TICKS(ms) (static_cast<TickType_t>(ms))
#define portMAX_DELAY (static_cast<TickType_t>(0xffffffffu))
