// Compile-only stand-in for ESP-IDF 5's driver/uart.h: the calls firmware/tfgen_platform.cc makes.
#pragma once
#include <cstddef>
#include <cstdint>
#include "freertos/FreeRTOS.h"
typedef int uart_port_t;
typedef int esp_err_t;
typedef void* QueueHandle_t;
extern "C" {
esp_err_t uart_driver_install(uart_port_t uart_num, int rx_buffer_size, int tx_buffer_size, int queue_size,
                              QueueHandle_t* uart_queue, int intr_alloc_flags);
bool uart_is_driver_installed(uart_port_t uart_num);
int uart_read_bytes(uart_port_t uart_num, void* buf, std::uint32_t length, TickType_t ticks_to_wait);
esp_err_t uart_get_buffered_data_len(uart_port_t uart_num, std::size_t* size);
int uart_write_bytes(uart_port_t uart_num, const void* src, std::size_t size);
esp_err_t uart_wait_tx_done(uart_port_t uart_num, TickType_t ticks_to_wait);
}
