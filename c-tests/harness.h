/* A tiny TAP harness: each TEST is one scenario, run in order by RUN_TESTS, reported as
 * "ok N - name" / "not ok N - name", then a plan line and "N passed, N failed". */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcibind.h"

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

static inline int run_tests(const struct test_case *cases, size_t n)
{
    int failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
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
