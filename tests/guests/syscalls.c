/* A fixed, deterministic set of system calls, some of which fail.
 * Used to compare per-syscall call and error counts with QEMU's syscall.c.
 * Prints how many failed and the numbers of the calls made to fail (close, open, stat;
 * aarch64 and riscv64 have only openat and newfstatat), which differ per architecture. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef SYS_open
#define NR_OPEN SYS_open
#define OPEN(path, flags) syscall(SYS_open, path, flags)
#else
#define NR_OPEN SYS_openat
#define OPEN(path, flags) syscall(SYS_openat, AT_FDCWD, path, flags)
#endif
#ifdef SYS_stat
#define NR_STAT SYS_stat
#define STAT(path, st) syscall(SYS_stat, path, st)
#else
#define NR_STAT SYS_newfstatat
#define STAT(path, st) syscall(SYS_newfstatat, AT_FDCWD, path, st, 0)
#endif

int main(void)
{
    int ok = 0, failed = 0;

    for (int i = 0; i < 10; i++) {
        if (syscall(SYS_getppid) > 0) {
            ok++;
        }
    }
    for (int i = 0; i < 5; i++) {
        if (syscall(SYS_close, -1) < 0) {
            failed++;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (OPEN("/nonexistent/qemu-plugin-rs/missing", O_RDONLY) < 0) {
            failed++;
        }
    }
    int fd = OPEN("/dev/null", O_WRONLY);
    if (fd >= 0) {
        for (int i = 0; i < 7; i++) {
            if (syscall(SYS_write, fd, "x", 1) == 1) {
                ok++;
            }
        }
        syscall(SYS_close, fd);
    }
    struct stat st;
    for (int i = 0; i < 2; i++) {
        if (STAT("/nonexistent/qemu-plugin-rs/missing", &st) < 0) {
            failed++;
        }
    }
    printf("syscalls: ok=%d failed=%d nrs=%d,%d,%d\n", ok, failed, (int)SYS_close, (int)NR_OPEN,
           (int)NR_STAT);
    return 0;
}
