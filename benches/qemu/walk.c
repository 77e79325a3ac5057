/*
 * walk: a deterministic guest with memory traffic and branches, for the contrib-plugin
 * benchmark (benches/qemu/contrib.py).
 *
 *   walk THREADS ITERATIONS
 *
 * Starts THREADS worker threads; each runs ITERATIONS turns of a loop over an array of
 * its own (16 KiB, 4 pages, page-aligned, so no two threads share a page): one load and
 * one store at a scattered index, and a branch on the loaded value (both ways are taken,
 * in a fixed pattern). Every 256th turn executes one `bswap`, a marker that execlog's
 * `ifilter=bswap` logs. The main thread only creates and joins the workers. Every
 * worker executes the same instructions and touches its pages the same number of times
 * on every run. Built with gcc -O1 -static -pthread.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define WORDS 4096 /* 16 KiB of uint32_t: 4 pages */

struct area {
    uint32_t data[WORDS];
    uint32_t result;
} __attribute__((aligned(4096)));

static struct area areas[64];
static uint64_t iterations;

static void *worker(void *arg)
{
    struct area *a = arg;
    uint32_t x = 1;
    for (uint64_t i = 0; i < iterations; i++) {
        uint32_t j = ((uint32_t)i * 2654435761u) >> 20; /* 12 bits: 0..4095 */
        uint32_t v = a->data[j];
        if (v & 1) {
            /* The empty asm keeps the compiler from turning the branch into a cmov. */
            __asm__ volatile("");
            x = x * 3 + (uint32_t)i;
        } else {
            x ^= v + 1;
        }
        a->data[j] = v + x;
        if ((i & 255) == 0) {
            __asm__ volatile("bswap %0" : "+r"(x));
        }
    }
    a->result = x;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s THREADS ITERATIONS\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]);
    iterations = strtoull(argv[2], NULL, 10);
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "THREADS must be 1..64\n");
        return 2;
    }
    pthread_t tid[64];
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&tid[t], NULL, worker, &areas[t]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    uint32_t sum = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        sum += areas[t].result;
    }
    printf("walk: %d threads x %llu iterations, checksum %x\n", threads,
           (unsigned long long)iterations, (unsigned)sum);
    return 0;
}
