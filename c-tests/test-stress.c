/* Concurrency stress: two processes of eight threads each hammer bind / reattach / unbind /
 * resolve / variant / is_vfio_bound on four shared devices for a bounded time (STRESS_SECONDS,
 * default 2), through one context per process and the kernel shim. Every call must succeed;
 * afterwards every device must be in a consistent state (on vfio-pci with its override, on
 * e1000e, or unbound with the "none" override), and each process must have done work. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testctx.h"

static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
static const char *const DEVICES[] = {"0000:02:00.0", "0000:02:00.1", "0000:03:00.0", "0000:03:00.1"};
#define NDEV 4
#define NTHREADS 8

static char *root;
static pcibind_ctx *ctx;
static double deadline;
static atomic_int failures, operations;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + (unsigned)getpid();
    while (now() < deadline) {
        const char *dev = DEVICES[rand_r(&seed) % NDEV];
        int rc = 0, op = rand_r(&seed) % 6;
        char *out = NULL;
        int flag = 0;
        switch (op) {
        case 0: rc = pcibind_bind(ctx, dev, "vfio-pci", 0, &out); break;
        case 1: rc = pcibind_bind(ctx, dev, NULL, 0, &out); break;
        case 2: rc = pcibind_reattach(ctx, dev, NULL, 0, &out); break;
        case 3: rc = pcibind_unbind(ctx, dev, 0); break;
        case 4: rc = pcibind_resolve_driver(ctx, "vfio_pci", 0, &out); break;
        case 5:
            rc = pcibind_find_vfio_variant(ctx, dev, &out);
            if (rc == 0)
                rc = pcibind_is_vfio_bound(ctx, dev, &flag);
            break;
        }
        if (rc != 0) {
            printf("#   pid %d op %d on %s: %d %s\n", getpid(), op, dev, rc, pcibind_last_error_message());
            atomic_fetch_add(&failures, 1);
        }
        free(out);
        atomic_fetch_add(&operations, 1);
    }
    return NULL;
}

/* One process's share: NTHREADS threads until the deadline. Returns 0 when all went well. */
static int hammer(void)
{
    pthread_t threads[NTHREADS];
    for (uintptr_t i = 0; i < NTHREADS; i++)
        pthread_create(&threads[i], NULL, worker, (void *)i);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(threads[i], NULL);
    printf("# pid %d: %d operations, %d failures\n", getpid(), atomic_load(&operations),
           atomic_load(&failures));
    return atomic_load(&failures) == 0 && atomic_load(&operations) > 0 ? 0 : 1;
}

static void consistent_afterwards(void)
{
    for (int i = 0; i < NDEV; i++) {
        char *override = ptk_override(root, DEVICES[i]);
        int ok = (ptk_is_bound_to(root, DEVICES[i], "vfio-pci") && override && !strcmp(override, "vfio-pci")) ||
                 (ptk_is_bound_to(root, DEVICES[i], "e1000e") && override && !strcmp(override, "(null)")) ||
                 (ptk_is_bound_to(root, DEVICES[i], NULL) && override && !strcmp(override, "none"));
        if (!ok) {
            printf("#   %s inconsistent: override %s\n", DEVICES[i], override ? override : "(none)");
            harness_failed_now = 1;
        }
        free(override);
    }
}

static void two_processes_of_eight_threads(void)
{
    root = ptk_new();
    e1000e_and_vfio_pci(root);
    for (int i = 0; i < NDEV; i++)
        ptk_device(root, DEVICES[i], E1000E, "e1000e");

    ctx = test_context(root, root, NULL, NULL);

    const char *secs = getenv("STRESS_SECONDS");
    deadline = now() + (secs ? atof(secs) : 2.0);
    pid_t child = fork();
    if (child == 0)
        _exit(hammer());
    CHECK(hammer() == 0);
    int status = -1;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    consistent_afterwards();
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

RUN_TESTS(TEST_CASE(two_processes_of_eight_threads))
