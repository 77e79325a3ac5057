/* Deterministic nested calls compiled with frame pointers (whatever the -O level), for
 * call-stack tracers (the uftrace plugin): main -> run -> fib (recursive) and
 * run -> sum -> leaf, N times (argv[1], default 3). Prints how many times each function
 * was called, for the tracer's output to be checked against. */
#pragma GCC optimize("no-omit-frame-pointer")
#include <stdio.h>
#include <stdlib.h>

static unsigned long calls_leaf, calls_sum, calls_fib, calls_run;

/* Frameless (GCC omits the frame pointer of leaf functions even so): invisible to a
 * frame-pointer tracer, and there only to make `leaf` a caller, with a frame. */
__attribute__((noinline)) static void tick(void)
{
    __asm__ volatile("");
}

__attribute__((noinline)) static unsigned long leaf(unsigned long x)
{
    calls_leaf++;
    tick();
    __asm__ volatile("" : "+r"(x));
    return x * 3 + 1;
}

__attribute__((noinline)) static unsigned long sum(unsigned long n)
{
    unsigned long s = 0;
    calls_sum++;
    for (unsigned long i = 0; i < n; i++) {
        s += leaf(i);
    }
    return s;
}

__attribute__((noinline)) static unsigned long fib(unsigned long n)
{
    calls_fib++;
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

__attribute__((noinline)) static unsigned long run(unsigned long n)
{
    calls_run++;
    return fib(n + 4) + sum(n);
}

int main(int argc, char **argv)
{
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 3;
    unsigned long acc = 0;
    for (unsigned long r = 0; r < rounds; r++) {
        acc += run(r);
    }
    printf("calls: rounds=%lu acc=%lu\n", rounds, acc);
    printf("calls: main=1 run=%lu fib=%lu sum=%lu leaf=%lu\n", calls_run, calls_fib, calls_sum,
           calls_leaf);
    return 0;
}
