/* The fault matrix: for every step of the bind transaction (the override write, the unbind,
 * drivers_probe, the probe itself, each restore step) and every fault the kernel shim can inject
 * there (EIO, EBUSY, ENODEV, a probe that fails, the device vanishing), one bind through the C
 * API, and the invariant checked on the tree afterwards:
 *   - 0: the device is on the requested driver;
 *   - PCIBIND_ERR_BIND: it is on its original driver with its original driver_override;
 *   - PCIBIND_ERR_RESTORE: the message states the device's real state (or that it vanished);
 *   - a failure before any write (module load): nothing was written.
 * Each case also checks that its fault really fired, so no case passes by not testing anything.
 * Both directions run: a device on e1000e going to vfio-pci (with its original override unset
 * and set by someone else), and a device on vfio-pci (override "vfio-pci", as every device a
 * manager detached) going back to e1000e: vfio-pci binds only through the override, so a
 * restore that cleared it first would strand the device with no driver. */
#define _GNU_SOURCE
#include <stdint.h>
#include <unistd.h>

#include "testctx.h"

#define BDF "0000:02:00.0"
static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";

/* Where a case starts and where it binds to. */
struct start {
    const char *driver;   /* the original driver */
    const char *override; /* the original driver_override, NULL = unset */
    const char *target;
};

static const struct start STARTS[] = {
    {"e1000e", NULL, "vfio-pci"},
    {"e1000e", "e1000e", "vfio-pci"},
    {"vfio-pci", "vfio-pci", "e1000e"},
};

struct fault_case {
    const char *step;
    const char *fault; /* fault.table lines; %s is the errno name, ORIG the original driver,
                          TARGET the target driver */
    int only_when_override_differs; /* the last restore write happens only when the original
                                       override is not the original driver's name */
};

/* The transaction's writes, in order: driver_override := TARGET (1st), ORIG/unbind,
 * drivers_probe (1st), [TARGET's probe]; then on failure the restore: driver_override := ORIG
 * (2nd), drivers_probe (2nd), [ORIG's probe], driver_override := the original value (3rd;
 * only when that is not ORIG). A primary fault makes the restore run. */
static const struct fault_case CASES[] = {
    {"override write", "bus/pci/devices/" BDF "/driver_override %s 1", 0},
    {"unbind", "bus/pci/drivers/ORIG/unbind %s 1", 0},
    {"drivers_probe", "bus/pci/drivers_probe %s 1", 0},
    {"probe", "probe:TARGET %s 1", 0},
    {"restore: override := original driver",
     "probe:TARGET ENODEV 1\nbus/pci/devices/" BDF "/driver_override %s 1 1", 0},
    {"restore: drivers_probe", "probe:TARGET ENODEV 1\nbus/pci/drivers_probe %s 1 1", 0},
    {"restore: original driver's probe", "probe:TARGET ENODEV 1\nprobe:ORIG %s 1", 0},
    {"restore: override back",
     "probe:TARGET ENODEV 1\nbus/pci/devices/" BDF "/driver_override %s 1 2", 1},
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

static char *tree(const struct start *st)
{
    char *root = ptk_new();
    e1000e_and_vfio_pci(root);
    ptk_device(root, BDF, E1000E, st->driver);
    if (st->override) {
        char *line = NULL;
        CHECK(asprintf(&line, "%s\n", st->override) > 0);
        ptk_write(root, "devices/pci0000:00/" BDF "/driver_override", line);
        free(line);
    }
    return root;
}

/* The state description the library uses in its messages. */
static char *describe(const char *root)
{
    char *link = ptk_path(root, "devices/pci0000:00/" BDF "/driver");
    char target[4096];
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    free(link);
    char *driver = NULL;
    if (n > 0) {
        target[n] = '\0';
        driver = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
    }
    char *override = ptk_override(root, BDF);
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
    char *table = ptk_read(root, "fault.table");
    for (char *line = strtok(table, "\n"); line; line = strtok(NULL, "\n")) {
        const char *last = strrchr(line, ' ');
        if (!last || strcmp(last, " 0") != 0) {
            printf("#   fault did not fire: %s\n", line);
            harness_failed_now = 1;
        }
    }
    free(table);
}

static void check_invariant(const char *root, int rc, const struct start *st)
{
    const char *msg = pcibind_last_error_message();
    if (rc == PCIBIND_OK) {
        CHECK(ptk_is_bound_to(root, BDF, st->target));
    } else if (rc == PCIBIND_ERR_BIND) {
        CHECK(ptk_is_bound_to(root, BDF, st->driver));
        char *override = ptk_override(root, BDF);
        CHECK_STR(override, st->override ? st->override : "(null)");
        free(override);
        CHECK_CONTAINS(msg, "the device was restored");
    } else if (rc == PCIBIND_ERR_NO_DEVICE) {
        /* Only a device that is gone (SPEC 3.13). */
        char *dev = ptk_path(root, "bus/pci/devices/" BDF);
        CHECK(access(dev, F_OK) != 0);
        CHECK_CONTAINS(msg, "disappeared during the operation");
        free(dev);
    } else if (rc == PCIBIND_ERR_RESTORE) {
        char *dev = ptk_path(root, "bus/pci/devices/" BDF);
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

/* s with every ORIG and TARGET replaced by the start's drivers. */
static char *fill(const char *s, const struct start *st)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    CHECK(f != NULL);
    while (*s) {
        if (!strncmp(s, "ORIG", 4)) {
            fputs(st->driver, f);
            s += 4;
        } else if (!strncmp(s, "TARGET", 6)) {
            fputs(st->target, f);
            s += 6;
        } else {
            fputc(*s++, f);
        }
    }
    fclose(f);
    return out;
}

static void case_name(char *buf, size_t size, const char *step, const char *fault,
                      const struct start *st, int rc)
{
    snprintf(buf, size, "%s x %s, from %s (override %s) to %s -> %d", step, fault, st->driver,
             st->override ? st->override : "unset", st->target, rc);
}

static void run_case(const struct fault_case *c, const char *err, const struct start *st)
{
    char *root = tree(st);
    char *pattern = fill(c->fault, st);
    char *faults = NULL;
    CHECK(asprintf(&faults, pattern, err) > 0);
    ptk_fault(root, faults);
    pcibind_ctx *ctx = context(root);
    int rc = pcibind_bind(ctx, BDF, st->target, 0, NULL);
    if (rc == PCIBIND_OK) {
        printf("#   the fault did not make the bind fail\n");
        harness_failed_now = 1;
    }
    check_invariant(root, rc, st);
    expect_faults_fired(root);
    char name[256];
    case_name(name, sizeof(name), c->step, err, st, rc);
    report(name);
    pcibind_ctx_free(ctx);
    free(faults);
    free(pattern);
    ptk_destroy(root);
}

static void run_vanish(const struct start *st)
{
    char *root = tree(st);
    ptk_fault(root, "vanish:" BDF " after-unbind");
    pcibind_ctx *ctx = context(root);
    int rc = pcibind_bind(ctx, BDF, st->target, 0, NULL);
    /* Gone is not stranded (SPEC 3.13): no false PCIBIND_ERR_RESTORE. */
    CHECK(rc == PCIBIND_ERR_NO_DEVICE);
    CHECK(strstr(pcibind_last_error_message(), "disappeared during the operation") != NULL);
    check_invariant(root, rc, st);
    char name[256];
    case_name(name, sizeof(name), "unbind", "device vanishes", st, rc);
    report(name);
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

static void run_module_load(const struct start *st)
{
    char *root = tree(st);
    pcibind_ctx *ctx = context(root);
    /* Not registered, and modprobe fails to load it (an unknown name is NO_DRIVER instead). */
    ptk_modprobe_table(root, "broken_variant !modprobe: ERROR: could not insert 'broken_variant': "
                            "Operation not permitted");
    int rc = pcibind_bind(ctx, BDF, "broken_variant", 0, NULL);
    CHECK(rc == PCIBIND_ERR_MODULE_LOAD);
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
    CHECK(ptk_is_bound_to(root, BDF, st->driver));
    char name[256];
    case_name(name, sizeof(name), "module load", "modprobe fails", st, rc);
    report(name);
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

int main(void)
{
    int start = harness_start();
    if (start >= 0)
        return start;
    for (size_t s = 0; s < sizeof(STARTS) / sizeof(STARTS[0]); s++) {
        const struct start *st = &STARTS[s];
        int override_differs = !st->override || strcmp(st->override, st->driver) != 0;
        run_module_load(st);
        for (size_t c = 0; c < sizeof(CASES) / sizeof(CASES[0]); c++) {
            if (CASES[c].only_when_override_differs && !override_differs)
                continue;
            for (size_t e = 0; e < sizeof(ERRNOS) / sizeof(ERRNOS[0]); e++)
                run_case(&CASES[c], ERRNOS[e], st);
        }
        run_vanish(st);
    }
    printf("1..%d\n", cases_run);
    printf("# fault matrix: %d cases (steps x faults x starting points), %d passed, %d failed\n",
           cases_run, cases_run - cases_failed, cases_failed);
    return cases_failed ? 1 : 0;
}
