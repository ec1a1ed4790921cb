/* The context the writing tests use on a fake tree: module loading through `modprobe` (NULL =
 * never), lock files in STATE/locks, proc files from STATE/proc, device nodes under STATE/dev
 * (never the real /dev: the in-use check opens the nodes of disks it finds), alias tables from
 * `modules_dir` (NULL = STATE/lib-modules). STATE is usually the tree's root. */
#ifndef TESTCTX_H
#define TESTCTX_H

#include <pthread.h>
#include <syslog.h>

#include <pcibind-testkit.h>
#include "harness.h"

/* The warnings (LOG_WARNING and more severe) a context logged, one per line, when a test sets
 * capture_warnings() as its log callback; tests empty it in their setup and search it. Safe to
 * call from the many threads a test may bind from. */
static char warnings[8192] __attribute__((unused));
static pthread_mutex_t warnings_lock __attribute__((unused)) = PTHREAD_MUTEX_INITIALIZER;

static inline void capture_warnings(void *userdata, int priority, const char *message)
{
    (void)userdata;
    if (priority <= LOG_WARNING) {
        pthread_mutex_lock(&warnings_lock);
        size_t len = strlen(warnings);
        snprintf(warnings + len, sizeof(warnings) - len, "%s\n", message);
        pthread_mutex_unlock(&warnings_lock);
    }
}

static inline pcibind_ctx *test_context(const char *root, const char *state, const char *modprobe,
                                        const char *modules_dir)
{
    pcibind_ctx *ctx = NULL;
    ptk_mkdirs(state, "locks");
    ptk_mkdirs(state, "proc/net");
    ptk_mkdirs(state, "proc/self");
    CHECK_RC(pcibind_ctx_new(root, 0, &ctx), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, modprobe), PCIBIND_OK);
    char *locks = ptk_path(state, "locks");
    CHECK_RC(pcibind_ctx_set_lock_dir(ctx, locks), PCIBIND_OK);
    free(locks);
    char *proc = ptk_path(state, "proc");
    CHECK_RC(pcibind_ctx_set_proc_root(ctx, proc), PCIBIND_OK);
    free(proc);
    char *dev = ptk_path(state, "dev");
    CHECK_RC(pcibind_ctx_set_dev_root(ctx, dev), PCIBIND_OK);
    free(dev);
    char *modules = modules_dir ? strdup(modules_dir) : ptk_path(state, "lib-modules");
    CHECK_RC(pcibind_ctx_set_modules_dir(ctx, modules), PCIBIND_OK);
    free(modules);
    return ctx;
}

/* The common fixture of the writing tests: vfio-pci loaded, e1000e loaded with an ID table for
 * the 82574L, and STATE/lib-modules/modules.alias with the aliases the claim check needs. */
static inline void e1000e_and_vfio_pci(const char *root)
{
    ptk_mkdirs(root, "lib-modules");
    ptk_write(root, "lib-modules/modules.alias",
              "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n"
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n");
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_loaded_driver(root, "e1000e", "e1000e");
    ptk_driver_ids(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
}

/* The host's uplink on the device BDF (in devices/pci0000:00): its interface eth0 up, with an
 * IPv4 route in the tree's proc/net/route, as the in-use check reads a fake tree. */
static inline void nic_carries_the_hosts_traffic_in(const char *root, const char *bdf)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/net/eth0", bdf);
    ptk_mkdirs(root, rel);
    snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/net/eth0/flags", bdf);
    ptk_write(root, rel, "0x1003\n");
    ptk_mkdirs(root, "proc/net");
    ptk_write(root, "proc/net/route",
              "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
              "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
}

/* The checks of a device's state the writing tests share: bound to `driver` (NULL: unbound),
 * and its driver_override ("(null)" when unset), in the tree at `root`. */
static inline void expect_bound_in(const char *root, const char *bdf, const char *driver)
{
    if (!ptk_is_bound_to(root, bdf, driver)) {
        printf("#   %s is not bound to %s\n", bdf, driver ? driver : "(no driver)");
        harness_failed_now = 1;
    }
}

static inline void expect_override_in(const char *root, const char *bdf, const char *expected)
{
    char *value = ptk_override(root, bdf);
    CHECK_STR(value, expected);
    free(value);
}

#endif
