// Compile-only stand-in for ESP-IDF's freertos/task.h.
#pragma once
extern "C" void vTaskDelay(TickType_t ticks);
