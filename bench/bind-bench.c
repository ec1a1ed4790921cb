/* Bind benchmark (SPEC section 7): bind N emulated devices to vfio-pci, then reattach them to
 * their host driver, through the C API with the kernel-emulation shim preloaded.
 *
 *   bind-bench prepare DIR N   build a fake tree with N e1000e devices in DIR
 *   bind-bench time DIR N      for each device in turn: bind to vfio-pci, bind back to the host
 *                              driver by name (pcibind_bind(..., "e1000e", ...)), bind to vfio-pci
 *                              again, reattach (NULL); print microseconds per bind to vfio-pci,
 *                              per bind to e1000e and per reattach
 *   bind-bench bind DIR N      bind all N, nothing else (to run under strace -c -f)
 *   bind-bench minimal DIR N   the minimal sequence by hand for each device: read the driver
 *                              link, write driver_override, write unbind, write drivers_probe,
 *                              read the link again (the floor, under the same emulator)
 *   bind-bench none DIR N      create the context and stop (the baseline for the counts)
 *   bind-bench prepare-vfs DIR N    build a fake tree with an SR-IOV PF on ixgbe (a driver
 *                              with sriov_configure) and ixgbevf loaded, and give the PF N VFs
 *                              through pcibind_sriov_set_numvfs() (parked: unbound, override
 *                              none); needs the shim
 *   bind-bench vfs DIR N THREADS    bind the PF's N VFs to vfio-pci from THREADS threads
 *                              sharing one context, each taking the next unbound VF; print N,
 *                              THREADS and the wall-clock microseconds per VF
 *   bind-bench vfs-minimal DIR N THREADS   the same with the minimal sequence by hand (write
 *                              driver_override, write drivers_probe, read the driver link):
 *                              the emulator's floor, and how far it lets threads scale
 *
 *   bind-bench holders DIR PROCS    the cost of looking for a VMM holding a device (issue 20):
 *                              a tree with one e1000e device and its IOMMU group, dev/vfio/,
 *                              and a fake proc root of PROCS processes with 32 descriptors
 *                              each (none the device's); then rounds of bind to vfio-pci +
 *                              reattach, the reattach (which looks at every process's
 *                              descriptors) timed with that proc root and with an empty one;
 *                              prints PROCS and the microseconds per reattach of both
 *
 * bench/bind.sh runs the first set for N = 256, 1024, 4096 and prints the table; bench/vfs.sh
 * the VFs for N = 256, 1024, 4096 and 1, 2, 4, 8 threads. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pcibind-testkit.h>
#include "pcibind.h"

static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
/* An 82599 PF (ixgbe) and its VFs (ixgbevf), as in c-tests/test-sriov.c. */
static const char *const IXGBE = "pci:v00008086d000010FBsv00008086sd00000003bc02sc00i00";
static const char *const IXGBEVF = "pci:v00008086d000010EDsv00008086sd00000003bc02sc00i00";
#define PF "0000:01:00.0"

static void address_of(int i, char *out, size_t len)
{
    snprintf(out, len, "0000:%02x:%02x.%x", (i / 256) & 0xff, (i / 8) % 32, i % 8);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static pcibind_ctx *context(const char *root)
{
    pcibind_ctx *ctx = NULL;
    char locks[PATH_MAX], proc[PATH_MAX];
    snprintf(locks, sizeof(locks), "%s/locks", root);
    snprintf(proc, sizeof(proc), "%s/proc", root);
    const char *modules = getenv("PCIBIND_BENCH_MODULES");
    if (pcibind_ctx_new(root, 0, &ctx) < 0 || pcibind_ctx_set_modprobe(ctx, NULL) < 0 ||
        pcibind_ctx_set_lock_dir(ctx, locks) < 0 || pcibind_ctx_set_proc_root(ctx, proc) < 0 ||
        (modules && pcibind_ctx_set_modules_dir(ctx, modules) < 0)) {
        fprintf(stderr, "ctx: %s\n", pcibind_last_error_message());
        exit(1);
    }
    return ctx;
}

static void write_file(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, value, strlen(value)) < 0) {
        perror(path);
        exit(1);
    }
    close(fd);
}

/* Binds device i to `driver` (all safety checks on); exits on failure. */
static void bind_one(pcibind_ctx *ctx, int i, const char *driver)
{
    char bdf[32];
    address_of(i, bdf, sizeof(bdf));
    if (pcibind_bind(ctx, bdf, driver, 0, NULL) < 0) {
        fprintf(stderr, "bind %s to %s: %s\n", bdf, driver, pcibind_last_error_message());
        exit(1);
    }
}

/* The empty tree, the context's lock and proc dirs, vfio-pci, and a loaded host driver with
 * its ID table. */
static void base_tree(const char *root, const char *host_driver, const char *ids)
{
    ptk_init(root);
    ptk_mkdirs(root, "locks");
    ptk_mkdirs(root, "proc");
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_loaded_driver(root, host_driver, host_driver);
    ptk_driver_ids(root, host_driver, ids);
}

/* prepare-vfs: the PF with First VF Offset 1 and VF Stride 1 (VF i at routing ID PF + 1 + i,
 * so 4096 VFs run over 17 buses, as ARI allows), then N VFs made by the library. */
static int prepare_vfs(const char *root, int n)
{
    base_tree(root, "ixgbe", "pci:v00008086d000010FBsv*sd*bc*sc*i*");
    ptk_write(root, "bus/pci/drivers/ixgbe/fake_sriov_configure", "");
    ptk_loaded_driver(root, "ixgbevf", "ixgbevf");
    ptk_driver_ids(root, "ixgbevf", "pci:v00008086d000010EDsv*sd*bc*sc*i*");
    ptk_device(root, PF, IXGBE, "ixgbe");
    char total[16];
    snprintf(total, sizeof(total), "%d\n", n);
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_totalvfs", total);
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_numvfs", "0\n");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_drivers_autoprobe", "1\n");
    ptk_write(root, "devices/pci0000:00/" PF "/fake_vf_modalias", IXGBEVF);
    pcibind_ctx *ctx = context(root);
    char **vfs = NULL;
    if (pcibind_sriov_set_numvfs(ctx, PF, (unsigned)n, 0, &vfs) < 0) {
        fprintf(stderr, "sriov_set_numvfs: %s\n", pcibind_last_error_message());
        return 1;
    }
    pcibind_strv_free(vfs);
    pcibind_ctx_free(ctx);
    return 0;
}

struct vf_work {
    pcibind_ctx *ctx;
    const char *root;
    int by_hand; /* the minimal sequence instead of pcibind_bind() */
    char **vfs;
    atomic_int next;
    int n;
};

/* The minimal sequence for a parked VF: the override, a probe, the link read back. */
static int bind_vf_by_hand(const char *root, const char *vf)
{
    char path[PATH_MAX], target[PATH_MAX];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver_override", root, vf);
    write_file(path, "vfio-pci");
    snprintf(path, sizeof(path), "%s/bus/pci/drivers_probe", root);
    write_file(path, vf);
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", root, vf);
    return readlink(path, target, sizeof(target)) < 0 ? -1 : 0;
}

static void *bind_vfs(void *arg)
{
    struct vf_work *w = arg;
    for (int i; (i = atomic_fetch_add(&w->next, 1)) < w->n;) {
        if (w->by_hand) {
            if (bind_vf_by_hand(w->root, w->vfs[i]) < 0) {
                fprintf(stderr, "%s: not bound\n", w->vfs[i]);
                exit(1);
            }
        } else if (pcibind_bind(w->ctx, w->vfs[i], "vfio-pci", 0, NULL) < 0) {
            fprintf(stderr, "bind %s: %s\n", w->vfs[i], pcibind_last_error_message());
            exit(1);
        }
    }
    return NULL;
}

/* vfs, vfs-minimal: the PF's VFs to vfio-pci from `threads` threads on one context; the wall-clock time of
 * the whole, per VF. */
static int time_vfs(const char *root, int n, int threads, int by_hand)
{
    pcibind_ctx *ctx = context(root);
    struct vf_work w = {.ctx = ctx, .root = root, .by_hand = by_hand, .n = n};
    if (pcibind_sriov_vfs(ctx, PF, &w.vfs) < 0) {
        fprintf(stderr, "sriov_vfs: %s\n", pcibind_last_error_message());
        return 1;
    }
    int have = 0;
    while (w.vfs[have])
        have++;
    if (have != n || threads < 1 || threads > 64) {
        fprintf(stderr, "%d VFs, %d threads\n", have, threads);
        return 1;
    }
    pthread_t tid[64];
    double t0 = now_us();
    for (int t = 0; t < threads; t++)
        pthread_create(&tid[t], NULL, bind_vfs, &w);
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    double t1 = now_us();
    /* Every VF on vfio-pci, or the figure means nothing. */
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX], target[PATH_MAX];
        snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", root, w.vfs[i]);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        target[len > 0 ? len : 0] = '\0';
        if (len < 0 || strcmp(strrchr(target, '/') ? strrchr(target, '/') + 1 : "", "vfio-pci")) {
            fprintf(stderr, "%s is not on vfio-pci\n", w.vfs[i]);
            return 1;
        }
    }
    printf("%s %d %d %.1f\n", by_hand ? "minimal" : "pcibind_bind", n, threads, (t1 - t0) / n);
    pcibind_strv_free(w.vfs);
    pcibind_ctx_free(ctx);
    return 0;
}

/* `holders`: see the top of the file. */
static int time_holders(const char *root, int procs)
{
    base_tree(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
    const char *bdf = "0000:00:02.0";
    ptk_device(root, bdf, E1000E, "e1000e");
    ptk_iommu_group(root, 3, bdf);
    ptk_mkdirs(root, "dev/vfio/devices");
    ptk_mkdirs(root, "proc-empty");
    for (int p = 1; p <= procs; p++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "proc-many/%d/fd", 1000 + p);
        ptk_mkdirs(root, rel);
        snprintf(rel, sizeof(rel), "proc-many/%d/comm", 1000 + p);
        ptk_write(root, rel, "daemon\n");
        for (int fd = 0; fd < 32; fd++) {
            snprintf(rel, sizeof(rel), "proc-many/%d/fd/%d", 1000 + p, fd);
            ptk_symlink(root, rel, fd % 2 ? "/dev/null" : "socket:[12345]");
        }
    }
    pcibind_ctx *ctx = context(root);
    char dev[PATH_MAX], many[PATH_MAX], empty[PATH_MAX];
    snprintf(dev, sizeof(dev), "%s/dev", root);
    snprintf(many, sizeof(many), "%s/proc-many", root);
    snprintf(empty, sizeof(empty), "%s/proc-empty", root);
    if (pcibind_ctx_set_dev_root(ctx, dev) < 0)
        return 1;
    double t[3] = {0, 0, 0};
    const int rounds = 50;
    const char *roots[3] = {empty, many, "/proc"};
    for (int r = 0; r < rounds; r++) {
        for (int which = 0; which < 3; which++) {
            if (pcibind_ctx_set_proc_root(ctx, roots[which]) < 0 ||
                pcibind_bind(ctx, bdf, "vfio-pci", 0, NULL) < 0) {
                fprintf(stderr, "bind: %s\n", pcibind_last_error_message());
                return 1;
            }
            double t0 = now_us();
            if (pcibind_reattach(ctx, bdf, NULL, 0, NULL) < 0) {
                fprintf(stderr, "reattach: %s\n", pcibind_last_error_message());
                return 1;
            }
            t[which] += now_us() - t0;
        }
    }
    printf("%d %.1f %.1f %.1f\n", procs, t[1] / rounds, t[0] / rounds, t[2] / rounds);
    pcibind_ctx_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "holders")) {
        setenv("FAKE_SYSFS_ROOT", argv[2], 1);
        return time_holders(argv[2], atoi(argv[3]));
    }
    if (argc == 5 && (!strcmp(argv[1], "vfs") || !strcmp(argv[1], "vfs-minimal"))) {
        setenv("FAKE_SYSFS_ROOT", argv[2], 1);
        return time_vfs(argv[2], atoi(argv[3]), atoi(argv[4]), !strcmp(argv[1], "vfs-minimal"));
    }
    if (argc != 4) {
        fprintf(stderr, "usage: %s prepare|prepare-vfs|time|bind|minimal|none DIR N\n"
                        "       %s vfs|vfs-minimal DIR N THREADS\n", argv[0], argv[0]);
        return 2;
    }
    const char *mode = argv[1], *root = argv[2];
    int n = atoi(argv[3]);
    char bdf[32], path[PATH_MAX], target[PATH_MAX];
    setenv("FAKE_SYSFS_ROOT", root, 1);

    if (strcmp(mode, "prepare") == 0) {
        base_tree(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
        for (int i = 0; i < n; i++) {
            address_of(i, bdf, sizeof(bdf));
            ptk_device(root, bdf, E1000E, "e1000e");
        }
        return 0;
    }

    if (strcmp(mode, "prepare-vfs") == 0)
        return prepare_vfs(root, n);

    pcibind_ctx *ctx = context(root);
    if (strcmp(mode, "none") == 0) {
        pcibind_ctx_free(ctx);
        return 0;
    }
    if (strcmp(mode, "minimal") == 0) {
        for (int i = 0; i < n; i++) {
            address_of(i, bdf, sizeof(bdf));
            snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", root, bdf);
            if (readlink(path, target, sizeof(target)) < 0)
                return 1;
            snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver_override", root, bdf);
            write_file(path, "vfio-pci");
            snprintf(path, sizeof(path), "%s/bus/pci/drivers/e1000e/unbind", root);
            write_file(path, bdf);
            snprintf(path, sizeof(path), "%s/bus/pci/drivers_probe", root);
            write_file(path, bdf);
            snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", root, bdf);
            if (readlink(path, target, sizeof(target)) < 0)
                return 1;
        }
        pcibind_ctx_free(ctx);
        return 0;
    }

    if (strcmp(mode, "bind") == 0) {
        for (int i = 0; i < n; i++)
            bind_one(ctx, i, "vfio-pci");
        pcibind_ctx_free(ctx);
        return 0;
    }
    if (strcmp(mode, "time") != 0) {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    /* time: device by device, the four moves in a row, so load on the machine that comes and
     * goes falls on all four alike: host -> vfio-pci -> host driver by name -> vfio-pci ->
     * host (reattach with no name). */
    double vfio = 0, host = 0, reattach = 0;
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        bind_one(ctx, i, "vfio-pci");
        double t1 = now_us();
        bind_one(ctx, i, "e1000e");
        double t2 = now_us();
        bind_one(ctx, i, "vfio-pci");
        double t3 = now_us();
        address_of(i, bdf, sizeof(bdf));
        if (pcibind_reattach(ctx, bdf, NULL, 0, NULL) < 0) {
            fprintf(stderr, "reattach %s: %s\n", bdf, pcibind_last_error_message());
            return 1;
        }
        double t4 = now_us();
        vfio += (t1 - t0) + (t3 - t2);
        host += t2 - t1;
        reattach += t4 - t3;
    }
    printf("%d %.1f %.1f %.1f\n", n, vfio / (2 * n), host / n, reattach / n);
    pcibind_ctx_free(ctx);
    return 0;
}
