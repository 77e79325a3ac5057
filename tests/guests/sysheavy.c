/* Several threads making a known number of system calls each, some failing.
 * Only raw syscall(2) is used for the counted calls; the program then prints
 * its own totals per syscall number, so a test can compare with a plugin:
 *   sysheavy: nr=<n> calls=<c> errors=<e>
 * Neither libc start-up nor pthread uses getppid, write or close in a static
 * binary, and the report is written with one raw write(2) that is counted, so
 * a plugin must see exactly these totals for these three numbers. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static int per_thread = 2000;
static int devnull;

struct counts {
    long getppid, write, write_err, close_err;
};

static void *work(void *arg)
{
    struct counts *c = arg;
    for (int i = 0; i < per_thread; i++) {
        syscall(SYS_getppid);
        c->getppid++;
        if (i % 2 == 0) {
            syscall(SYS_write, devnull, "y", 1);
            c->write++;
        }
        if (i % 5 == 0) {
            if (syscall(SYS_write, -1, "y", 1) < 0) {
                c->write_err++;
            }
            c->write++;
        }
        if (i % 10 == 0) {
            if (syscall(SYS_close, -1) < 0) {
                c->close_err++;
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2) {
        per_thread = atoi(argv[2]);
    }
    pthread_t t[64];
    struct counts c[64] = {{0}};
    if (n < 1 || n > 64) {
        return 2;
    }
    devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0) {
        return 1;
    }
    for (int i = 0; i < n; i++) {
        pthread_create(&t[i], NULL, work, &c[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
    }
    struct counts sum = {0};
    for (int i = 0; i < n; i++) {
        sum.getppid += c[i].getppid;
        sum.write += c[i].write;
        sum.write_err += c[i].write_err;
        sum.close_err += c[i].close_err;
    }
    /* The report itself is one more successful write(2), made with a raw
     * syscall so that stdio cannot split it; count it before formatting. */
    sum.write++;
    char buf[512];
    int len = snprintf(buf, sizeof(buf),
                       "sysheavy: nr=%d calls=%ld errors=%d\n"
                       "sysheavy: nr=%d calls=%ld errors=%ld\n"
                       "sysheavy: nr=%d calls=%ld errors=%ld\n",
                       SYS_getppid, sum.getppid, 0,
                       SYS_write, sum.write, sum.write_err,
                       SYS_close, sum.close_err, sum.close_err);
    if (syscall(SYS_write, 1, buf, len) != len) {
        return 1;
    }
    return 0;
}
