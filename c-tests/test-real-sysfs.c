/* Read-only checks against this machine's real /sys: the driver of a real bound device
 * resolves from its driver name and from its module-style (`_`) spelling; a PCI NIC carrying
 * an IPv4 route, when the machine has one, is reported in use. Module loading is disabled and
 * only queries and dry runs are made, so nothing on the host changes. Exits 77 (skip) when no
 * PCI device is bound. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <limits.h>
#include <unistd.h>

#include "harness.h"

static char *first_bound_driver(void)
{
    DIR *d = opendir("/sys/bus/pci/devices");
    if (!d)
        return NULL;
    char *found = NULL;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char link[PATH_MAX], target[PATH_MAX];
        snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/driver", e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        char *base = strrchr(target, '/');
        found = strdup(base ? base + 1 : target);
    }
    closedir(d);
    return found;
}

static char *real_driver;

static void real_driver_resolves_in_both_spellings(void)
{
    pcibind_ctx *ctx = NULL;
    CHECK_RC(pcibind_ctx_new("/sys", 0, &ctx), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, NULL), PCIBIND_OK);

    char *underscored = strdup(real_driver);
    for (char *p = underscored; *p; p++)
        if (*p == '-')
            *p = '_';
    char *dashed = strdup(real_driver);
    for (char *p = dashed; *p; p++)
        if (*p == '_')
            *p = '-';
    const char *spellings[] = {real_driver, underscored, dashed};
    for (size_t i = 0; i < 3; i++) {
        char *out = NULL;
        int rc = pcibind_resolve_driver(ctx, spellings[i], 0, &out);
        printf("# %s -> %s (%d)\n", spellings[i], out ? out : "(none)", rc);
        CHECK_RC(rc, PCIBIND_OK);
        CHECK_STR(out, real_driver);
        free(out);
    }
    free(underscored);
    free(dashed);
    pcibind_ctx_free(ctx);
}

static void real_devices_report_their_driver(void)
{
    pcibind_ctx *ctx = NULL;
    CHECK_RC(pcibind_ctx_new(NULL, 0, &ctx), PCIBIND_OK);
    DIR *d = opendir("/sys/bus/pci/devices");
    CHECK(d != NULL);
    struct dirent *e;
    int seen = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *driver = NULL;
        CHECK_RC(pcibind_current_driver(ctx, e->d_name, &driver), PCIBIND_OK);
        seen += driver != NULL;
        free(driver);
    }
    if (d)
        closedir(d);
    CHECK(seen > 0);
    pcibind_ctx_free(ctx);
}

static void real_devices_get_a_vfio_module(void)
{
    pcibind_ctx *ctx = NULL;
    CHECK_RC(pcibind_ctx_new(NULL, 0, &ctx), PCIBIND_OK);
    /* The default tables of the running kernel, or (this CI machine has none) the fallback. */
    DIR *d = opendir("/sys/bus/pci/devices");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *module = NULL;
        CHECK_RC(pcibind_find_vfio_variant(ctx, e->d_name, &module), PCIBIND_OK);
        CHECK(module != NULL && strstr(module, "vfio") != NULL);
        printf("# %s -> %s\n", e->d_name, module ? module : "(NULL)");
        free(module);
    }
    if (d)
        closedir(d);
    pcibind_ctx_free(ctx);
}

/* A PCI device with an interface that is up and has a route in /proc/net/route, the interface
 * possibly below a child device (virtio-net's is BDF/virtioN/net/IF): its address into `bdf`
 * and the interface's name into `ifname`. 0 when this machine has none. */
static int find_routed_pci_nic(char bdf[16], char ifname[64])
{
    FILE *routes = fopen("/proc/net/route", "r");
    if (!routes)
        return 0;
    char line[512];
    int found = 0;
    int header = 1;
    while (!found && fgets(line, sizeof(line), routes)) {
        if (header) {
            header = 0;
            continue;
        }
        if (sscanf(line, "%63s", ifname) != 1)
            continue;
        char link[PATH_MAX], path[PATH_MAX];
        snprintf(link, sizeof(link), "/sys/class/net/%s", ifname);
        if (!realpath(link, path) || strncmp(path, "/sys/devices/pci", 16) != 0)
            continue;
        snprintf(link, sizeof(link), "/sys/class/net/%s/flags", ifname);
        FILE *f = fopen(link, "r");
        unsigned flags = 0;
        if (f) {
            if (fscanf(f, "%x", &flags) != 1)
                flags = 0;
            fclose(f);
        }
        if (!(flags & 1))
            continue;
        /* The device is the last component above the interface that is a PCI address. */
        char *net = strstr(path, "/net/");
        if (net)
            *net = '\0';
        for (char *c = strtok(path, "/"); c; c = strtok(NULL, "/")) {
            unsigned d, b, s, fn;
            char end;
            if (strlen(c) == 12 && sscanf(c, "%4x:%2x:%2x.%1x%c", &d, &b, &s, &fn, &end) == 4) {
                snprintf(bdf, 16, "%s", c);
                found = 1;
            }
        }
    }
    fclose(routes);
    return found;
}

/* A registered PCI driver other than `current`, or NULL; the caller frees it. */
static char *another_registered_driver(const char *current)
{
    DIR *d = opendir("/sys/bus/pci/drivers");
    char *found = NULL;
    struct dirent *e;
    while (d && !found && (e = readdir(d)))
        if (e->d_name[0] != '.' && (!current || strcmp(e->d_name, current) != 0))
            found = strdup(e->d_name);
    if (d)
        closedir(d);
    return found;
}

static void routed_pci_nic_is_in_use(void)
{
    char bdf[16], ifname[64];
    if (!find_routed_pci_nic(bdf, ifname)) {
        printf("# no PCI network interface with an IPv4 route here: nothing to check\n");
        return;
    }
    pcibind_ctx *ctx = NULL;
    CHECK_RC(pcibind_ctx_new(NULL, 0, &ctx), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, NULL), PCIBIND_OK);
    char *current = NULL;
    CHECK_RC(pcibind_current_driver(ctx, bdf, &current), PCIBIND_OK);
    char *target = another_registered_driver(current);
    printf("# %s (%s, driver %s): dry run of a move to %s\n", bdf, ifname,
           current ? current : "(none)", target ? target : "(none)");
    if (target) {
        /* A dry run: the safety checks run, nothing is written or loaded. */
        char *plan = (char *)(uintptr_t)0x1;
        CHECK_RC(pcibind_bind_plan(ctx, bdf, target, 0, &plan), PCIBIND_ERR_IN_USE);
        CHECK(plan == NULL);
        char expected[128];
        snprintf(expected, sizeof(expected), "network interface %s ", ifname);
        CHECK_CONTAINS(pcibind_last_error_message(), expected);
        printf("# %s\n", pcibind_last_error_message());
    }
    free(target);
    free(current);
    pcibind_ctx_free(ctx);
}

int main(void)
{
    real_driver = first_bound_driver();
    if (!real_driver) {
        printf("1..0 # SKIP no bound PCI device in /sys/bus/pci\n");
        return 77;
    }
    printf("# real driver: %s\n", real_driver);
    static const struct test_case cases[] = {TEST_CASE(real_driver_resolves_in_both_spellings),
                                             TEST_CASE(real_devices_report_their_driver),
                                             TEST_CASE(real_devices_get_a_vfio_module),
                                             TEST_CASE(routed_pci_nic_is_in_use)};
    int rc = run_tests(cases, sizeof(cases) / sizeof(cases[0]));
    free(real_driver);
    return rc;
}
