/* Start-up code for QEMU's mps2-an386 (Cortex-M4F), used by the `qemu` environment only.
 *
 * The image is code at 0x0 followed by .data's initial values (mps2_an386.ld); this copies .data to
 * RAM at 0x20000000, zeroes .bss, enables the FPU, opens the semihosting console (newlib's
 * librdimon), runs C++ constructors and main(), and leaves QEMU through semihosting's exit with
 * main's status. */
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
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20; /* CPACR: full access to CP10/CP11 (the FPU) */
  __asm volatile("dsb\n\tisb" ::: "memory");
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
