// Compile-only stand-in for the sdkconfig.h an ESP-IDF build generates.
#pragma once
#define CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ 240
#define CONFIG_ESP_CONSOLE_UART_NUM 0
