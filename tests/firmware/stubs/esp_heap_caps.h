// Compile-only stand-in for ESP-IDF's esp_heap_caps.h (the flags' values are ESP-IDF's).
#pragma once
#include <cstddef>
#include <cstdint>
#define MALLOC_CAP_8BIT (1 << 2)
#define MALLOC_CAP_SPIRAM (1 << 10)
#define MALLOC_CAP_INTERNAL (1 << 11)
extern "C" void* heap_caps_aligned_alloc(std::size_t alignment, std::size_t size, std::uint32_t caps);
