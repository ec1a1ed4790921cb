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
 *
 * bench/bind.sh runs all of it for N = 256, 1024, 4096 and prints the table. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pcibind-testkit.h>
#include "pcibind.h"

static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";

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

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s prepare|time|bind|minimal|none DIR N\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1], *root = argv[2];
    int n = atoi(argv[3]);
    char bdf[32], path[PATH_MAX], target[PATH_MAX];
    setenv("FAKE_SYSFS_ROOT", root, 1);

    if (strcmp(mode, "prepare") == 0) {
        ptk_init(root);
        ptk_mkdirs(root, "locks");
        ptk_mkdirs(root, "proc");
        ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
        ptk_loaded_driver(root, "e1000e", "e1000e");
        ptk_driver_ids(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
        for (int i = 0; i < n; i++) {
            address_of(i, bdf, sizeof(bdf));
            ptk_device(root, bdf, E1000E, "e1000e");
        }
        return 0;
    }

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
