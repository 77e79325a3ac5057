/*
 * call_floor: what one indirect call costs on this machine, with no QEMU, no mock and no
 * Rust. It runs the loop the mock host runs for a block whose every instruction carries
 * one callback (load the function and its userdata from a flat array, call it with the
 * vCPU index), over 32-item blocks, with an empty callback and with one that adds 1 to
 * a counter. No callback path, in this crate or in C, can cost less per event than the
 * empty one.
 *
 *   gcc -O2 -o /tmp/call_floor benches/call_floor.c && /tmp/call_floor
 *
 * Prints the median of 7 timed runs of 10,000,000 blocks, in ns per call.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void (*callback)(unsigned int vcpu, void *userdata);

struct item {
    callback f;
    void *userdata;
};

#define BLOCK 32
#define BLOCKS 10000000L
#define RUNS 7

static uint64_t counts[8];

__attribute__((noinline)) static void empty(unsigned int vcpu, void *userdata)
{
    (void)vcpu;
    (void)userdata;
    __asm__ volatile("");
}

__attribute__((noinline)) static void count(unsigned int vcpu, void *userdata)
{
    (void)userdata;
    counts[vcpu & 7]++;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_ns_per_call(callback f)
{
    /* volatile: the compiler must not see which function the items hold. */
    static struct item items[BLOCK];
    double runs[RUNS];
    for (int i = 0; i < BLOCK; i++) {
        items[i].f = f;
        items[i].userdata = NULL;
    }
    volatile unsigned int vcpu_source = 1;
    for (int r = 0; r < RUNS; r++) {
        unsigned int vcpu = vcpu_source;
        struct item *volatile block = items;
        double start = now_ns();
        for (long b = 0; b < BLOCKS; b++) {
            for (int i = 0; i < BLOCK; i++) {
                block[i].f(vcpu, block[i].userdata);
            }
        }
        runs[r] = (now_ns() - start) / (BLOCKS * BLOCK);
    }
    qsort(runs, RUNS, sizeof runs[0], by_value);
    return runs[RUNS / 2];
}

int main(void)
{
    double e = median_ns_per_call(empty);
    double c = median_ns_per_call(count);
    printf("empty callback:    %.2f ns per call\n", e);
    printf("counting callback: %.2f ns per call (%llu calls counted)\n", c,
           (unsigned long long)counts[1]);
    return counts[1] == (uint64_t)RUNS * BLOCKS * BLOCK ? 0 : 1;
}
