/* Thread churn: TOTAL short-lived threads (argv[1], default 3000), created in
 * batches of BATCH (argv[2], default 8) and joined after each batch. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *work(void *arg)
{
    volatile unsigned long acc = (unsigned long)arg;
    for (int i = 0; i < 200; i++) {
        acc = acc * 31 + i;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int total = argc > 1 ? atoi(argv[1]) : 3000;
    int batch = argc > 2 ? atoi(argv[2]) : 8;
    pthread_t t[64];
    int created = 0;

    if (batch < 1 || batch > 64) {
        return 2;
    }
    while (created < total) {
        int n = 0;
        for (; n < batch && created < total; n++, created++) {
            if (pthread_create(&t[n], NULL, work, (void *)(unsigned long)created)) {
                perror("pthread_create");
                return 1;
            }
        }
        for (int i = 0; i < n; i++) {
            pthread_join(t[i], NULL);
        }
    }
    printf("churn: %d threads created and joined\n", created);
    return 0;
}
