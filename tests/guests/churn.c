/* Thread churn: TOTAL short-lived threads (argv[1], default 3000), created in
 * batches of BATCH (argv[2], default 8) and joined after each batch. With argv[3] =
 * "hold", the threads of a batch wait for each other before they end, so all BATCH of
 * them are alive at once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_barrier_t *hold;

static void *work(void *arg)
{
    volatile unsigned long acc = (unsigned long)arg;
    for (int i = 0; i < 200; i++) {
        acc = acc * 31 + i;
    }
    if (hold) {
        pthread_barrier_wait(hold);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int total = argc > 1 ? atoi(argv[1]) : 3000;
    int batch = argc > 2 ? atoi(argv[2]) : 8;
    pthread_t t[64];
    pthread_barrier_t barrier;
    int created = 0;
    int holding = argc > 3 && strcmp(argv[3], "hold") == 0;

    if (batch < 1 || batch > 64) {
        return 2;
    }
    while (created < total) {
        int n = 0;
        if (holding) {
            int left = total - created;
            pthread_barrier_init(&barrier, NULL, left < batch ? left : batch);
            hold = &barrier;
        }
        for (; n < batch && created < total; n++, created++) {
            if (pthread_create(&t[n], NULL, work, (void *)(unsigned long)created)) {
                perror("pthread_create");
                return 1;
            }
        }
        for (int i = 0; i < n; i++) {
            pthread_join(t[i], NULL);
        }
        if (holding) {
            pthread_barrier_destroy(&barrier);
        }
    }
    printf("churn: %d threads created and joined\n", created);
    return 0;
}
