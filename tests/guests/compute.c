/* Deterministic single-threaded compute loop with loads and stores.
 * Used for exact agreement between our plugins and QEMU's reference plugins
 * (instruction count, memory accesses, basic blocks). */
#include <stdio.h>
#include <stdlib.h>

#define N 4096

static volatile unsigned long data[N];

int main(int argc, char **argv)
{
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 40;
    unsigned long acc = 1;

    for (unsigned long i = 0; i < N; i++) {
        data[i] = i * 2654435761UL;
    }
    for (unsigned long r = 0; r < rounds; r++) {
        for (unsigned long i = 1; i < N; i++) {
            unsigned long v = data[i] ^ data[i - 1];
            if (v & 1) {
                acc += v >> 3;
            } else {
                acc ^= v << 1;
            }
            data[i] = v + r;
        }
    }
    printf("compute: rounds=%lu acc=%lu\n", rounds, acc);
    return 0;
}
