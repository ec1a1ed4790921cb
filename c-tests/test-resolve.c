/* Driver-name resolution (SPEC 3.1) through the C API, on fake sysfs trees with a fake
 * modprobe: every step and fallback, the real module/driver name pairs, module-load failures,
 * bad input (which must never reach the file system or modprobe), and the log callback. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <pcibind-testkit.h>
#include "harness.h"

static char *root;
static pcibind_ctx *ctx;

/* A fresh tree and a context on it that loads modules with the fake modprobe. */
static void setup(void)
{
    root = ptk_new();
    CHECK_RC(pcibind_ctx_new(root, 0, &ctx), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, getenv("FAKE_MODPROBE")), PCIBIND_OK);
}

static void teardown(void)
{
    pcibind_ctx_free(ctx);
    ctx = NULL;
    ptk_destroy(root);
    root = NULL;
}

/* Resolves `name` and checks the answer (expected NULL = must fail with `rc`). */
static void expect_resolve(const char *name, const char *expected)
{
    char *driver = (char *)(uintptr_t)0x1; /* set to NULL on entry by the library */
    CHECK_RC(pcibind_resolve_driver(ctx, name, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, expected);
    pcibind_string_free(driver);
}

static void expect_failure(const char *name, int rc)
{
    char *driver = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_resolve_driver(ctx, name, 0, &driver), rc);
    CHECK(driver == NULL);
}

static void expect_modprobe_log(const char *expected)
{
    char *log = ptk_modprobe_log(root);
    CHECK_STR(log, expected);
    free(log);
}

static void step1_exact_driver_name(void)
{
    setup();
    ptk_loaded_driver(root, "vfio_pci", "vfio-pci");
    expect_resolve("vfio-pci", "vfio-pci");
    expect_modprobe_log("");
    teardown();
}

static void step2_underscored_driver_name(void)
{
    setup();
    ptk_loaded_driver(root, "mlx5_vfio_pci", "mlx5_vfio_pci");
    ptk_loaded_driver(root, "pds_vfio_pci", "pds_vfio_pci");
    expect_resolve("mlx5-vfio-pci", "mlx5_vfio_pci");
    expect_resolve("pds-vfio-pci", "pds_vfio_pci");
    expect_modprobe_log("");
    teardown();
}

static void step3_loaded_module_link(void)
{
    setup();
    ptk_loaded_driver(root, "vfio_pci", "vfio-pci");
    ptk_loaded_driver(root, "xe_vfio_pci", "xe-vfio-pci");
    ptk_loaded_driver(root, "qat_4xxx", "4xxx");
    ptk_loaded_driver(root, "xhci_pci", "xhci_hcd");
    expect_resolve("vfio_pci", "vfio-pci");
    expect_resolve("xe_vfio_pci", "xe-vfio-pci");
    expect_resolve("qat_4xxx", "4xxx");
    expect_resolve("qat-4xxx", "4xxx");
    expect_resolve("xhci_pci", "xhci_hcd");
    expect_modprobe_log(""); /* all loaded already */
    teardown();
}

static void step3_loads_the_module_with_exact_argv(void)
{
    setup();
    ptk_modprobe_table(root, "vfio_pci vfio-pci");
    ptk_modprobe_table(root, "xe_vfio_pci xe-vfio-pci");
    expect_resolve("vfio_pci", "vfio-pci");
    expect_resolve("xe-vfio-pci", "xe-vfio-pci"); /* loaded as its module name xe_vfio_pci */
    char *expected = NULL;
    const char *prog = getenv("FAKE_MODPROBE");
    CHECK(asprintf(&expected, "argc=3 [%s] [-b] [vfio_pci]\nargc=3 [%s] [-b] [xe_vfio_pci]\n",
                   prog, prog) > 0);
    expect_modprobe_log(expected);
    /* Loaded now: resolving again runs nothing. */
    expect_resolve("vfio_pci", "vfio-pci");
    expect_modprobe_log(expected);
    free(expected);
    teardown();
}

static void step3_prefers_the_driver_named_like_the_module(void)
{
    setup();
    /* Module foo_b registers pci:aaa and pci:foo-b; the name says foo_b. */
    ptk_loaded_driver(root, "foo_b", "aaa");
    ptk_loaded_driver(root, "foo_b", "foo-b");
    expect_resolve("foo_b", "foo-b");
    teardown();
}

static void step3_else_the_first_driver_in_name_order(void)
{
    setup();
    ptk_loaded_driver(root, "multi", "zeta");
    ptk_loaded_driver(root, "multi", "alpha");
    expect_resolve("multi", "alpha");
    teardown();
}

static void step3_ignores_a_link_to_an_unregistered_driver(void)
{
    setup();
    /* module/stale/drivers/pci:gone points at a driver that no longer exists. */
    ptk_module(root, "stale");
    ptk_mkdirs(root, "module/stale/drivers");
    ptk_symlink(root, "module/stale/drivers/pci:gone", "../../../bus/pci/drivers/gone");
    expect_failure("stale", PCIBIND_ERR_NO_DRIVER);
    CHECK_CONTAINS(pcibind_last_error_message(), "registers no PCI driver");
    teardown();
}

static void step3_ignores_drivers_of_other_buses(void)
{
    setup();
    ptk_module(root, "usbthing");
    ptk_mkdirs(root, "module/usbthing/drivers/usb:usbthing");
    expect_failure("usbthing", PCIBIND_ERR_NO_DRIVER);
    teardown();
}

static void step4_driver_whose_module_link_names_the_module(void)
{
    setup();
    /* intel_agp registers agpgart-intel, but module/intel_agp has no drivers/ directory. */
    ptk_driver_with_module_link_only(root, "intel_agp", "agpgart-intel");
    expect_resolve("intel_agp", "agpgart-intel");
    expect_resolve("intel-agp", "agpgart-intel");
    expect_modprobe_log("");
    teardown();
}

static void step4_builtin_named_like_the_module_612_style(void)
{
    setup();
    /* 6.12-style built-in with no drivers/ link: module/virtio_pci holds only `version`. */
    ptk_builtin_driver(root, "virtio-pci", "virtio_pci");
    expect_resolve("virtio_pci", "virtio-pci");
    expect_resolve("virtio-pci", "virtio-pci");
    expect_modprobe_log(""); /* the module exists, so nothing is loaded */
    teardown();
}

static void step4_builtin_without_module_dir_61_style(void)
{
    setup();
    /* 6.1-style built-in: no module/ entry at all; modprobe -b of a built-in succeeds and does
     * nothing, then the name fallback finds the driver. */
    ptk_builtin_driver(root, "virtio-pci", NULL);
    ptk_modprobe_table(root, "virtio_pci =");
    expect_resolve("virtio_pci", "virtio-pci");
    char *log = ptk_modprobe_log(root);
    CHECK_CONTAINS(log, "[-b] [virtio_pci]");
    free(log);
    teardown();
}

static void step4_builtin_found_even_when_modprobe_fails(void)
{
    setup();
    ptk_builtin_driver(root, "ehci-pci", NULL);
    ptk_modprobe_table(root, "ehci_pci !modprobe: FATAL: Module ehci_pci not found");
    expect_resolve("ehci_pci", "ehci-pci");
    teardown();
}

static void real_name_pairs_of_spec_section_1(void)
{
    setup();
    /* Loadable modules, loaded, with the drivers/pci:DRV link. */
    static const char *const loaded[][2] = {
        {"vfio_pci", "vfio-pci"},           {"mlx5_vfio_pci", "mlx5_vfio_pci"},
        {"pds_vfio_pci", "pds_vfio_pci"},   {"virtio_vfio_pci", "virtio_vfio_pci"},
        {"qat_vfio_pci", "qat_vfio_pci"},   {"xe_vfio_pci", "xe-vfio-pci"},
        {"hisi_acc_vfio_pci", "hisi_acc_vfio_pci"},
        {"nvgrace_gpu_vfio_pci", "nvgrace_gpu_vfio_pci"},
        {"qat_4xxx", "4xxx"},               {"xhci_pci", "xhci_hcd"},
        {"ehci_pci", "ehci-pci"},           {"intel_agp", "agpgart-intel"},
    };
    for (size_t i = 0; i < sizeof(loaded) / sizeof(loaded[0]); i++)
        ptk_loaded_driver(root, loaded[i][0], loaded[i][1]);
    /* Built-ins: 6.12 gives every one a module dir with the link; older kernels may not. */
    ptk_loaded_driver(root, "pcieportdrv", "pcieport");
    ptk_loaded_driver(root, "8250_pci", "serial");
    ptk_builtin_driver(root, "virtio-pci", "virtio_pci");

    static const char *const pairs[][2] = {
        {"vfio_pci", "vfio-pci"},         {"vfio-pci", "vfio-pci"},
        {"mlx5_vfio_pci", "mlx5_vfio_pci"}, {"mlx5-vfio-pci", "mlx5_vfio_pci"},
        {"pds_vfio_pci", "pds_vfio_pci"}, {"pds-vfio-pci", "pds_vfio_pci"},
        {"virtio_vfio_pci", "virtio_vfio_pci"}, {"virtio-vfio-pci", "virtio_vfio_pci"},
        {"qat_vfio_pci", "qat_vfio_pci"}, {"xe_vfio_pci", "xe-vfio-pci"},
        {"xe-vfio-pci", "xe-vfio-pci"},   {"hisi_acc_vfio_pci", "hisi_acc_vfio_pci"},
        {"nvgrace-gpu-vfio-pci", "nvgrace_gpu_vfio_pci"},
        {"qat_4xxx", "4xxx"},             {"4xxx", "4xxx"},
        {"xhci_pci", "xhci_hcd"},         {"xhci_hcd", "xhci_hcd"},
        {"ehci_pci", "ehci-pci"},         {"ehci-pci", "ehci-pci"},
        {"virtio_pci", "virtio-pci"},     {"virtio-pci", "virtio-pci"},
        {"8250_pci", "serial"},           {"serial", "serial"},
        {"pcieportdrv", "pcieport"},      {"pcieport", "pcieport"},
        {"intel_agp", "agpgart-intel"},   {"agpgart-intel", "agpgart-intel"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
        expect_resolve(pairs[i][0], pairs[i][1]);
    expect_modprobe_log("");
    teardown();
}

static void module_load_failure_carries_modprobe_stderr(void)
{
    setup();
    ptk_modprobe_table(root, "broken !modprobe: ERROR: could not insert 'broken': Operation not permitted");
    expect_failure("broken", PCIBIND_ERR_MODULE_LOAD);
    const char *msg = pcibind_last_error_message();
    CHECK_CONTAINS(msg, "could not insert 'broken': Operation not permitted");
    CHECK_CONTAINS(msg, "status 1");
    CHECK_CONTAINS(msg, "broken");
    teardown();
}

static void unknown_module_is_no_such_driver(void)
{
    setup();
    /* The fake modprobe answers a name outside its table as kmod does: "modprobe: FATAL: Module
     * no_such_mod not found in directory /lib/modules/...", exit 1. */
    expect_failure("no-such-mod", PCIBIND_ERR_NO_DRIVER);
    const char *msg = pcibind_last_error_message();
    CHECK_CONTAINS(msg, "no PCI driver or module is named 'no-such-mod'");
    char *where = ptk_path(root, "bus/pci/drivers");
    CHECK_CONTAINS(msg, where);
    free(where);
    CHECK_CONTAINS(msg, "-b no_such_mod exited with status 1: modprobe: FATAL: Module no_such_mod "
                        "not found in directory ");
    char *expected = NULL;
    CHECK(asprintf(&expected, "argc=3 [%s] [-b] [no_such_mod]\n", getenv("FAKE_MODPROBE")) > 0);
    expect_modprobe_log(expected);
    free(expected);
    teardown();
}

static void other_modprobe_failures_stay_module_load_errors(void)
{
    setup();
    /* Blacklisted, refused by the kernel, or "not found" for another module (a dependency):
     * the name exists, loading it failed. */
    ptk_modprobe_table(root, "blocked !modprobe: FATAL: Module blocked is blacklisted");
    ptk_modprobe_table(root, "needs_dep !modprobe: FATAL: Module dep_of_it not found in directory "
                            "/lib/modules/fake");
    ptk_modprobe_table(root, "quiet !");
    expect_failure("blocked", PCIBIND_ERR_MODULE_LOAD);
    CHECK_CONTAINS(pcibind_last_error_message(), "is blacklisted");
    expect_failure("needs_dep", PCIBIND_ERR_MODULE_LOAD);
    CHECK_CONTAINS(pcibind_last_error_message(), "Module dep_of_it not found");
    expect_failure("quiet", PCIBIND_ERR_MODULE_LOAD);
    CHECK_CONTAINS(pcibind_last_error_message(), "status 1 (no output)");
    teardown();
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* True once process `pid` has ended (a zombie no one reaps counts as ended). */
static int process_gone(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return kill(pid, 0) != 0;
    char stat[512] = "";
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *end = strrchr(stat, ')');
    return end && end[1] == ' ' && end[2] == 'Z';
}

static void hung_modprobe_is_killed_at_the_time_limit(void)
{
    setup();
    ptk_modprobe_table(root, "slowmod sleep=30");
    CHECK_RC(pcibind_ctx_set_modprobe_timeout(ctx, 500), PCIBIND_OK);
    double start = seconds_now();
    expect_failure("slowmod", PCIBIND_ERR_MODULE_LOAD);
    double took = seconds_now() - start;
    const char *msg = pcibind_last_error_message();
    CHECK_CONTAINS(msg, "-b slowmod timed out after 500ms and was killed");
    CHECK_CONTAINS(msg, "fake-modprobe: slowmod: hanging for 30 s");
    /* Near the limit: not the 30 s the fake modprobe (and the helper holding its stderr)
     * would take. */
    CHECK(took >= 0.5);
    CHECK(took < 5.0);
    if (took >= 5.0)
        printf("#   took %.1f s\n", took);
    /* Killed: modprobe and the helper it started. */
    char *pids = ptk_read(root, "modprobe.pids");
    CHECK(pids != NULL);
    int modprobe = 0, helper = 0;
    CHECK(pids && sscanf(pids, "%d %d", &modprobe, &helper) == 2);
    free(pids);
    for (int i = 0; i < 200 && !(process_gone(modprobe) && process_gone(helper)); i++)
        usleep(10000);
    CHECK(modprobe > 0 && process_gone(modprobe));
    CHECK(helper > 0 && process_gone(helper));
    teardown();
}

/* True while process `pid` is not reaped (a zombie included). */
static int process_exists(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d", pid);
    return access(path, F_OK) == 0;
}

/* SPEC 3.6: a loader that cannot die (in D state, a module init stuck in the kernel) is killed
 * at the limit and the call returns about a second later, without it; it is reaped when it
 * ends. The fake modprobe stands for D state with a zombie that its helper ptraces and so hides
 * from us for 5 s: as in D state, waitpid finds nothing to reap after the kill. The helper also
 * holds stderr open, so the call cannot wait for the pipe to close either. */
static void unreapable_modprobe_is_not_waited_for(void)
{
    setup();
    ptk_modprobe_table(root, "stuckmod unreapable=5");
    CHECK_RC(pcibind_ctx_set_modprobe_timeout(ctx, 500), PCIBIND_OK);
    double start = seconds_now();
    expect_failure("stuckmod", PCIBIND_ERR_MODULE_LOAD);
    double took = seconds_now() - start;
    const char *msg = pcibind_last_error_message();
    if (msg && strstr(msg, "cannot ptrace")) {
        printf("# skipped: the fake modprobe cannot stand for D state here: %s\n", msg);
        teardown();
        return;
    }
    CHECK_CONTAINS(msg, "-b stuckmod timed out after 500ms and did not exit when killed");
    CHECK_CONTAINS(msg, "fake-modprobe: stuckmod: stuck for 5 s");
    /* The limit and the second it is given to die, not the 5 s it stays unreaped. */
    CHECK(took >= 1.5);
    CHECK(took < 3.0);
    if (took >= 3.0)
        printf("#   took %.1f s\n", took);
    char *pids = ptk_read(root, "modprobe.pids");
    int modprobe = 0, helper = 0;
    CHECK(pids && sscanf(pids, "%d %d", &modprobe, &helper) == 2);
    free(pids);
    /* Killed (a zombie), not reaped yet: the call did not wait for it. */
    CHECK(modprobe > 0 && process_gone(modprobe));
    CHECK(modprobe > 0 && process_exists(modprobe));
    /* Reaped once the helper lets go: no zombie stays. */
    for (int i = 0; i < 1000 && modprobe > 0 && process_exists(modprobe); i++)
        usleep(10000);
    CHECK(modprobe > 0 && !process_exists(modprobe));
    teardown();
}

/* SPEC 3.14: modprobe inherits no descriptor of the caller's but its standard streams, even
 * ones the caller opened without O_CLOEXEC. */
static void modprobe_inherits_only_the_standard_streams(void)
{
    setup();
    ptk_modprobe_table(root, "fdsmod listfds");
    int fd = open("/dev/null", O_RDONLY);
    int high = fcntl(fd, F_DUPFD, 900);
    CHECK(fd > 2 && high >= 900);
    CHECK(!(fcntl(fd, F_GETFD) & FD_CLOEXEC) && !(fcntl(high, F_GETFD) & FD_CLOEXEC));
    expect_failure("fdsmod", PCIBIND_ERR_NO_DRIVER);
    char *fds = ptk_read(root, "modprobe.fds");
    CHECK_STR(fds, "0\n1\n2\n");
    free(fds);
    close(fd);
    close(high);
    teardown();
}

static void none_is_the_no_driver_override_and_never_loaded(void)
{
    setup();
    /* Were `none` looked up as a module, this table would make it resolve. */
    ptk_modprobe_table(root, "none none");
    expect_failure("none", PCIBIND_ERR_NO_DRIVER);
    CHECK_CONTAINS(pcibind_last_error_message(),
                   "'none' is the driver_override value that keeps a device on no driver");
    expect_modprobe_log("");
    teardown();
}

static void loaded_module_without_pci_driver(void)
{
    setup();
    ptk_modprobe_table(root, "nopci -");
    expect_failure("nopci", PCIBIND_ERR_NO_DRIVER);
    char *where = ptk_path(root, "module/nopci/drivers");
    CHECK_CONTAINS(pcibind_last_error_message(),
                   "module 'nopci' was loaded but registers no PCI driver (looked in");
    CHECK_CONTAINS(pcibind_last_error_message(), where);
    free(where);
    teardown();
}

static void already_loaded_module_without_pci_driver(void)
{
    setup();
    ptk_module(root, "kvm");
    expect_failure("kvm", PCIBIND_ERR_NO_DRIVER);
    CHECK_CONTAINS(pcibind_last_error_message(), "module 'kvm' is loaded but registers no PCI driver");
    expect_modprobe_log("");
    teardown();
}

static void modprobe_disabled_never_runs(void)
{
    setup();
    ptk_modprobe_table(root, "vfio_pci vfio-pci");
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, NULL), PCIBIND_OK);
    expect_failure("vfio_pci", PCIBIND_ERR_NO_DRIVER);
    CHECK_CONTAINS(pcibind_last_error_message(), "module loading is disabled");
    expect_modprobe_log("");
    /* A registered driver still resolves without loading anything. */
    ptk_loaded_driver(root, "vfio_pci", "vfio-pci");
    expect_resolve("vfio_pci", "vfio-pci");
    teardown();
}

static void missing_modprobe_program(void)
{
    setup();
    char *prog = ptk_path(root, "no-such-modprobe");
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, prog), PCIBIND_OK);
    expect_failure("vfio_pci", PCIBIND_ERR_MODULE_LOAD);
    CHECK_CONTAINS(pcibind_last_error_message(), "cannot run");
    free(prog);
    teardown();
}

static void bad_names_are_rejected_before_any_file_or_modprobe(void)
{
    setup();
    /* Make every bad name's "clean" neighbour resolvable, so a leak would show. */
    ptk_loaded_driver(root, "vfio_pci", "vfio-pci");
    ptk_modprobe_table(root, "r vfio-pci");
    static const char *const bad[] = {
        "",
        "-r",
        "--help",
        ".vfio-pci",
        "..",
        "../vfio-pci",
        "vfio-pci/..",
        "a..b",
        "/etc/passwd",
        "vfio-pci/",
        "vfio pci",
        "vfio-pci\n",
        "\tvfio-pci",
        "vfio\x01pci",
        "vfio\x7fpci",
        "vfio-pci;reboot",
        "$(reboot)",
        "vfio*",
        "\xff\xfe",
        "caf\xc3\xa9",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_failure(bad[i], PCIBIND_ERR_INVALID_ARG);
        if (pcibind_last_error_message()[0] == '\0') {
            printf("#   no message for bad name #%zu\n", i);
            harness_failed_now = 1;
        }
    }
    expect_modprobe_log("");
    /* 64 bytes is the longest accepted name. */
    ptk_loaded_driver(root, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                      "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    expect_resolve("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                   "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    teardown();
}

static void null_arguments_and_flags(void)
{
    setup();
    ptk_loaded_driver(root, "vfio_pci", "vfio-pci");
    char *driver = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_resolve_driver(NULL, "vfio-pci", 0, &driver), PCIBIND_ERR_INVALID_ARG);
    CHECK(driver == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "ctx is NULL");
    driver = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_resolve_driver(ctx, NULL, 0, &driver), PCIBIND_ERR_INVALID_ARG);
    CHECK(driver == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "name is NULL");
    CHECK_RC(pcibind_resolve_driver(ctx, "vfio-pci", 0, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_CONTAINS(pcibind_last_error_message(), "driver_out is NULL");
    driver = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_resolve_driver(ctx, "vfio-pci", 1, &driver), PCIBIND_ERR_INVALID_ARG);
    CHECK(driver == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "flag");
    CHECK_RC(pcibind_resolve_driver(ctx, "vfio-pci", 0x80000000u, &driver), PCIBIND_ERR_INVALID_ARG);
    teardown();
}

static void returned_strings_are_malloced(void)
{
    setup();
    ptk_loaded_driver(root, "vfio_pci", "vfio-pci");
    char *driver = NULL;
    CHECK_RC(pcibind_resolve_driver(ctx, "vfio_pci", 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "vfio-pci");
    free(driver); /* plain free() must work (valgrind checks the pairing) */
    teardown();
}

struct log_capture {
    int count;
    int worst;
    char text[4096];
};

static void capture_log(void *userdata, int priority, const char *message)
{
    struct log_capture *cap = userdata;
    cap->count++;
    if (priority > cap->worst)
        cap->worst = priority;
    size_t len = strlen(cap->text);
    snprintf(cap->text + len, sizeof(cap->text) - len, "<%d>%s\n", priority, message);
}

static void log_callback_delivery_and_filtering(void)
{
    setup();
    ptk_modprobe_table(root, "vfio_pci vfio-pci");
    ptk_modprobe_table(root, "broken !boom");
    struct log_capture cap = {0};

    CHECK_RC(pcibind_ctx_set_log_fn(ctx, capture_log, &cap, LOG_DEBUG), PCIBIND_OK);
    expect_resolve("vfio_pci", "vfio-pci");
    CHECK(cap.count > 0);
    CHECK_CONTAINS(cap.text, "<6>loading module 'vfio_pci'");
    CHECK_CONTAINS(cap.text, "<7>module 'vfio_pci' registers PCI driver 'vfio-pci'");

    /* At LOG_WARNING, the debug and info lines stay out and the warning comes through. */
    memset(&cap, 0, sizeof(cap));
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, capture_log, &cap, LOG_WARNING), PCIBIND_OK);
    expect_resolve("vfio-pci", "vfio-pci");
    CHECK(cap.count == 0);
    expect_failure("broken", PCIBIND_ERR_MODULE_LOAD);
    CHECK(cap.count == 1);
    CHECK(cap.worst == LOG_WARNING);
    CHECK_CONTAINS(cap.text, "boom");

    /* NULL silences. */
    memset(&cap, 0, sizeof(cap));
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, NULL, NULL, LOG_DEBUG), PCIBIND_OK);
    expect_failure("broken", PCIBIND_ERR_MODULE_LOAD);
    CHECK(cap.count == 0);

    CHECK_RC(pcibind_ctx_set_log_fn(ctx, capture_log, &cap, 8), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, capture_log, &cap, -1), PCIBIND_ERR_INVALID_ARG);
    teardown();
}

static void no_driver_message_names_what_and_where(void)
{
    setup();
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, NULL), PCIBIND_OK);
    expect_failure("foo-bar", PCIBIND_ERR_NO_DRIVER);
    char *where = ptk_path(root, "bus/pci/drivers");
    CHECK_CONTAINS(pcibind_last_error_message(), "no PCI driver 'foo-bar' in ");
    CHECK_CONTAINS(pcibind_last_error_message(), where);
    CHECK_CONTAINS(pcibind_last_error_message(), "module 'foo_bar' is not loaded");
    free(where);
    teardown();
}

RUN_TESTS(TEST_CASE(step1_exact_driver_name), TEST_CASE(step2_underscored_driver_name),
          TEST_CASE(step3_loaded_module_link), TEST_CASE(step3_loads_the_module_with_exact_argv),
          TEST_CASE(step3_prefers_the_driver_named_like_the_module),
          TEST_CASE(step3_else_the_first_driver_in_name_order),
          TEST_CASE(step3_ignores_a_link_to_an_unregistered_driver),
          TEST_CASE(step3_ignores_drivers_of_other_buses),
          TEST_CASE(step4_driver_whose_module_link_names_the_module),
          TEST_CASE(step4_builtin_named_like_the_module_612_style),
          TEST_CASE(step4_builtin_without_module_dir_61_style),
          TEST_CASE(step4_builtin_found_even_when_modprobe_fails),
          TEST_CASE(real_name_pairs_of_spec_section_1),
          TEST_CASE(module_load_failure_carries_modprobe_stderr),
          TEST_CASE(unknown_module_is_no_such_driver),
          TEST_CASE(other_modprobe_failures_stay_module_load_errors),
          TEST_CASE(hung_modprobe_is_killed_at_the_time_limit),
          TEST_CASE(unreapable_modprobe_is_not_waited_for),
          TEST_CASE(modprobe_inherits_only_the_standard_streams),
          TEST_CASE(none_is_the_no_driver_override_and_never_loaded),
          TEST_CASE(loaded_module_without_pci_driver),
          TEST_CASE(already_loaded_module_without_pci_driver),
          TEST_CASE(modprobe_disabled_never_runs), TEST_CASE(missing_modprobe_program),
          TEST_CASE(bad_names_are_rejected_before_any_file_or_modprobe),
          TEST_CASE(null_arguments_and_flags), TEST_CASE(returned_strings_are_malloced),
          TEST_CASE(log_callback_delivery_and_filtering),
          TEST_CASE(no_driver_message_names_what_and_where))
