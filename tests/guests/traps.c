/* N threads (argv[1], default 4), each executing K `ud2` instructions (argv[2],
 * default 100) whose SIGILL a handler skips. In linux-user every one is an exception
 * discontinuity on that thread's vCPU (QEMU >= 10.2). Exits 0 only if every trap was
 * handled. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

static long per_thread = 100;
static long handled;

static void on_sigill(int sig, siginfo_t *info, void *ctx)
{
    ucontext_t *uc = ctx;
    (void)sig;
    (void)info;
    uc->uc_mcontext.gregs[REG_RIP] += 2; /* the length of ud2 */
    __atomic_fetch_add(&handled, 1, __ATOMIC_RELAXED);
}

static void *work(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++) {
        __asm__ volatile("ud2");
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2) {
        per_thread = strtol(argv[2], NULL, 10);
    }
    pthread_t t[64];
    if (n < 1 || n > 64) {
        return 2;
    }
    struct sigaction sa = {0};
    sa.sa_sigaction = on_sigill;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGILL, &sa, NULL)) {
        perror("sigaction");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&t[i], NULL, work, NULL)) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
    }
    long total = __atomic_load_n(&handled, __ATOMIC_RELAXED);
    printf("traps: %d threads, %ld traps handled\n", n, total);
    return total == n * per_thread ? 0 : 1;
}
