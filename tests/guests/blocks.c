/* Deterministic, block-structured code for hotblocks: a small interpreter
 * whose dispatch produces many basic blocks with very different, repeatable
 * execution counts. */
#include <stdio.h>
#include <stdlib.h>

static __attribute__((noinline)) unsigned long step_a(unsigned long x) { return x * 3 + 1; }
static __attribute__((noinline)) unsigned long step_b(unsigned long x) { return x >> 1; }
static __attribute__((noinline)) unsigned long step_c(unsigned long x) { return x ^ 0x5a5a; }

int main(int argc, char **argv)
{
    unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    unsigned long x = 27, sum = 0;

    for (unsigned long i = 0; i < iters; i++) {
        switch (i % 7) {
        case 0:
        case 3:
            x = step_a(x);
            break;
        case 1:
            x = step_b(x);
            break;
        case 5:
            x = step_c(x);
            break;
        default:
            if (x & 1) {
                x = step_a(x) & 0xffffff;
            } else {
                x = step_b(x);
            }
        }
        if (x == 0) {
            x = 27;
        }
        sum += x & 0xff;
    }
    printf("blocks: iters=%lu sum=%lu\n", iters, sum);
    return 0;
}
