/* Refusing openat2 as a container or an old kernel does, for the tests of the library's
 * fallback: a seccomp filter on the calling thread (inherited by the threads and processes it
 * then starts) that answers every openat2 with `err`, EPERM as Docker's default profile and
 * older systemd units do, or ENOSYS as kernels before 5.6 do. The library sees exactly what it
 * sees there. No architecture check: openat2 came after the syscall numbers were unified, so it
 * has the same number on every ABI of an architecture. */
#ifndef REFUSE_OPENAT2_H
#define REFUSE_OPENAT2_H

#include <errno.h>
#include <stddef.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* 0, or the errno of the failed installation. */
static inline int refuse_openat2(int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof(filter) / sizeof(filter[0]), filter};
    /* Without CAP_SYS_ADMIN a filter needs no_new_privs; as root it costs nothing. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return errno;
    return 0;
}

#endif
