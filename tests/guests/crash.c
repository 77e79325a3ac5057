/* Crash test: three threads make getppid calls and compute in a loop while the main
 * thread, after a short computation, dies: argv[1] = "segv" (a store to address 0) or
 * "abort" (abort()). The guest never returns normally. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *hammer(void *arg)
{
    volatile unsigned long acc = (unsigned long)arg;
    for (;;) {
        syscall(SYS_getppid);
        for (int i = 0; i < 1000; i++) {
            acc = acc * 31 + i;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "segv";
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        if (pthread_create(&t[i], NULL, hammer, (void *)(unsigned long)i)) {
            perror("pthread_create");
            return 1;
        }
    }
    volatile unsigned long acc = 1;
    for (unsigned long i = 0; i < 3000000; i++) {
        acc = acc * 31 + i;
    }
    printf("crash: dying by %s\n", how);
    fflush(stdout);
    if (strcmp(how, "abort") == 0) {
        abort();
    }
    *(volatile int *)0 = 1;
    return 0;
}
