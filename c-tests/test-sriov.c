/* SR-IOV virtual functions (SPEC 3.10) through the C API, with the kernel shim preloaded: an
 * 82599 PF on ixgbe (First VF Offset 0x80, VF Stride 2, as the real one), whose VFs ixgbevf
 * matches by its ID table, one scenario per rule. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/file.h>
#include <unistd.h>

#include "testctx.h"

#define PF "0000:03:00.0"
#define VF0 "0000:03:10.0"
#define VF1 "0000:03:10.2"
#define VF2 "0000:03:10.4"
#define NIC "0000:02:00.0"

static const char *const PF_ID = "pci:v00008086d000010FBsv00008086sd00000003bc02sc00i00";
static const char *const VF_ID = "pci:v00008086d000010EDsv00008086sd00000003bc02sc00i00";
static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";

static char *root;
static pcibind_ctx *ctx;

static void setup(void)
{
    root = ptk_new();
    e1000e_and_vfio_pci(root);
    ptk_write(root, "lib-modules/modules.alias",
              "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n"
              "alias pci:v00008086d000010FBsv*sd*bc*sc*i* ixgbe\n"
              "alias pci:v00008086d000010EDsv*sd*bc*sc*i* ixgbevf\n"
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n");
    ptk_loaded_driver(root, "ixgbe", "ixgbe");
    ptk_driver_ids(root, "ixgbe", "pci:v00008086d000010FBsv*sd*bc*sc*i*");
    ptk_write(root, "bus/pci/drivers/ixgbe/fake_sriov_configure", "");
    ptk_loaded_driver(root, "ixgbevf", "ixgbevf");
    ptk_driver_ids(root, "ixgbevf", "pci:v00008086d000010EDsv*sd*bc*sc*i*");
    ptk_device(root, PF, PF_ID, "ixgbe");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_totalvfs", "63\n");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_numvfs", "0\n");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_drivers_autoprobe", "1\n");
    ptk_write(root, "devices/pci0000:00/" PF "/fake_sriov_offset", "0x80\n");
    ptk_write(root, "devices/pci0000:00/" PF "/fake_sriov_stride", "2\n");
    ptk_write(root, "devices/pci0000:00/" PF "/fake_vf_modalias", VF_ID);
    ptk_device(root, NIC, E1000E, "e1000e");
    ctx = test_context(root, root, getenv("FAKE_MODPROBE"), NULL);
}

static void teardown(void)
{
    pcibind_ctx_free(ctx);
    ctx = NULL;
    ptk_destroy(root);
    root = NULL;
}

static size_t count(char **v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static void clear_log(void)
{
    ptk_write(root, "write.log", "");
}

static void expect_log(const char *expected)
{
    char *log = ptk_write_log(root);
    CHECK_STR(log, expected);
    free(log);
}

static void expect_override(const char *bdf, const char *expected)
{
    char *o = ptk_override(root, bdf);
    CHECK_STR(o, expected);
    free(o);
}

static char *autoprobe(void)
{
    return ptk_read(root, "devices/pci0000:00/" PF "/sriov_drivers_autoprobe");
}

/* The VFs in virtfnN order (virtfn10 after virtfn9), at PF + 0x80 + 2 i. */
static void lists_the_vfs_in_virtfn_order(void)
{
    setup();
    char **vfs = (char **)(uintptr_t)0x1;
    CHECK_RC(pcibind_sriov_vfs(ctx, PF, &vfs), PCIBIND_OK);
    CHECK(count(vfs) == 0);
    pcibind_strv_free(vfs);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 12, PCIBIND_SRIOV_AUTOPROBE, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_sriov_vfs(ctx, PF, &vfs), PCIBIND_OK);
    CHECK(count(vfs) == 12);
    if (count(vfs) == 12) {
        CHECK_STR(vfs[0], VF0);
        CHECK_STR(vfs[2], VF2);
        CHECK_STR(vfs[9], "0000:03:12.2");
        CHECK_STR(vfs[10], "0000:03:12.4");
        CHECK_STR(vfs[11], "0000:03:12.6");
    }
    pcibind_strv_free(vfs);
    CHECK_RC(pcibind_sriov_vfs(ctx, PF, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_sriov_vfs(ctx, "junk", &vfs), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_RC(pcibind_sriov_vfs(ctx, "0000:09:00.0", &vfs), PCIBIND_ERR_NO_DEVICE);
    teardown();
}

/* By default the VF driver (loaded, matching, autoprobe on at the PF) grabs none of them. */
static void new_vfs_stay_unbound(void)
{
    setup();
    char **vfs = NULL;
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, &vfs), PCIBIND_OK);
    CHECK(count(vfs) == 2);
    if (count(vfs) == 2) {
        CHECK_STR(vfs[0], VF0);
        CHECK_STR(vfs[1], VF1);
    }
    pcibind_strv_free(vfs);
    CHECK(ptk_is_bound_to(root, VF0, NULL));
    CHECK(ptk_is_bound_to(root, VF1, NULL));
    expect_override(VF0, "none");
    expect_override(VF1, "none");
    char *a = autoprobe();
    CHECK_STR(a, "1\n");
    free(a);
    expect_log("bus/pci/devices/" PF "/sriov_drivers_autoprobe\t0\tok\n"
               "bus/pci/devices/" PF "/sriov_numvfs\t2\tok\n"
               "bus/pci/devices/" VF0 "/driver_override\tnone\tok\n"
               "bus/pci/devices/" VF1 "/driver_override\tnone\tok\n"
               "bus/pci/devices/" PF "/sriov_drivers_autoprobe\t1\tok\n");
    /* A later probe (a VF driver loading, udev) leaves them alone too. */
    ptk_write(root, "bus/pci/drivers_probe", VF0);
    CHECK(ptk_is_bound_to(root, VF0, NULL));
    teardown();
}

/* A VF that cannot be parked with the `none` override: the call fails, the new VFs are removed
 * (no host driver can take an unparked one) and autoprobe is put back: never left at 0 (0.2
 * left it 0 for good, and the next call read 0 as the PF's own setting). */
static void a_vf_that_cannot_be_parked_is_removed_and_autoprobe_put_back(void)
{
    setup();
    ptk_fault(root, "bus/pci/devices/" VF1 "/driver_override EIO");
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, NULL), PCIBIND_ERR_IO);
    char *a = autoprobe();
    CHECK_STR(a, "1\n");
    free(a);
    char *n = ptk_read(root, "devices/pci0000:00/" PF "/sriov_numvfs");
    CHECK_STR(n, "0\n");
    free(n);
    char **left = NULL;
    CHECK_RC(pcibind_recover(ctx, NULL, 0, &left), PCIBIND_OK);
    CHECK(left && !left[0]);
    pcibind_strv_free(left);
    teardown();
}

/* An autoprobe setting of 0 stays 0 and is not written. */
static void autoprobe_off_stays_off(void)
{
    setup();
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_drivers_autoprobe", "0\n");
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 1, 0, NULL), PCIBIND_OK);
    expect_log("bus/pci/devices/" PF "/sriov_numvfs\t1\tok\n"
               "bus/pci/devices/" VF0 "/driver_override\tnone\tok\n");
    char *a = autoprobe();
    CHECK_STR(a, "0\n");
    free(a);
    teardown();
}

/* PCIBIND_SRIOV_AUTOPROBE: only the count is written, and the host driver takes the VFs. */
static void autoprobe_flag_lets_the_host_driver_take_them(void)
{
    setup();
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, PCIBIND_SRIOV_AUTOPROBE, NULL), PCIBIND_OK);
    CHECK(ptk_is_bound_to(root, VF0, "ixgbevf"));
    CHECK(ptk_is_bound_to(root, VF1, "ixgbevf"));
    expect_override(VF0, "(null)");
    expect_log("bus/pci/devices/" PF "/sriov_numvfs\t2\tok\n");
    teardown();
}

/* 2 -> 3 goes through 0; the same count writes nothing and returns the VFs there are. */
static void count_changes_go_through_zero(void)
{
    setup();
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, PCIBIND_SRIOV_AUTOPROBE, NULL), PCIBIND_OK);
    clear_log();
    char **vfs = NULL;
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 3, PCIBIND_SRIOV_AUTOPROBE, &vfs), PCIBIND_OK);
    CHECK(count(vfs) == 3);
    pcibind_strv_free(vfs);
    expect_log("bus/pci/devices/" PF "/sriov_numvfs\t0\tok\n"
               "bus/pci/devices/" PF "/sriov_numvfs\t3\tok\n");
    CHECK(ptk_is_bound_to(root, VF2, "ixgbevf"));

    clear_log();
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 3, 0, &vfs), PCIBIND_OK);
    CHECK(count(vfs) == 3);
    if (count(vfs) == 3)
        CHECK_STR(vfs[2], VF2);
    pcibind_strv_free(vfs);
    expect_log("");

    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 1, 0, &vfs), PCIBIND_OK);
    CHECK(count(vfs) == 1);
    pcibind_strv_free(vfs);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 0, 0, &vfs), PCIBIND_OK);
    CHECK(vfs != NULL && count(vfs) == 0);
    pcibind_strv_free(vfs);
    char *n = ptk_read(root, "devices/pci0000:00/" PF "/sriov_numvfs");
    CHECK_STR(n, "0\n");
    free(n);
    CHECK(ptk_read(root, "devices/pci0000:00/" VF0 "/modalias") == NULL);
    teardown();
}

/* More than sriov_totalvfs: refused, nothing written; unknown flag bits refused. */
static void more_than_total_is_refused(void)
{
    setup();
    char **vfs = (char **)(uintptr_t)0x1;
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 64, 0, &vfs), PCIBIND_ERR_INVALID_ARG);
    CHECK(vfs == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "at most 63");
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 1, PCIBIND_BIND_DRY_RUN, NULL),
             PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 1, 8, NULL), PCIBIND_ERR_INVALID_ARG);
    expect_log("");
    teardown();
}

/* A VF on vfio-pci keeps the VFs unless forced; binding a new VF to vfio-pci works. */
static void vf_on_vfio_refuses_removal_unless_forced(void)
{
    setup();
    char **vfs = NULL;
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, &vfs), PCIBIND_OK);
    pcibind_strv_free(vfs);
    char *driver = NULL;
    CHECK_RC(pcibind_bind(ctx, VF1, NULL, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "vfio-pci");
    pcibind_string_free(driver);
    CHECK(ptk_is_bound_to(root, VF1, "vfio-pci"));
    expect_override(VF1, "vfio-pci");
    clear_log();

    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 0, 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), VF1);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 3, 0, NULL), PCIBIND_ERR_IN_USE);
    expect_log("");
    CHECK(ptk_is_bound_to(root, VF1, "vfio-pci"));

    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 0, PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    expect_log("bus/pci/devices/" PF "/sriov_numvfs\t0\tok\n");
    CHECK(ptk_read(root, "devices/pci0000:00/" VF1 "/modalias") == NULL);
    CHECK(ptk_read(root, "bus/pci/drivers/vfio-pci/" VF1 "/modalias") == NULL);
    teardown();
}

/* Forced removal while a VMM holds a VF: the kernel's removal waits for it (the shim's
 * fake_vmm_holds), and the call stops waiting at the lock timeout, never hanging; the PF stays
 * locked until the kernel is done (another call: PCIBIND_ERR_BUSY), and then has 0 VFs. */
static void forced_removal_waits_for_a_vmm_a_bounded_time(void)
{
    setup();
    char **vfs = NULL;
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, &vfs), PCIBIND_OK);
    pcibind_strv_free(vfs);
    CHECK_RC(pcibind_bind(ctx, VF1, "vfio-pci", 0, NULL), PCIBIND_OK);
    ptk_write(root, "devices/pci0000:00/" VF1 "/fake_vmm_holds", "");
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 300), PCIBIND_OK);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 0, PCIBIND_BIND_FORCE, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "waiting for the process that holds one of them");
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 0), PCIBIND_OK);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 1, 0, NULL), PCIBIND_ERR_BUSY);
    char *marker = ptk_path(root, "devices/pci0000:00/" VF1 "/fake_vmm_holds");
    unlink(marker);
    free(marker);
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 5000), PCIBIND_OK);
    vfs = NULL;
    CHECK_RC(pcibind_sriov_vfs(ctx, PF, &vfs), PCIBIND_OK);
    pcibind_strv_free(vfs);
    /* The lock is free once the kernel is done: a change goes through (0 -> 1). */
    vfs = NULL;
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 1, 0, &vfs), PCIBIND_OK);
    CHECK(vfs && vfs[0] && !vfs[1]);
    pcibind_strv_free(vfs);
    teardown();
}

/* Removal holds every VF's lock as well as the PF's: with a VF locked by another pcibind (an
 * flock on its lock file, from another open file description, as another process has), the
 * removal waits for it, gives up BUSY after the lock timeout, and nothing is written. Once the
 * lock is free it goes ahead. */
static void removal_waits_for_a_locked_vf(void)
{
    setup();
    char **vfs = NULL;
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, &vfs), PCIBIND_OK);
    pcibind_strv_free(vfs);
    clear_log();
    char *lock = ptk_path(root, "locks/" VF1 ".lock");
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 100), PCIBIND_OK);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 0, 0, NULL), PCIBIND_ERR_BUSY);
    CHECK_CONTAINS(pcibind_last_error_message(), VF1);
    expect_log("");
    char *still = ptk_read(root, "devices/pci0000:00/" VF1 "/modalias");
    CHECK(still != NULL);
    free(still);
    close(fd);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 0, 0, NULL), PCIBIND_OK);
    expect_log("bus/pci/devices/" PF "/sriov_numvfs\t0\tok\n");
    free(lock);
    teardown();
}

/* No sriov_totalvfs (no SR-IOV, or a VF): UNSUPPORTED. */
static void no_sriov_is_unsupported(void)
{
    setup();
    char **vfs = (char **)(uintptr_t)0x1;
    CHECK_RC(pcibind_sriov_vfs(ctx, NIC, &vfs), PCIBIND_ERR_UNSUPPORTED);
    CHECK(vfs == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "sriov_totalvfs");
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, NIC, 1, 0, NULL), PCIBIND_ERR_UNSUPPORTED);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 1, PCIBIND_SRIOV_AUTOPROBE, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_sriov_vfs(ctx, VF0, &vfs), PCIBIND_ERR_UNSUPPORTED);
    teardown();
}

/* A PF driver without sriov_configure (the kernel: ENOENT): UNSUPPORTED naming it, autoprobe
 * put back; an unbound PF likewise. */
static void driver_without_sriov_configure_is_unsupported(void)
{
    setup();
    char *marker = ptk_path(root, "bus/pci/drivers/ixgbe/fake_sriov_configure");
    CHECK(unlink(marker) == 0);
    free(marker);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, NULL), PCIBIND_ERR_UNSUPPORTED);
    CHECK_CONTAINS(pcibind_last_error_message(), "ixgbe cannot create VFs");
    expect_log("bus/pci/devices/" PF "/sriov_drivers_autoprobe\t0\tok\n"
               "bus/pci/devices/" PF "/sriov_numvfs\t2\tENOENT\n"
               "bus/pci/devices/" PF "/sriov_drivers_autoprobe\t1\tok\n");
    char *a = autoprobe();
    CHECK_STR(a, "1\n");
    free(a);

    CHECK_RC(pcibind_unbind(ctx, PF, 0), PCIBIND_OK);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, PCIBIND_SRIOV_AUTOPROBE, NULL),
             PCIBIND_ERR_UNSUPPORTED);
    CHECK_CONTAINS(pcibind_last_error_message(), "bound to no driver");
    teardown();
}

/* A failure after the count went through 0 says the PF now has 0 VFs. */
static void failure_after_zero_says_so(void)
{
    setup();
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, NULL), PCIBIND_OK);
    /* The second write of sriov_numvfs (the new count) fails. */
    ptk_fault(root, "bus/pci/devices/" PF "/sriov_numvfs EIO 1 1");
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 3, 0, NULL), PCIBIND_ERR_IO);
    CHECK_CONTAINS(pcibind_last_error_message(), "now has 0 VFs");
    CHECK(pcibind_last_error_errno() == EIO);
    char *a = autoprobe();
    CHECK_STR(a, "1\n");
    free(a);
    char **vfs = NULL;
    CHECK_RC(pcibind_sriov_vfs(ctx, PF, &vfs), PCIBIND_OK);
    CHECK(count(vfs) == 0);
    pcibind_strv_free(vfs);
    teardown();
}

/* The plan of pcibind_sriov_set_numvfs(PF, numvfs, flags), the sysfs root left out of its paths
 * ("bus/pci/devices/..."), after checking that it wrote nothing (and took no lock: the PF's
 * lock file, which a real call leaves behind, is not there); NULL when refused with `rc`. */
static char *plan_of(unsigned numvfs, unsigned flags, int rc)
{
    char *plan = (char *)(uintptr_t)0x1;
    char *before = ptk_write_log(root);
    char *lock = ptk_path(root, "locks/" PF ".lock");
    int locked_before = access(lock, F_OK) == 0;
    CHECK_RC(pcibind_sriov_set_numvfs_plan(ctx, PF, numvfs, flags, &plan), rc);
    char *after = ptk_write_log(root);
    CHECK_STR(after, before);
    CHECK(locked_before || access(lock, F_OK) != 0);
    free(lock);
    free(before);
    free(after);
    if (rc != PCIBIND_OK) {
        CHECK(plan == NULL);
        return NULL;
    }
    if (!plan)
        return NULL;
    /* Every "ROOT/" goes: the plan names absolute paths under the context's root. */
    size_t rootlen = strlen(root);
    char *out = malloc(strlen(plan) + 1), *o = out;
    for (const char *p = plan; *p;) {
        if (strncmp(p, root, rootlen) == 0 && p[rootlen] == '/') {
            p += rootlen + 1;
            continue;
        }
        *o++ = *p++;
    }
    *o = '\0';
    pcibind_string_free(plan);
    return out;
}

static void expect_plan(unsigned numvfs, unsigned flags, const char *expected)
{
    char *plan = plan_of(numvfs, flags, PCIBIND_OK);
    CHECK_STR(plan, expected);
    free(plan);
}

#define DEV "bus/pci/devices/" PF
#define PARK(i)                                                                                 \
    "write 'none' to " DEV "/virtfn" #i "/driver_override, unless the new VF is bound by then " \
    "(by a caller that held its lock first)\n"

/* 0 -> N: autoprobe off, the count, each new VF parked, autoprobe back; what a failure of each
 * step restores. Then the real call makes exactly these writes. */
static void plan_of_new_vfs(void)
{
    setup();
    expect_plan(2, 0,
                "write '0' to " DEV "/sriov_drivers_autoprobe\n"
                "write '2' to " DEV "/sriov_numvfs (create 2 VFs)\n"
                PARK(0) PARK(1)
                "write '1' to " DEV "/sriov_drivers_autoprobe\n"
                "if creating the VFs fails, restore " PF ":\n"
                "  write '1' to " DEV "/sriov_drivers_autoprobe\n"
                "if parking a new VF fails, restore " PF " (each step only once the one "
                "before it succeeded):\n"
                "  write '0' to " DEV "/sriov_numvfs (remove its 2 VFs)\n"
                "  write '1' to " DEV "/sriov_drivers_autoprobe");
    char *n = ptk_read(root, "devices/pci0000:00/" PF "/sriov_numvfs");
    CHECK_STR(n, "0\n");
    free(n);
    CHECK(ptk_read(root, "devices/pci0000:00/" VF0 "/modalias") == NULL);
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, NULL), PCIBIND_OK);
    expect_log(DEV "/sriov_drivers_autoprobe\t0\tok\n"
               DEV "/sriov_numvfs\t2\tok\n"
               "bus/pci/devices/" VF0 "/driver_override\tnone\tok\n"
               "bus/pci/devices/" VF1 "/driver_override\tnone\tok\n"
               DEV "/sriov_drivers_autoprobe\t1\tok\n");
    /* virtfn0 and virtfn1 of the plan are these VFs. */
    char *link = ptk_path(root, DEV "/virtfn1");
    char target[4096];
    ssize_t len = readlink(link, target, sizeof(target) - 1);
    free(link);
    CHECK(len > 0);
    if (len > 0) {
        target[len] = '\0';
        CHECK_CONTAINS(target, VF1);
    }
    teardown();
}

/* N -> M goes through 0, the old VFs checked; N -> 0 removes them only; the current count is
 * nothing to do. */
static void plan_of_a_new_count_and_of_zero(void)
{
    setup();
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, NULL), PCIBIND_OK);
    clear_log();
    expect_plan(3, 0,
                "safety checks passed: no VF to remove is on a VFIO driver or in use on the "
                "host\n"
                "write '0' to " DEV "/sriov_numvfs (remove its 2 VFs)\n"
                "write '0' to " DEV "/sriov_drivers_autoprobe\n"
                "write '3' to " DEV "/sriov_numvfs (create 3 VFs)\n"
                PARK(0) PARK(1) PARK(2)
                "write '1' to " DEV "/sriov_drivers_autoprobe\n"
                "if creating the VFs fails, restore " PF ":\n"
                "  write '1' to " DEV "/sriov_drivers_autoprobe\n"
                "if parking a new VF fails, restore " PF " (each step only once the one "
                "before it succeeded):\n"
                "  write '0' to " DEV "/sriov_numvfs (remove its 3 VFs)\n"
                "  write '1' to " DEV "/sriov_drivers_autoprobe\n"
                "the 2 VFs removed first do not come back: a failure after their removal leaves "
                PF " with 0 VFs");
    expect_plan(0, 0,
                "safety checks passed: no VF to remove is on a VFIO driver or in use on the "
                "host\n"
                "write '0' to " DEV "/sriov_numvfs (remove its 2 VFs)\n"
                "on failure, nothing is restored");
    expect_plan(2, 0, PF " already has 2 VFs; nothing to do");
    char **vfs = NULL;
    CHECK_RC(pcibind_sriov_vfs(ctx, PF, &vfs), PCIBIND_OK);
    CHECK(count(vfs) == 2);
    pcibind_strv_free(vfs);
    expect_override(VF0, "none");
    teardown();
}

/* PCIBIND_SRIOV_AUTOPROBE: the count only; autoprobe already 0: not written. */
static void plan_in_autoprobe_mode_and_with_autoprobe_off(void)
{
    setup();
    expect_plan(2, PCIBIND_SRIOV_AUTOPROBE,
                "write '2' to " DEV "/sriov_numvfs (create 2 VFs)\n"
                "on failure, nothing is restored");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_drivers_autoprobe", "0\n");
    expect_plan(1, 0,
                "write '1' to " DEV "/sriov_numvfs (create 1 VF)\n"
                PARK(0)
                "if parking a new VF fails, restore " PF ":\n"
                "  write '0' to " DEV "/sriov_numvfs (remove its 1 VF)");
    teardown();
}

/* The plan refuses what the call refuses, with the same code and message, writing nothing. */
static void plan_refuses_as_the_call_does(void)
{
    setup();
    CHECK(plan_of(64, 0, PCIBIND_ERR_INVALID_ARG) == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "at most 63");
    CHECK(plan_of(1, PCIBIND_BIND_DRY_RUN, PCIBIND_ERR_INVALID_ARG) == NULL);
    CHECK_RC(pcibind_sriov_set_numvfs_plan(ctx, PF, 1, 0, NULL), PCIBIND_ERR_INVALID_ARG);
    char *plan = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_sriov_set_numvfs_plan(ctx, NIC, 1, 0, &plan), PCIBIND_ERR_UNSUPPORTED);
    CHECK(plan == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "sriov_totalvfs");
    CHECK_RC(pcibind_sriov_set_numvfs_plan(ctx, "junk", 1, 0, &plan), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_RC(pcibind_sriov_set_numvfs_plan(ctx, "0000:09:00.0", 1, 0, &plan),
             PCIBIND_ERR_NO_DEVICE);

    /* A VF on vfio-pci: refused unforced; forced, the removal waits for a VMM, bounded. */
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_bind(ctx, VF1, "vfio-pci", 0, NULL), PCIBIND_OK);
    clear_log();
    CHECK(plan_of(0, 0, PCIBIND_ERR_IN_USE) == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), VF1);
    CHECK(plan_of(3, 0, PCIBIND_ERR_IN_USE) == NULL);
    char *forced = plan_of(0, PCIBIND_BIND_FORCE, PCIBIND_OK);
    CHECK_CONTAINS(forced, "safety checks skipped (forced)\n"
                           "write '0' to " DEV "/sriov_numvfs (remove its 2 VFs) from a child "
                           "process that keeps the locks, waiting at most");
    free(forced);
    CHECK(ptk_is_bound_to(root, VF1, "vfio-pci"));
    expect_log("");
    teardown();
}

/* The plan of a VF count change starts with the roll back of an interrupted one, as a bind's. */
static void plan_says_an_interrupted_change_is_rolled_back_first(void)
{
    setup();
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_drivers_autoprobe", "0\n");
    ptk_mkdirs(root, "locks");
    ptk_write(root, "locks/" PF ".lock",
              "pcibind-record 1\npid 7\ndoing changing the VF count from 0 to 2\n"
              "sriov-autoprobe 1\nsriov-numvfs 0\n");
    char *plan = plan_of(1, 0, PCIBIND_OK);
    CHECK_CONTAINS(plan, "first roll back the interrupted transaction of " PF
                         " (changing the VF count from 0 to 2 (process 7), started with 0 VFs, "
                         "sriov_drivers_autoprobe 1)");
    free(plan);
    char *record = ptk_read(root, "locks/" PF ".lock");
    CHECK_CONTAINS(record, "sriov-autoprobe 1");
    free(record);
    teardown();
}

/* Autoprobe already 0 at the start: a VF that cannot be parked still takes the new VFs away
 * (a later probe would give an unparked one to a host driver); autoprobe stays 0. */
static void with_autoprobe_off_an_unparked_vf_is_removed_too(void)
{
    setup();
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_drivers_autoprobe", "0\n");
    ptk_fault(root, "bus/pci/devices/" VF1 "/driver_override EIO");
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 2, 0, NULL), PCIBIND_ERR_IO);
    expect_log(DEV "/sriov_numvfs\t2\tok\n"
               "bus/pci/devices/" VF0 "/driver_override\tnone\tok\n"
               "bus/pci/devices/" VF1 "/driver_override\tnone\tEIO\n"
               DEV "/sriov_numvfs\t0\tok\n");
    char *a = autoprobe();
    CHECK_STR(a, "0\n");
    free(a);
    char *rec = ptk_read(root, "locks/" PF ".lock");
    CHECK_STR(rec, "");
    free(rec);
    teardown();
}

RUN_TESTS(TEST_CASE(lists_the_vfs_in_virtfn_order), TEST_CASE(new_vfs_stay_unbound),
          TEST_CASE(a_vf_that_cannot_be_parked_is_removed_and_autoprobe_put_back),
          TEST_CASE(autoprobe_off_stays_off),
          TEST_CASE(autoprobe_flag_lets_the_host_driver_take_them),
          TEST_CASE(count_changes_go_through_zero), TEST_CASE(more_than_total_is_refused),
          TEST_CASE(vf_on_vfio_refuses_removal_unless_forced),
          TEST_CASE(forced_removal_waits_for_a_vmm_a_bounded_time),
          TEST_CASE(removal_waits_for_a_locked_vf),
          TEST_CASE(no_sriov_is_unsupported),
          TEST_CASE(driver_without_sriov_configure_is_unsupported),
          TEST_CASE(failure_after_zero_says_so), TEST_CASE(plan_of_new_vfs),
          TEST_CASE(plan_of_a_new_count_and_of_zero),
          TEST_CASE(plan_in_autoprobe_mode_and_with_autoprobe_off),
          TEST_CASE(plan_refuses_as_the_call_does),
          TEST_CASE(plan_says_an_interrupted_change_is_rolled_back_first),
          TEST_CASE(with_autoprobe_off_an_unparked_vf_is_removed_too))
