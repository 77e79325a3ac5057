/*
 * Guest for the register test: at the global label `probe_site` the stack pointer holds
 * the value this program prints as `sp=` and the third argument register holds the
 * constant it prints as `reg=`. The test reads the same registers there by name with
 * the `regs` example and takes `probe_site`'s address from this file's symbol table.
 * A jump lands on `probe_site`, so that it starts a translation block: QEMU updates the
 * guest PC that a callback reads at block starts (in QEMU 10.2 an instruction callback
 * in the middle of a block reads the block's start address as the PC).
 */
#include <stdio.h>

#define MARK 0x1234abcd5678ef01UL

int main(void) {
    unsigned long sp, reg;
#if defined(__x86_64__)
    __asm__ volatile("mov %%rsp, %0\n\t"
                     "movabs $0x1234abcd5678ef01, %%rdx\n\t"
                     "jmp probe_site\n\t"
                     ".globl probe_site\n"
                     "probe_site:\n\t"
                     "nop\n\t"
                     "mov %%rdx, %1"
                     : "=&r"(sp), "=r"(reg)
                     :
                     : "rdx");
#elif defined(__aarch64__)
    __asm__ volatile("mov %0, sp\n\t"
                     "movz x2, #0xef01\n\t"
                     "movk x2, #0x5678, lsl #16\n\t"
                     "movk x2, #0xabcd, lsl #32\n\t"
                     "movk x2, #0x1234, lsl #48\n\t"
                     "b probe_site\n\t"
                     ".globl probe_site\n"
                     "probe_site:\n\t"
                     "nop\n\t"
                     "mov %1, x2"
                     : "=&r"(sp), "=r"(reg)
                     :
                     : "x2");
#elif defined(__riscv) && __riscv_xlen == 64
    __asm__ volatile("mv %0, sp\n\t"
                     "li a2, 0x1234abcd5678ef01\n\t"
                     "j probe_site\n\t"
                     ".globl probe_site\n"
                     "probe_site:\n\t"
                     "nop\n\t"
                     "mv %1, a2"
                     : "=&r"(sp), "=r"(reg)
                     :
                     : "a2");
#else
#error "regs.c knows x86_64, aarch64 and riscv64"
#endif
    printf("regs: sp=0x%lx reg=0x%lx mark=%s\n", sp, reg, reg == MARK ? "ok" : "BAD");
    return 0;
}
