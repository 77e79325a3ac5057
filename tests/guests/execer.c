/* Exec test: makes 5 getppid calls, tries to exec a program that does not exist (which
 * fails and returns), then execs argv[1] with argv[1..] as its arguments. First it
 * prints the numbers of those calls on its architecture. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: execer PROGRAM [ARGS...]\n");
        return 2;
    }
    printf("execer: nrs getppid=%ld execve=%ld\n", (long)SYS_getppid, (long)SYS_execve);
    fflush(stdout);
    for (int i = 0; i < 5; i++) {
        syscall(SYS_getppid);
    }
    char *none[] = {"/nonexistent/qemu-plugin-rs/prog", NULL};
    execv(none[0], none);
    printf("execer: exec of a missing program failed as expected\n");
    fflush(stdout);
    execv(argv[1], argv + 1);
    perror("execer: exec");
    return 1;
}
