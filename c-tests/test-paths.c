/* One decision for every path that moves a device (SPEC 3.3): unbind, a named reattach, a
 * reattach to the host, a PF with VFs on VFIO, VF removal. 0.2 ran the safety checks in bind
 * only, so `reattach(host NIC, "vfio-pci")` and `unbind` took what bind refused. Also the small
 * holes of the same promise: an already-bound VFIO device without its override, a reattach
 * with no readable tables, a host-bound device whose override is set. */
#define _GNU_SOURCE
#include <stdint.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "testctx.h"

static char *root;
static pcibind_ctx *ctx;

#define expect_bound(bdf, driver) expect_bound_in(root, bdf, driver)
#define expect_override(bdf, expected) expect_override_in(root, bdf, expected)

static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
static const char *const IXGBE = "pci:v00008086d000010FBsv00008086sd0000000Cbc02sc00i00";
static const char *const IXGBEVF = "pci:v00008086d000010EDsv00008086sd0000000Cbc02sc00i00";
#define NIC "0000:02:00.0"
#define PF "0000:06:00.0"
#define VF0 "0000:06:00.1"

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


static void expect_log(const char *expected)
{
    char *log = ptk_write_log(root);
    CHECK_STR(log, expected);
    free(log);
}

/* NIC's eth0 is up with an IPv4 route: the host's uplink. */
static void nic_carries_the_hosts_traffic(void)
{
    nic_carries_the_hosts_traffic_in(root, NIC);
}

static void named_reattach_refuses_what_bind_refuses(void)
{
    setup();
    nic_carries_the_hosts_traffic();
    CHECK_RC(pcibind_reattach(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "network interface eth0 is up");
    expect_log("");
    char *driver = NULL;
    CHECK_RC(pcibind_reattach(ctx, NIC, "vfio-pci", PCIBIND_BIND_FORCE, &driver), PCIBIND_OK);
    CHECK_STR(driver, "vfio-pci");
    pcibind_string_free(driver);
    expect_bound(NIC, "vfio-pci");
    teardown();
}

static void unbind_of_an_in_use_nic_is_refused_unless_forced(void)
{
    setup();
    nic_carries_the_hosts_traffic();
    CHECK_RC(pcibind_unbind(ctx, NIC, 0), PCIBIND_ERR_IN_USE);
    expect_log("");
    expect_bound(NIC, "e1000e");
    CHECK_RC(pcibind_unbind(ctx, NIC, PCIBIND_BIND_FORCE), PCIBIND_OK);
    expect_bound(NIC, NULL);
    expect_override(NIC, "none");
    teardown();
}

/* A PF whose VF is on vfio-pci: unloading its driver would pull the VF out of a guest, so no
 * path takes it off its driver, whatever the target. */
static void pf_with_a_vf_on_vfio_stays_on_its_driver(void)
{
    setup();
    ptk_loaded_driver(root, "ixgbe", "ixgbe");
    ptk_driver_ids(root, "ixgbe", "pci:v00008086d000010FBsv*sd*bc*sc*i*");
    ptk_loaded_driver(root, "igb", "igb");
    ptk_device(root, PF, IXGBE, "ixgbe");
    ptk_device(root, VF0, IXGBEVF, NULL);
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_totalvfs", "4\n");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_numvfs", "1\n");
    ptk_symlink(root, "devices/pci0000:00/" PF "/virtfn0", "../" VF0);
    ptk_symlink(root, "devices/pci0000:00/" VF0 "/physfn", "../" PF);
    CHECK_RC(pcibind_bind(ctx, VF0, "vfio-pci", 0, NULL), PCIBIND_OK);
    ptk_write(root, "write.log", "");
    CHECK_RC(pcibind_unbind(ctx, PF, 0), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "VF " VF0 " is on vfio-pci");
    CHECK_RC(pcibind_reattach(ctx, PF, "igb", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_RC(pcibind_bind(ctx, PF, "igb", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_RC(pcibind_bind(ctx, PF, "vfio-pci", 0, NULL), PCIBIND_ERR_IN_USE);
    expect_log("");
    expect_bound(PF, "ixgbe");
    teardown();
}

/* Removing VFs takes them from whatever holds them: a VF whose interface carries the host's
 * traffic is in use, as the NIC itself would be. */
static void removing_a_vf_the_host_uses_is_refused(void)
{
    setup();
    ptk_loaded_driver(root, "ixgbe", "ixgbe");
    ptk_write(root, "bus/pci/drivers/ixgbe/fake_sriov_configure", "");
    ptk_loaded_driver(root, "ixgbevf", "ixgbevf");
    ptk_device(root, PF, IXGBE, "ixgbe");
    ptk_device(root, VF0, IXGBEVF, "ixgbevf");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_totalvfs", "4\n");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_numvfs", "1\n");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_drivers_autoprobe", "1\n");
    ptk_symlink(root, "devices/pci0000:00/" PF "/virtfn0", "../" VF0);
    ptk_symlink(root, "devices/pci0000:00/" VF0 "/physfn", "../" PF);
    ptk_mkdirs(root, "devices/pci0000:00/" VF0 "/net/eth1");
    ptk_write(root, "devices/pci0000:00/" VF0 "/net/eth1/flags", "0x1003\n");
    ptk_write(root, "proc/net/if_inet6", "20010db8000000000000000000000001 03 40 00 80 eth1\n");
    CHECK_RC(pcibind_sriov_set_numvfs(ctx, PF, 0, 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "take VF " VF0 " from the host");
    CHECK_CONTAINS(pcibind_last_error_message(), "eth1");
    expect_log("");
    teardown();
}

/* Already on vfio-pci without vfio-pci in its override (bound through new_id, or by hand): a
 * reprobe would lose it, so bind writes the override, and nothing else. */
static void already_on_vfio_without_its_override_gets_it(void)
{
    setup();
    ptk_device(root, "0000:03:00.0", E1000E, "vfio-pci");
    char *driver = NULL;
    CHECK_RC(pcibind_bind(ctx, "0000:03:00.0", "vfio-pci", 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "vfio-pci");
    pcibind_string_free(driver);
    expect_log("bus/pci/devices/0000:03:00.0/driver_override\tvfio-pci\tok\n");
    /* With it, nothing at all. */
    ptk_write(root, "write.log", "");
    CHECK_RC(pcibind_bind(ctx, "0000:03:00.0", "vfio-pci", 0, NULL), PCIBIND_OK);
    expect_log("");
    teardown();
}

/* reattach(NULL) with no readable alias tables cannot know that no host driver matches: a
 * device no driver takes is a failure, restored onto vfio-pci (0.2 reported success with the
 * device on no driver). */
static void reattach_without_tables_never_strands_the_device(void)
{
    setup();
    ptk_device(root, "0000:03:00.0", "pci:v00001234d00005678sv00000000sd00000000bc02sc00i00",
               NULL);
    CHECK_RC(pcibind_bind(ctx, "0000:03:00.0", "vfio-pci", PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    char *nowhere = ptk_path(root, "no-such-modules-dir");
    CHECK_RC(pcibind_ctx_set_modules_dir(ctx, nowhere), PCIBIND_OK);
    free(nowhere);
    CHECK_RC(pcibind_reattach(ctx, "0000:03:00.0", NULL, 0, NULL), PCIBIND_ERR_BIND);
    CHECK_CONTAINS(pcibind_last_error_message(), "restored");
    expect_bound("0000:03:00.0", "vfio-pci");
    expect_override("0000:03:00.0", "vfio-pci");
    teardown();
}

/* A device on its host driver with an override set (driverctl's set-override): reattach with no
 * name clears the override and nothing else; the NIC does not flap. */
static void reattach_at_home_with_an_override_only_clears_it(void)
{
    setup();
    nic_carries_the_hosts_traffic();
    ptk_write(root, "devices/pci0000:00/" NIC "/driver_override", "e1000e\n");
    char *driver = NULL;
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "e1000e");
    pcibind_string_free(driver);
    expect_log("bus/pci/devices/" NIC "/driver_override\t\\n\tok\n");
    expect_override(NIC, "(null)");
    teardown();
}

/* A host driver forced onto a device it does not claim (`nvme` on a NIC binds on 6.1) is no
 * home: reattach with no name reprobes, and the NIC's own driver takes it. */
static void reattach_from_a_forced_foreign_driver_reprobes(void)
{
    setup();
    ptk_loaded_driver(root, "nvme", "nvme");
    CHECK_RC(pcibind_bind(ctx, NIC, "nvme", PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    expect_bound(NIC, "nvme");
    char *driver = NULL;
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "e1000e");
    pcibind_string_free(driver);
    expect_bound(NIC, "e1000e");
    expect_override(NIC, "(null)");
    teardown();
}

/* A process holding the group node (or the cdev) of a device on vfio-pci: a VMM. Every move off
 * vfio-pci is refused, naming it (the kernel's unbind would wait until it lets go: forever, if
 * its guest does not answer); forced, it goes. Found as fuser finds it: the process's fd links
 * (here a fake proc root's). */
static void a_device_a_vmm_holds_is_not_taken_from_it(void)
{
    setup();
    ptk_mkdirs(root, "dev/vfio/devices");
    char *dev = ptk_path(root, "dev");
    CHECK_RC(pcibind_ctx_set_dev_root(ctx, dev), PCIBIND_OK);
    free(dev);
    ptk_iommu_group(root, 7, NIC);
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_OK);
    char *node = ptk_path(root, "dev/vfio/7");
    ptk_mkdirs(root, "proc/4242/fd");
    ptk_write(root, "proc/4242/comm", "qemu-system-x86\n");
    ptk_symlink(root, "proc/4242/fd/12", node);
    ptk_write(root, "write.log", "");
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "held by a VMM: process 4242 (qemu-system-x86)");
    CHECK_CONTAINS(pcibind_last_error_message(), node);
    CHECK_RC(pcibind_reattach(ctx, NIC, "e1000e", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_RC(pcibind_bind(ctx, NIC, "e1000e", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_RC(pcibind_unbind(ctx, NIC, 0), PCIBIND_ERR_IN_USE);
    CHECK_RC(pcibind_reattach_group(ctx, NIC, 0, NULL), PCIBIND_ERR_IN_USE);
    expect_log("");
    expect_bound(NIC, "vfio-pci");
    /* Binding it to vfio-pci again moves nothing and looks at no process. */
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_OK);
    /* Through the cdev as well. */
    char *link = ptk_path(root, "proc/4242/fd/12");
    unlink(link);
    char *cdev = ptk_path(root, "dev/vfio/devices/vfio0");
    CHECK(symlink(cdev, link) == 0);
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "vfio/devices/vfio0");
    /* The VMM gone, it goes home. */
    unlink(link);
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    expect_bound(NIC, "e1000e");
    /* Forced, a held device is moved (the docs say the kernel then waits for the VMM). */
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_OK);
    CHECK(symlink(node, link) == 0);
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    expect_bound(NIC, "e1000e");
    free(link);
    free(cdev);
    free(node);
    teardown();
}

/* Forced off vfio-pci while a VMM holds it: the kernel's unbind waits for the VMM (the shim's
 * fake_vmm_holds), and the call stops waiting at the lock timeout, never hanging: it fails
 * saying the unbind is pending, keeps the record, and the device's lock stays taken until the
 * kernel is done (another call gets PCIBIND_ERR_BUSY, not a hang). Once the VMM lets go, the
 * next call puts the device back where it started. */
static void a_forced_move_off_a_held_device_waits_a_bounded_time(void)
{
    setup();
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_OK);
    ptk_write(root, "devices/pci0000:00/" NIC "/fake_vmm_holds", "");
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 300), PCIBIND_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, PCIBIND_BIND_FORCE, NULL), PCIBIND_ERR_IN_USE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(waited >= 0.3 && waited < 5.0);
    CHECK_CONTAINS(pcibind_last_error_message(), "waiting for the process that holds the device");
    /* The lock stays taken while the kernel waits: another call is told so, at once. */
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 0), PCIBIND_OK);
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_ERR_BUSY);
    /* The VMM lets go: the unbind completes, the lock is free, and the next call rolls the
     * device back to its start (on vfio-pci), the forced move's caller having been told it
     * failed. */
    char *marker = ptk_path(root, "devices/pci0000:00/" NIC "/fake_vmm_holds");
    unlink(marker);
    free(marker);
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 5000), PCIBIND_OK);
    char **recovered = NULL;
    CHECK_RC(pcibind_recover(ctx, NIC, 0, &recovered), PCIBIND_OK);
    CHECK(recovered && recovered[0] && !strcmp(recovered[0], NIC));
    pcibind_strv_free(recovered);
    expect_bound(NIC, "vfio-pci");
    expect_override(NIC, "vfio-pci");
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    expect_bound(NIC, "e1000e");
    teardown();
}

RUN_TESTS(TEST_CASE(a_forced_move_off_a_held_device_waits_a_bounded_time),
          TEST_CASE(a_device_a_vmm_holds_is_not_taken_from_it),
          TEST_CASE(reattach_from_a_forced_foreign_driver_reprobes),
          TEST_CASE(named_reattach_refuses_what_bind_refuses),
          TEST_CASE(unbind_of_an_in_use_nic_is_refused_unless_forced),
          TEST_CASE(pf_with_a_vf_on_vfio_stays_on_its_driver),
          TEST_CASE(removing_a_vf_the_host_uses_is_refused),
          TEST_CASE(already_on_vfio_without_its_override_gets_it),
          TEST_CASE(reattach_without_tables_never_strands_the_device),
          TEST_CASE(reattach_at_home_with_an_override_only_clears_it))
