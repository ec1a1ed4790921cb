/* Read-only checks against this machine's real /sys: the driver of a real bound device
 * resolves from its driver name and from its module-style (`_`) spelling. Module loading is
 * disabled, so nothing on the host changes. Exits 77 (skip) when no PCI device is bound. */
#define _GNU_SOURCE
#include <dirent.h>
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
                                             TEST_CASE(real_devices_get_a_vfio_module)};
    int rc = run_tests(cases, sizeof(cases) / sizeof(cases[0]));
    free(real_driver);
    return rc;
}
