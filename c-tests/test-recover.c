/* Interrupted transactions are rolled back (SPEC 3.12). A caller killed in the middle leaves the
 * device half moved and the record of its start in the device's lock file. These tests lay out
 * exactly that (the device's state and the record a killed caller leaves, in the format of
 * src/os/record.rs) and check what the next caller does: roll the device back before its own work,
 * in any call; pcibind_recover(); the trust rule; unreadable records; gone devices; a PF's
 * SR-IOV record. test-kill.c kills real callers with the test kit's PTK_KILL_AFTER_WRITE. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "testctx.h"

static char *root;
static pcibind_ctx *ctx;

#define expect_bound(bdf, driver) expect_bound_in(root, bdf, driver)
#define expect_override(bdf, expected) expect_override_in(root, bdf, expected)

static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
#define NIC "0000:02:00.0"

static void setup(void)
{
    root = ptk_new();
    warnings[0] = '\0';
    e1000e_and_vfio_pci(root);
    ptk_device(root, NIC, E1000E, "e1000e");
    ctx = test_context(root, root, getenv("FAKE_MODPROBE"), NULL);
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, capture_warnings, NULL, LOG_WARNING), PCIBIND_OK);
}

static void teardown(void)
{
    pcibind_ctx_free(ctx);
    ctx = NULL;
    ptk_destroy(root);
    root = NULL;
}

/* The record a bind of NIC from e1000e to vfio-pci writes before its first write. */
static const char *const BIND_RECORD = "pcibind-record 1\n"
                                       "pid 4242\n"
                                       "doing binding to vfio-pci\n"
                                       "driver e1000e\n"
                                       "override-unset\n"
                                       "may-leave vfio-pci\n";

static void write_record(const char *bdf, const char *text)
{
    char rel[64];
    snprintf(rel, sizeof(rel), "locks/%s.lock", bdf);
    ptk_write(root, rel, text);
    char *path = ptk_path(root, rel);
    CHECK(chmod(path, 0600) == 0);
    free(path);
}

static char *record(const char *bdf)
{
    char rel[64];
    snprintf(rel, sizeof(rel), "locks/%s.lock", bdf);
    char *text = ptk_read(root, rel);
    return text ? text : strdup("(no lock file)");
}

static void expect_no_record(const char *bdf)
{
    char *text = record(bdf);
    CHECK_STR(text, "");
    free(text);
}


/* A write to a kernel file with open() and write(), which the kernel shim sees (ptk_write()'s
 * stdio does not go through them), as the dead caller made it. */
static void kernel_write(const char *rel, const char *value)
{
    char *path = ptk_path(root, rel);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(write(fd, value, strlen(value)) == (ssize_t)strlen(value));
        close(fd);
    }
    free(path);
}

/* Killed after its first write (override := vfio-pci): the NIC is still on e1000e with
 * vfio-pci in its override, so the next reprobe would hand it to vfio-pci. */
static void killed_after_the_override(void)
{
    ptk_write(root, "devices/pci0000:00/" NIC "/driver_override", "vfio-pci\n");
    write_record(NIC, BIND_RECORD);
}

/* Killed after its second write (unbind): the host's NIC is on no driver. */
static void killed_after_the_unbind(void)
{
    kernel_write("bus/pci/devices/" NIC "/driver_override", "vfio-pci\n");
    kernel_write("bus/pci/drivers/e1000e/unbind", NIC);
    write_record(NIC, BIND_RECORD);
    ptk_write(root, "write.log", "");
}

/* The next bind, by any process, first rolls the NIC back to e1000e, then does its own work
 * from that start: it fails here (vfio-pci's probe refuses), and the restore goes to e1000e,
 * not to the unbound wreck (0.2 "restored" it to no driver). */
static void next_call_rolls_back_first_and_starts_from_there(void)
{
    setup();
    killed_after_the_unbind();
    expect_bound(NIC, NULL);
    ptk_fault(root, "probe:vfio-pci ENODEV");
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", PCIBIND_BIND_FORCE, NULL), PCIBIND_ERR_BIND);
    CHECK_CONTAINS(pcibind_last_error_message(), "restored (bound to e1000e, driver_override unset)");
    CHECK_CONTAINS(warnings, "last transaction on " NIC " (process 4242: binding to vfio-pci) "
                             "was interrupted; rolled back");
    expect_bound(NIC, "e1000e");
    expect_override(NIC, "(null)");
    expect_no_record(NIC);
    teardown();
}

static void recover_rolls_back_a_bind_killed_after_the_override(void)
{
    setup();
    killed_after_the_override();
    /* A dry run rolls nothing back, and says the real call would. */
    char *plan = NULL;
    CHECK_RC(pcibind_bind_plan(ctx, NIC, "vfio-pci", 0, &plan), PCIBIND_OK);
    CHECK_CONTAINS(plan, "first roll back the interrupted transaction of " NIC
                         " (binding to vfio-pci (process 4242), started bound to e1000e");
    pcibind_string_free(plan);
    char *text = record(NIC);
    CHECK_CONTAINS(text, "pid 4242");
    free(text);
    char **recovered = (char **)(uintptr_t)0x1;
    CHECK_RC(pcibind_recover(ctx, NIC, 0, &recovered), PCIBIND_OK);
    CHECK(recovered && recovered[0] && !recovered[1]);
    if (recovered && recovered[0])
        CHECK_STR(recovered[0], NIC);
    pcibind_strv_free(recovered);
    expect_bound(NIC, "e1000e");
    expect_override(NIC, "(null)");
    expect_no_record(NIC);
    /* Nothing left: a second recovery does nothing and writes nothing. */
    ptk_write(root, "write.log", "");
    recovered = NULL;
    CHECK_RC(pcibind_recover(ctx, NULL, 0, &recovered), PCIBIND_OK);
    CHECK(recovered && !recovered[0]);
    pcibind_strv_free(recovered);
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
    teardown();
}

/* With no address: every device whose lock file holds a record, and only those. */
static void recover_all_finds_every_record(void)
{
    setup();
    ptk_device(root, "0000:03:00.0", E1000E, "e1000e");
    ptk_device(root, "0000:04:00.0", E1000E, "e1000e");
    killed_after_the_unbind();
    ptk_write(root, "devices/pci0000:00/0000:04:00.0/driver_override", "vfio-pci\n");
    write_record("0000:04:00.0", BIND_RECORD);
    write_record("0000:03:00.0", ""); /* a lock file with no transaction */
    char **recovered = NULL;
    CHECK_RC(pcibind_recover(ctx, NULL, 0, &recovered), PCIBIND_OK);
    CHECK(recovered && recovered[0] && recovered[1] && !recovered[2]);
    if (recovered && recovered[0] && recovered[1]) {
        CHECK_STR(recovered[0], NIC);
        CHECK_STR(recovered[1], "0000:04:00.0");
    }
    pcibind_strv_free(recovered);
    expect_bound(NIC, "e1000e");
    expect_bound("0000:04:00.0", "e1000e");
    expect_override("0000:04:00.0", "(null)");
    teardown();
}

/* Any call that takes the lock rolls back first: also a reattach, and an unbind. */
static void reattach_and_unbind_roll_back_first(void)
{
    setup();
    killed_after_the_unbind();
    char *driver = NULL;
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "e1000e");
    pcibind_string_free(driver);
    CHECK_CONTAINS(warnings, "was interrupted; rolled back");
    expect_override(NIC, "(null)");
    expect_no_record(NIC);

    killed_after_the_override();
    CHECK_RC(pcibind_unbind(ctx, NIC, PCIBIND_BIND_FORCE), PCIBIND_OK);
    expect_bound(NIC, NULL);
    expect_override(NIC, "none");
    expect_no_record(NIC);
    teardown();
}

/* Interrupted after its last write: the caller never learned that it succeeded, so it is
 * rolled back too. */
static void interrupted_after_the_last_write_is_rolled_back(void)
{
    setup();
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_OK);
    write_record(NIC, BIND_RECORD);
    CHECK_RC(pcibind_recover(ctx, NIC, 0, NULL), PCIBIND_OK);
    expect_bound(NIC, "e1000e");
    expect_override(NIC, "(null)");
    teardown();
}

/* The trust rule: an override that is neither the start's nor one the transaction writes means
 * someone moved the device since; the record is dropped with a warning, nothing written. */
static void a_device_moved_since_is_left_alone(void)
{
    setup();
    ptk_loaded_driver(root, "igb", "igb");
    ptk_write(root, "devices/pci0000:00/" NIC "/driver_override", "igb\n");
    write_record(NIC, BIND_RECORD);
    ptk_write(root, "write.log", "");
    char **recovered = NULL;
    CHECK_RC(pcibind_recover(ctx, NIC, 0, &recovered), PCIBIND_OK);
    CHECK(recovered && !recovered[0]);
    pcibind_strv_free(recovered);
    CHECK_CONTAINS(warnings, "the device was moved since");
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
    expect_override(NIC, "igb");
    expect_no_record(NIC);
    teardown();
}

/* A record that cannot be parsed is reported, naming the file, and never acted on. */
static void an_unreadable_record_is_reported_not_acted_on(void)
{
    setup();
    ptk_write(root, "devices/pci0000:00/" NIC "/driver_override", "vfio-pci\n");
    write_record(NIC, "pcibind-record 1\npid 4242\ndoi");
    ptk_write(root, "write.log", "");
    CHECK_RC(pcibind_recover(ctx, NIC, 0, NULL), PCIBIND_ERR_IO);
    CHECK_CONTAINS(pcibind_last_error_message(), "locks/" NIC ".lock");
    CHECK_CONTAINS(pcibind_last_error_message(), "cannot be read");
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_ERR_IO);
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
    expect_override(NIC, "vfio-pci");
    char *text = record(NIC);
    CHECK_CONTAINS(text, "doi");
    free(text);
    teardown();
}

/* A roll-back that fails fails the call with PCIBIND_ERR_RESTORE naming the state, and the
 * record stays for the next try, which succeeds once the fault is gone. */
static void a_failed_roll_back_keeps_the_record(void)
{
    setup();
    killed_after_the_unbind();
    ptk_fault(root, "probe:e1000e ENODEV 1");
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_ERR_RESTORE);
    CHECK_CONTAINS(pcibind_last_error_message(), "rolling it back failed");
    CHECK_CONTAINS(pcibind_last_error_message(), "the device is now bound to no driver");
    char *text = record(NIC);
    CHECK_CONTAINS(text, "doing binding to vfio-pci");
    free(text);
    CHECK_RC(pcibind_recover(ctx, NULL, 0, NULL), PCIBIND_OK);
    expect_bound(NIC, "e1000e");
    expect_no_record(NIC);
    teardown();
}

/* The record of a device that is gone is dropped; a later device at that address starts
 * clean. */
static void a_gone_device_drops_its_record(void)
{
    setup();
    write_record("0000:05:00.0", BIND_RECORD);
    char **recovered = NULL;
    CHECK_RC(pcibind_recover(ctx, NULL, 0, &recovered), PCIBIND_OK);
    CHECK(recovered && !recovered[0]);
    pcibind_strv_free(recovered);
    CHECK_CONTAINS(warnings, "the device is gone; its record is dropped");
    expect_no_record("0000:05:00.0");
    teardown();
}

/* A transaction that ends, in success or in a verified restore, leaves no record. */
static void finished_transactions_leave_no_record(void)
{
    setup();
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_OK);
    expect_no_record(NIC);
    ptk_fault(root, "probe:e1000e ENODEV 1");
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_ERR_BIND);
    expect_no_record(NIC);
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    expect_no_record(NIC);
    /* A restore that fails keeps it: the next holder tries again. */
    ptk_fault(root, "probe:vfio-pci ENODEV 1");
    ptk_fault(root, "probe:e1000e ENODEV 1");
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_ERR_RESTORE);
    char *text = record(NIC);
    CHECK_CONTAINS(text, "driver e1000e");
    free(text);
    CHECK_RC(pcibind_recover(ctx, NIC, 0, NULL), PCIBIND_OK);
    expect_bound(NIC, "e1000e");
    expect_no_record(NIC);
    teardown();
}

/* A PF whose VF count change was interrupted with autoprobe at 0: its autoprobe (and count)
 * are put back, so the next call does not read 0 as the PF's own setting. */
static void an_interrupted_sriov_change_puts_autoprobe_back(void)
{
    setup();
    ptk_loaded_driver(root, "ixgbe", "ixgbe");
    ptk_write(root, "bus/pci/drivers/ixgbe/fake_sriov_configure", "");
    ptk_device(root, "0000:06:00.0", "pci:v00008086d000010FBsv00008086sd0000000Cbc02sc00i00",
               "ixgbe");
    ptk_write(root, "devices/pci0000:00/0000:06:00.0/sriov_totalvfs", "4\n");
    ptk_write(root, "devices/pci0000:00/0000:06:00.0/sriov_numvfs", "0\n");
    ptk_write(root, "devices/pci0000:00/0000:06:00.0/sriov_drivers_autoprobe", "0\n");
    write_record("0000:06:00.0", "pcibind-record 1\npid 7\ndoing changing the VF count from 0 to 2\n"
                                 "sriov-autoprobe 1\nsriov-numvfs 0\n");
    char **recovered = NULL;
    CHECK_RC(pcibind_recover(ctx, NULL, 0, &recovered), PCIBIND_OK);
    CHECK(recovered && recovered[0] && !recovered[1]);
    pcibind_strv_free(recovered);
    char *a = ptk_read(root, "devices/pci0000:00/0000:06:00.0/sriov_drivers_autoprobe");
    CHECK_STR(a, "1\n");
    free(a);
    expect_no_record("0000:06:00.0");
    teardown();
}

RUN_TESTS(TEST_CASE(next_call_rolls_back_first_and_starts_from_there),
          TEST_CASE(recover_rolls_back_a_bind_killed_after_the_override),
          TEST_CASE(recover_all_finds_every_record), TEST_CASE(reattach_and_unbind_roll_back_first),
          TEST_CASE(interrupted_after_the_last_write_is_rolled_back),
          TEST_CASE(a_device_moved_since_is_left_alone),
          TEST_CASE(an_unreadable_record_is_reported_not_acted_on),
          TEST_CASE(a_failed_roll_back_keeps_the_record), TEST_CASE(a_gone_device_drops_its_record),
          TEST_CASE(finished_transactions_leave_no_record),
          TEST_CASE(an_interrupted_sriov_change_puts_autoprobe_back))
