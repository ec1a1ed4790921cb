/* A tiny TAP harness: each TEST is one scenario, run in order by RUN_TESTS, reported as
 * "ok N - name" / "not ok N - name", then a plan line and "N passed, N failed".
 *
 * With PCIBIND_TEST_REFUSE_OPENAT2=EPERM or ENOSYS in the environment every scenario runs under
 * a seccomp filter that refuses openat2 that way (refuse-openat2.h), so the library resolves
 * every path by its fallback walk. (Under valgrind, which knows no openat2, both are ENOSYS.) */
#ifndef HARNESS_H
#define HARNESS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcibind.h"
#include "refuse-openat2.h"

static int harness_failed_now;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            printf("#   %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);      \
            harness_failed_now = 1;                                                  \
        }                                                                            \
    } while (0)

/* Checks a call's return code; on mismatch prints the library's last error message. */
#define CHECK_RC(call, expected)                                                        \
    do {                                                                                \
        int rc_ = (call);                                                               \
        if (rc_ != (expected)) {                                                        \
            printf("#   %s:%d: %s returned %d, expected %d (%s)\n", __FILE__, __LINE__, \
                   #call, rc_, (int)(expected), pcibind_last_error_message());          \
            harness_failed_now = 1;                                                     \
        }                                                                               \
    } while (0)

#define CHECK_STR(actual, expected)                                                      \
    do {                                                                                 \
        const char *a_ = (actual), *e_ = (expected);                                     \
        if (!a_ || !e_ ? a_ != e_ : strcmp(a_, e_) != 0) {                               \
            printf("#   %s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__,     \
                   #actual, a_ ? a_ : "(NULL)", e_ ? e_ : "(NULL)");                     \
            harness_failed_now = 1;                                                      \
        }                                                                                \
    } while (0)

#define CHECK_CONTAINS(haystack, needle)                                                 \
    do {                                                                                 \
        const char *h_ = (haystack), *n_ = (needle);                                     \
        if (!h_ || !strstr(h_, n_)) {                                                    \
            printf("#   %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,    \
                   h_ ? h_ : "(NULL)", n_);                                              \
            harness_failed_now = 1;                                                      \
        }                                                                                \
    } while (0)

typedef void (*test_fn)(void);
struct test_case {
    const char *name;
    test_fn fn;
};

#define TEST_CASE(fn) {#fn, fn}

/* The errno PCIBIND_TEST_REFUSE_OPENAT2 names, 0 when unset, -1 when it names another. */
static inline int harness_refused_openat2(void)
{
    const char *v = getenv("PCIBIND_TEST_REFUSE_OPENAT2");
    if (!v || !*v)
        return 0;
    return !strcmp(v, "EPERM") ? EPERM : !strcmp(v, "ENOSYS") ? ENOSYS : -1;
}

/* Before the first scenario: -1 to go on, or the exit status (the run cannot be made). */
static inline int harness_start(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int refused = harness_refused_openat2();
    if (refused < 0) {
        printf("Bail out! PCIBIND_TEST_REFUSE_OPENAT2 must be EPERM or ENOSYS\n");
        return 1;
    }
    if (refused) {
        int err = refuse_openat2(refused);
        if (err) {
            printf("1..0 # SKIP cannot refuse openat2 with a seccomp filter: %s\n",
                   strerror(err));
            return 77;
        }
        printf("# openat2 refused with %s by a seccomp filter\n",
               getenv("PCIBIND_TEST_REFUSE_OPENAT2"));
    }
    return -1;
}

static inline int run_tests(const struct test_case *cases, size_t n)
{
    int failed = 0;
    int start = harness_start();
    if (start >= 0)
        return start;
    for (size_t i = 0; i < n; i++) {
        harness_failed_now = 0;
        cases[i].fn();
        printf("%sok %zu - %s\n", harness_failed_now ? "not " : "", i + 1, cases[i].name);
        failed += harness_failed_now;
    }
    printf("1..%zu\n", n);
    printf("# %zu passed, %d failed\n", n - (size_t)failed, failed);
    return failed ? 1 : 0;
}

#define RUN_TESTS(...)                                                          \
    int main(void)                                                              \
    {                                                                           \
        static const struct test_case cases_[] = {__VA_ARGS__};                 \
        return run_tests(cases_, sizeof(cases_) / sizeof(cases_[0]));           \
    }

#endif
