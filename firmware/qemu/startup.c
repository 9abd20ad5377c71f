/* Start-up code for an emulated Cortex-M (QEMU's mps2 machines), used by the `qemu` environment only.
 *
 * The image is code at CODE followed by .data's initial values (src/qemu/<board>.ld, made from the
 * board's memory map); this copies .data to RAM, zeroes .bss, enables the FPU (on cores built with
 * one), opens the semihosting console (newlib's librdimon), runs C++ constructors and main(), and
 * leaves QEMU through semihosting's exit with main's status. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__, __stack_top;
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);
extern int main(void);

void Reset_Handler(void) {
  const uint32_t* from = &__data_load__;
  for (uint32_t* p = &__data_start__; p < &__data_end__; ++p) *p = *from++;
  for (uint32_t* p = &__bss_start__; p < &__bss_end__; ++p) *p = 0;
#if defined(__ARM_FP)
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20; /* CPACR: full access to CP10/CP11 (the FPU) */
  __asm volatile("dsb\n\tisb" ::: "memory");
#endif
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

/* -nostartfiles drops crti/crtn and crtbegin: __libc_init_array still calls _init, and C++ static
 * destructors are registered against __dso_handle. */
void _init(void) {}
void _fini(void) {}
void* __dso_handle = 0;

static void Fault_Handler(void) { exit(86); } /* any fault or unexpected interrupt ends the run */

__attribute__((section(".vectors"), used)) void (*const tfgen_vectors[16])(void) = {
    (void (*)(void))(&__stack_top), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler,
    Fault_Handler,
};
