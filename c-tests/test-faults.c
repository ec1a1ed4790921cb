/* The fault matrix: for every step of the bind transaction (the override write, the unbind,
 * drivers_probe, the probe itself, each restore step) and every fault the kernel shim can inject
 * there (EIO, EBUSY, ENODEV, a probe that fails, the device vanishing), one bind through the C
 * API, and the invariant checked on the tree afterwards:
 *   - 0: the device is on the requested driver;
 *   - PCIBIND_ERR_BIND: it is on its original driver with its original driver_override;
 *   - PCIBIND_ERR_RESTORE: the message states the device's real state (or that it vanished);
 *   - a failure before any write (module load): nothing was written.
 * Each case also checks that its fault really fired, so no case passes by not testing anything.
 * Every case runs with the original override unset and with it set by someone else. */
#define _GNU_SOURCE
#include <stdint.h>
#include <unistd.h>

#include "testctx.h"

#define BDF "0000:02:00.0"
static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";

struct fault_case {
    const char *step;
    const char *fault;     /* fault.table line; %s is replaced by the errno name */
    int needs_override;    /* only meaningful when the original override is set */
    const char *name;      /* bind target */
};

/* The transaction's writes, in order, for a device on e1000e going to vfio-pci:
 * driver_override (1st), e1000e/unbind, drivers_probe, [vfio-pci's probe], then on failure:
 * driver_override (2nd: clear), e1000e/bind [e1000e's probe], driver_override (3rd: the
 * original value back, only when there was one). A primary fault makes the restore run. */
static const struct fault_case CASES[] = {
    {"override write", "bus/pci/devices/" BDF "/driver_override %s 1", 0, "vfio-pci"},
    {"unbind", "bus/pci/drivers/e1000e/unbind %s 1", 0, "vfio-pci"},
    {"drivers_probe", "bus/pci/drivers_probe %s 1", 0, "vfio-pci"},
    {"probe", "probe:vfio-pci %s 1", 0, "vfio-pci"},
    {"restore: clear override", "probe:vfio-pci ENODEV 1\nbus/pci/devices/" BDF "/driver_override %s 1 1", 0, "vfio-pci"},
    {"restore: rebind", "probe:vfio-pci ENODEV 1\nbus/pci/drivers/e1000e/bind %s 1", 0, "vfio-pci"},
    {"restore: rebind probe", "probe:vfio-pci ENODEV 1\nprobe:e1000e %s 1", 0, "vfio-pci"},
    {"restore: override back", "probe:vfio-pci ENODEV 1\nbus/pci/devices/" BDF "/driver_override %s 1 2", 1, "vfio-pci"},
};
static const char *const ERRNOS[] = {"EIO", "EBUSY", "ENODEV"};

static int cases_run, cases_failed;

static void report(const char *name)
{
    cases_run++;
    cases_failed += harness_failed_now;
    printf("%sok %d - %s\n", harness_failed_now ? "not " : "", cases_run, name);
    harness_failed_now = 0;
}

static pcibind_ctx *context(const char *root)
{
    return test_context(root, root, getenv("FAKE_MODPROBE"), NULL);
}

static char *tree(const char *original_override)
{
    char *root = fs_new();
    e1000e_and_vfio_pci(root);
    fs_device(root, BDF, E1000E, "e1000e");
    if (original_override) {
        char *line = NULL;
        CHECK(asprintf(&line, "%s\n", original_override) > 0);
        fs_write(root, "devices/pci0000:00/" BDF "/driver_override", line);
        free(line);
    }
    return root;
}

/* The state description the library uses in its messages. */
static char *describe(const char *root)
{
    char *link = fs_path(root, "devices/pci0000:00/" BDF "/driver");
    char target[4096];
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    free(link);
    char *driver = NULL;
    if (n > 0) {
        target[n] = '\0';
        driver = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
    }
    char *override = fs_override(root, BDF);
    char *out = NULL;
    int unset = !override || !strcmp(override, "(null)");
    CHECK(asprintf(&out, "bound to %s, driver_override %s%s%s", driver ? driver : "no driver",
                   unset ? "unset" : "'", unset ? "" : override, unset ? "" : "'") > 0);
    free(override);
    return out;
}

/* Every armed line of fault.table must have fired (its count is down to 0). */
static void expect_faults_fired(const char *root)
{
    char *table = fs_read(root, "fault.table");
    for (char *line = strtok(table, "\n"); line; line = strtok(NULL, "\n")) {
        const char *last = strrchr(line, ' ');
        if (!last || strcmp(last, " 0") != 0) {
            printf("#   fault did not fire: %s\n", line);
            harness_failed_now = 1;
        }
    }
    free(table);
}

static void check_invariant(const char *root, int rc, const char *original_override)
{
    const char *msg = pcibind_last_error_message();
    if (rc == PCIBIND_OK) {
        CHECK(fs_is_bound_to(root, BDF, "vfio-pci"));
    } else if (rc == PCIBIND_ERR_BIND) {
        CHECK(fs_is_bound_to(root, BDF, "e1000e"));
        char *override = fs_override(root, BDF);
        CHECK_STR(override, original_override ? original_override : "(null)");
        free(override);
        CHECK_CONTAINS(msg, "the device was restored");
    } else if (rc == PCIBIND_ERR_RESTORE) {
        char *dev = fs_path(root, "bus/pci/devices/" BDF);
        if (access(dev, F_OK) != 0) {
            CHECK_CONTAINS(msg, "disappeared");
        } else {
            char *state = describe(root);
            char *expected = NULL;
            CHECK(asprintf(&expected, "the device is now %s", state) > 0);
            CHECK_CONTAINS(msg, expected);
            free(expected);
            free(state);
        }
        free(dev);
    } else {
        printf("#   unexpected rc %d: %s\n", rc, msg);
        harness_failed_now = 1;
    }
}

static void run_case(const struct fault_case *c, const char *err, const char *original_override)
{
    char *root = tree(original_override);
    char *faults = NULL;
    CHECK(asprintf(&faults, c->fault, err) > 0);
    fs_fault(root, faults);
    pcibind_ctx *ctx = context(root);
    int rc = pcibind_bind(ctx, BDF, c->name, 0, NULL);
    if (rc == PCIBIND_OK) {
        printf("#   the fault did not make the bind fail\n");
        harness_failed_now = 1;
    }
    check_invariant(root, rc, original_override);
    expect_faults_fired(root);
    char name[256];
    snprintf(name, sizeof(name), "%s x %s, original override %s -> %d", c->step, err,
             original_override ? original_override : "unset", rc);
    report(name);
    pcibind_ctx_free(ctx);
    free(faults);
    fs_destroy(root);
}

static void run_vanish(const char *original_override)
{
    char *root = tree(original_override);
    fs_fault(root, "vanish:" BDF " after-unbind");
    pcibind_ctx *ctx = context(root);
    int rc = pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL);
    CHECK(rc == PCIBIND_ERR_RESTORE);
    check_invariant(root, rc, original_override);
    char name[256];
    snprintf(name, sizeof(name), "unbind x device vanishes, original override %s -> %d",
             original_override ? original_override : "unset", rc);
    report(name);
    pcibind_ctx_free(ctx);
    fs_destroy(root);
}

static void run_module_load(const char *original_override)
{
    char *root = tree(original_override);
    pcibind_ctx *ctx = context(root);
    /* Not registered, and modprobe fails to load it (an unknown name is NO_DRIVER instead). */
    fs_modprobe_table(root, "broken_variant !modprobe: ERROR: could not insert 'broken_variant': "
                            "Operation not permitted");
    int rc = pcibind_bind(ctx, BDF, "broken_variant", 0, NULL);
    CHECK(rc == PCIBIND_ERR_MODULE_LOAD);
    char *log = fs_write_log(root);
    CHECK_STR(log, "");
    free(log);
    CHECK(fs_is_bound_to(root, BDF, "e1000e"));
    char name[256];
    snprintf(name, sizeof(name), "module load x modprobe fails, original override %s -> %d",
             original_override ? original_override : "unset", rc);
    report(name);
    pcibind_ctx_free(ctx);
    fs_destroy(root);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const char *const overrides[] = {NULL, "e1000e"};
    for (size_t o = 0; o < 2; o++) {
        run_module_load(overrides[o]);
        for (size_t c = 0; c < sizeof(CASES) / sizeof(CASES[0]); c++) {
            if (CASES[c].needs_override && !overrides[o])
                continue;
            for (size_t e = 0; e < sizeof(ERRNOS) / sizeof(ERRNOS[0]); e++)
                run_case(&CASES[c], ERRNOS[e], overrides[o]);
        }
        run_vanish(overrides[o]);
    }
    printf("1..%d\n", cases_run);
    printf("# fault matrix: %d cases (steps x faults x original override), %d passed, %d failed\n",
           cases_run, cases_run - cases_failed, cases_failed);
    return cases_failed ? 1 : 0;
}
