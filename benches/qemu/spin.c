/*
 * spin: a compute-bound, deterministic guest for the real-QEMU benchmark.
 *
 *   spin THREADS ITERATIONS
 *
 * Starts THREADS worker threads; each runs the same tight loop ITERATIONS times on its
 * own cache line, then exits. The main thread only creates and joins them. Every worker
 * executes exactly the same instructions, so a plugin's per-vCPU count of each worker
 * is the same on every run. Built with gcc -O1 -static -pthread.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct slot {
    uint64_t value;
    char pad[120];
} __attribute__((aligned(128)));

static struct slot results[64];
static uint64_t iterations;

static void *worker(void *arg)
{
    struct slot *out = arg;
    uint64_t x = 1;
    for (uint64_t i = 0; i < iterations; i++) {
        /* A small dependent chain the compiler cannot fold: 5 instructions a turn. */
        x = x * 3 + i;
        __asm__ volatile("" : "+r"(x));
    }
    out->value = x;
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
        if (pthread_create(&tid[t], NULL, worker, &results[t]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        sum += results[t].value;
    }
    printf("spin: %d threads x %llu iterations, checksum %llx\n", threads,
           (unsigned long long)iterations, (unsigned long long)sum);
    return 0;
}
