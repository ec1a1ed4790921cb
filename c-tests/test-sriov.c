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
          TEST_CASE(failure_after_zero_says_so))
