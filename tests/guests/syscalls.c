/* A fixed, deterministic set of system calls, some of which fail.
 * Used to compare per-syscall call and error counts with QEMU's syscall.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

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
        if (syscall(SYS_open, "/nonexistent/qemu-plugin-rs/missing", O_RDONLY) < 0) {
            failed++;
        }
    }
    int fd = syscall(SYS_open, "/dev/null", O_WRONLY);
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
        if (syscall(SYS_stat, "/nonexistent/qemu-plugin-rs/missing", &st) < 0) {
            failed++;
        }
    }
    printf("syscalls: ok=%d failed=%d\n", ok, failed);
    return 0;
}
