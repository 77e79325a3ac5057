/* N compute threads (N from argv[1], default 2), each running a fixed loop of argv[2]
 * turns. Every thread is a vCPU in linux-user, so each vCPU index must see work.
 * With a third argument "together", every thread waits at a barrier until all N have
 * started, so that all are alive at once and no vCPU index is given twice. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long iters = 2000000;
static int together;
static pthread_barrier_t start;

static void *work(void *arg)
{
    unsigned long id = (unsigned long)arg;
    volatile unsigned long acc = id;
    if (together) {
        pthread_barrier_wait(&start);
    }
    for (unsigned long i = 0; i < iters; i++) {
        acc = acc * 6364136223846793005UL + i;
    }
    return (void *)(acc & 1);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2;
    if (argc > 2) {
        iters = strtoul(argv[2], NULL, 10);
    }
    pthread_t t[256];
    if (n < 1 || n > 256) {
        return 2;
    }
    together = argc > 3 && strcmp(argv[3], "together") == 0;
    if (together && pthread_barrier_init(&start, NULL, n)) {
        return 2;
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&t[i], NULL, work, (void *)(unsigned long)i)) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
    }
    printf("threads: %d done\n", n);
    return 0;
}
