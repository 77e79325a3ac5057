/* Fork test: the parent does a long computation first (so inherited counts would be
 * obvious), then forks CHILDREN (argv[1], default 3) children one at a time. Child i
 * makes 10*(i+1) getppid calls, a short computation, and exits; the parent waits for
 * it before forking the next. The parent itself makes 7 getppid calls before the forks
 * and 3 after. Expected per-process syscall counts follow from this source. At the end
 * the parent prints the numbers of the calls involved on its architecture (-1: the
 * architecture has no such call). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned long spin(unsigned long n)
{
    volatile unsigned long acc = 1;
    for (unsigned long i = 0; i < n; i++) {
        acc = acc * 6364136223846793005UL + i;
    }
    return acc;
}

int main(int argc, char **argv)
{
    int children = argc > 1 ? atoi(argv[1]) : 3;

    spin(5000000);
    for (int i = 0; i < 7; i++) {
        syscall(SYS_getppid);
    }
    for (int i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            for (int j = 0; j < 10 * (i + 1); j++) {
                syscall(SYS_getppid);
            }
            spin(1000);
            _exit(0);
        }
        int status = 0;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "forker: child %d failed (status %d)\n", i, status);
            return 1;
        }
    }
    for (int i = 0; i < 3; i++) {
        syscall(SYS_getppid);
    }
#ifndef SYS_fork
#define SYS_fork -1
#endif
#ifndef SYS_clone3
#define SYS_clone3 -1
#endif
    printf("forker: nrs getppid=%ld clone=%ld clone3=%ld fork=%ld wait4=%ld\n", (long)SYS_getppid,
           (long)SYS_clone, (long)SYS_clone3, (long)SYS_fork, (long)SYS_wait4);
    printf("forker: %d children ok\n", children);
    return 0;
}
