/* The guest suite: runs inside a real kernel booted by scripts/test-kernel under QEMU, through
 * the C API on the real /sys, asserting the real sysfs state after every step. Devices (see
 * KERNEL-VM.md): e1000e 0000:00:02.0 (its netdev eth0), virtio-net 00:03.0, nvme 00:04.0, ICH9
 * HDA 00:05.0, a root port 00:06.0 with an e1000e at 0000:01:00.0 behind it, pci-serial 00:07.0,
 * the ICH9 LPC/SATA/SMBus functions 00:1f.* unbound. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "../c-tests/harness.h"

#define NIC "0000:00:02.0"
#define NIC2 "0000:01:00.0"

static pcibind_ctx *ctx;
static char warnings[4096];

static void capture(void *u, int prio, const char *msg)
{
    (void)u;
    if (prio <= LOG_WARNING) {
        size_t n = strlen(warnings);
        snprintf(warnings + n, sizeof(warnings) - n, "%s\n", msg);
    }
}

/* The last component of the device's link `attr` (driver, iommu_group), or NULL. */
static char *link_of(const char *bdf, const char *attr)
{
    char path[PATH_MAX], target[PATH_MAX];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n <= 0)
        return NULL;
    target[n] = '\0';
    return strdup(strrchr(target, '/') + 1);
}

static char *driver_of(const char *bdf)
{
    return link_of(bdf, "driver");
}

static char *override_of(const char *bdf)
{
    char path[PATH_MAX], buf[256] = "";
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return strdup(buf);
}

#define CHECK_DRIVER(bdf, expected)                                                         \
    do {                                                                                    \
        char *d_ = driver_of(bdf);                                                          \
        CHECK_STR(d_, expected);                                                            \
        free(d_);                                                                           \
    } while (0)

#define CHECK_OVERRIDE(bdf, expected)                                                       \
    do {                                                                                    \
        char *o_ = override_of(bdf);                                                        \
        CHECK_STR(o_, expected);                                                            \
        free(o_);                                                                           \
    } while (0)

static int exists(const char *fmt, const char *arg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), fmt, arg);
    return access(path, F_OK) == 0;
}

static void write_sys(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY);
    if (fd >= 0) {
        ssize_t r = write(fd, value, strlen(value));
        (void)r;
        close(fd);
    }
}

static void expect_resolve(const char *name, const char *expected)
{
    char *out = NULL;
    CHECK_RC(pcibind_resolve_driver(ctx, name, 0, &out), PCIBIND_OK);
    CHECK_STR(out, expected);
    free(out);
}

static void resolve_every_bound_driver_in_both_spellings(void)
{
    DIR *d = opendir("/sys/bus/pci/devices");
    struct dirent *e;
    int seen = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *drv = driver_of(e->d_name);
        if (!drv)
            continue;
        seen++;
        expect_resolve(drv, drv);
        char *us = strdup(drv);
        for (char *p = us; *p; p++)
            if (*p == '-')
                *p = '_';
        expect_resolve(us, drv);
        printf("# %s: %s (also as %s)\n", e->d_name, drv, us);
        free(us);
        free(drv);
    }
    if (d)
        closedir(d);
    CHECK(seen >= 3);
}

static void module_names_of_loaded_and_builtin_drivers(void)
{
    expect_resolve("e1000e", "e1000e");
    /* Built-ins: only where the kernel shows a module entry with the link (6.12). */
    if (exists("/sys/module/%s/drivers", "8250_pci"))
        expect_resolve("8250_pci", "serial");
    else
        printf("# 8250_pci has no drivers/ link on this kernel\n");
    if (exists("/sys/module/%s/drivers", "pcieportdrv"))
        expect_resolve("pcieportdrv", "pcieport");
    else
        printf("# pcieportdrv has no drivers/ link on this kernel\n");
}

static void vfio_pci_loads_through_real_modprobe(void)
{
    CHECK(!exists("/sys/bus/pci/drivers/%s", "vfio-pci"));
    expect_resolve("vfio_pci", "vfio-pci");
    CHECK(exists("/sys/module/%s", "vfio_pci"));
    char *out = NULL;
    CHECK_RC(pcibind_resolve_driver(ctx, "no_such_module", 0, &out), PCIBIND_ERR_MODULE_LOAD);
    CHECK_CONTAINS(pcibind_last_error_message(), "no_such_module");
    CHECK_CONTAINS(pcibind_last_error_message(), "not found");
}

static void variant_choice_on_the_real_tables(void)
{
    char *m = NULL;
    CHECK_RC(pcibind_find_vfio_variant(ctx, NIC, &m), PCIBIND_OK);
    CHECK_STR(m, "vfio_pci");
    free(m);
    /* A modules dir adding a variant alias for the NIC whose module does not exist: bind with
     * no name falls back to vfio-pci with a warning. */
    pcibind_ctx *c2 = NULL;
    CHECK_RC(pcibind_ctx_new(NULL, 0, &c2), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe(c2, "/sbin/modprobe"), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modules_dir(c2, "/fake-modules"), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_lock_dir(c2, "/run/pcibind"), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_log_fn(c2, capture, NULL, LOG_WARNING), PCIBIND_OK);
    warnings[0] = '\0';
    CHECK_RC(pcibind_find_vfio_variant(c2, NIC, &m), PCIBIND_OK);
    CHECK_STR(m, "e1000e_vfio_missing");
    free(m);
    char *d = NULL;
    CHECK_RC(pcibind_bind(c2, NIC, NULL, 0, &d), PCIBIND_OK);
    CHECK_STR(d, "vfio-pci");
    free(d);
    CHECK_CONTAINS(warnings, "falling back to vfio-pci");
    CHECK_RC(pcibind_reattach(c2, NIC, NULL, 0, NULL), PCIBIND_OK);
    CHECK_DRIVER(NIC, "e1000e");
    pcibind_ctx_free(c2);
}

static char *group_of(const char *bdf)
{
    return link_of(bdf, "iommu_group");
}

static void nic_to_vfio_pci_and_back(void)
{
    CHECK(exists("/sys/bus/pci/devices/%s/net", NIC));
    char *d = NULL;
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, &d), PCIBIND_OK);
    CHECK_STR(d, "vfio-pci");
    free(d);
    CHECK_DRIVER(NIC, "vfio-pci");
    CHECK_OVERRIDE(NIC, "vfio-pci");
    CHECK(exists("/sys/bus/pci/devices/%s/vfio-dev", NIC));
    char *g = group_of(NIC);
    CHECK(g != NULL);
    if (g)
        CHECK(exists("/dev/vfio/%s", g));
    free(g);
    int vfio = -1;
    CHECK_RC(pcibind_is_vfio_bound(ctx, NIC, &vfio), PCIBIND_OK);
    CHECK(vfio == 1);
    d = NULL;
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, &d), PCIBIND_OK);
    CHECK_STR(d, "e1000e");
    free(d);
    CHECK_DRIVER(NIC, "e1000e");
    CHECK_OVERRIDE(NIC, "(null)");
    CHECK(exists("/sys/bus/pci/devices/%s/net", NIC));
}

static void claim_check_refuses_nvme_for_the_nic(void)
{
    CHECK_RC(pcibind_bind(ctx, NIC, "nvme", 0, NULL), PCIBIND_ERR_NOT_CLAIMED);
    CHECK_DRIVER(NIC, "e1000e");
    CHECK_OVERRIDE(NIC, "(null)");
}

static void real_refusal_rolls_back(void)
{
    write_sys("/sys/bus/pci/devices/" NIC "/driver_override", "e1000e");
    CHECK_RC(pcibind_bind(ctx, NIC, "serial", PCIBIND_BIND_FORCE, NULL), PCIBIND_ERR_BIND);
    printf("# %s\n", pcibind_last_error_message());
    CHECK_DRIVER(NIC, "e1000e");
    CHECK_OVERRIDE(NIC, "e1000e");
    write_sys("/sys/bus/pci/devices/" NIC "/driver_override", "\n");
}

static void in_use_nic_is_refused_unless_forced(void)
{
    CHECK(system("/bin/ip link set eth0 up && /bin/ip addr add 10.0.2.15/24 dev eth0") == 0);
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "eth0");
    CHECK_DRIVER(NIC, "e1000e");
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    CHECK_DRIVER(NIC, "vfio-pci");
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    CHECK_DRIVER(NIC, "e1000e");
}

static void iommu_groups(void)
{
    char *port = group_of("0000:00:06.0"), *nic2 = group_of(NIC2);
    CHECK(port && nic2 && strcmp(port, nic2) != 0);
    free(port);
    free(nic2);
    char **v = NULL;
    CHECK_RC(pcibind_iommu_group_members(ctx, "0000:00:1f.0", &v), PCIBIND_OK);
    int n = 0;
    for (char **p = v; p && *p; p++)
        n++;
    CHECK(n >= 3);
    pcibind_strv_free(v);
    int viable = -1;
    char *why = NULL;
    CHECK_RC(pcibind_iommu_group_viable(ctx, "0000:00:1f.0", 0, &viable, &why), PCIBIND_OK);
    printf("# ICH9 group: %d members, viable %d %s\n", n, viable, why ? why : "");
    free(why);
    why = NULL;
    CHECK_RC(pcibind_iommu_group_viable(ctx, NIC, 0, &viable, &why), PCIBIND_OK);
    CHECK(viable == 0);
    CHECK_CONTAINS(why, NIC " (bound to e1000e)");
    free(why);
}

static void unbind_stays_unbound(void)
{
    CHECK_RC(pcibind_unbind(ctx, NIC, 0), PCIBIND_OK);
    CHECK_DRIVER(NIC, NULL);
    write_sys("/sys/bus/pci/drivers_probe", NIC);
    CHECK_DRIVER(NIC, NULL);
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    CHECK_DRIVER(NIC, "e1000e");
}

static void *bind_thread(void *arg)
{
    return (void *)(intptr_t)pcibind_bind(ctx, arg, "vfio-pci", PCIBIND_BIND_FORCE, NULL);
}

static void two_nics_concurrently(void)
{
    pthread_t a, b;
    void *ra, *rb;
    pthread_create(&a, NULL, bind_thread, NIC);
    pthread_create(&b, NULL, bind_thread, NIC2);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    CHECK((intptr_t)ra == 0 && (intptr_t)rb == 0);
    CHECK_DRIVER(NIC, "vfio-pci");
    CHECK_DRIVER(NIC2, "vfio-pci");
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_reattach(ctx, NIC2, NULL, 0, NULL), PCIBIND_OK);
    pid_t pids[2];
    const char *nics[2] = {NIC, NIC2};
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(pcibind_bind(ctx, nics[i], "vfio-pci", PCIBIND_BIND_FORCE, NULL) == 0 ? 0 : 1);
    }
    for (int i = 0; i < 2; i++) {
        int st = -1;
        waitpid(pids[i], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK_DRIVER(NIC, "vfio-pci");
    CHECK_DRIVER(NIC2, "vfio-pci");
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_reattach(ctx, NIC2, NULL, 0, NULL), PCIBIND_OK);
    CHECK_DRIVER(NIC, "e1000e");
    CHECK_DRIVER(NIC2, "e1000e");
}

int main(void)
{
    CHECK_RC(pcibind_ctx_new(NULL, 0, &ctx), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, "/sbin/modprobe"), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_lock_dir(ctx, "/run/pcibind"), PCIBIND_OK);
    static const struct test_case cases[] = {
        TEST_CASE(resolve_every_bound_driver_in_both_spellings),
        TEST_CASE(module_names_of_loaded_and_builtin_drivers),
        TEST_CASE(vfio_pci_loads_through_real_modprobe),
        TEST_CASE(variant_choice_on_the_real_tables),
        TEST_CASE(nic_to_vfio_pci_and_back),
        TEST_CASE(claim_check_refuses_nvme_for_the_nic),
        TEST_CASE(real_refusal_rolls_back),
        TEST_CASE(in_use_nic_is_refused_unless_forced),
        TEST_CASE(iommu_groups),
        TEST_CASE(unbind_stays_unbound),
        TEST_CASE(two_nics_concurrently),
    };
    int rc = run_tests(cases, sizeof(cases) / sizeof(cases[0]));
    pcibind_ctx_free(ctx);
    return rc;
}
