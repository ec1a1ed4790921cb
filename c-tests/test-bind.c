/* Binding as a transaction (SPEC 3.3-3.5) through the C API, with the kernel-emulation shim
 * preloaded: every scenario asserts the final sysfs state (driver link, driver_override) and
 * the writes made, not only the return code. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "testctx.h"

static char *root;
static pcibind_ctx *ctx;

static const char *const MLX5_VF = "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00";
static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
static const char *const VIRTIO_NET = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00";
static const char *const NVME = "pci:v00008086d0000F1A8sv00008086sd0000390Bbc01sc08i02";


/* A tree with the real Ubuntu 6.8 alias tables, host drivers whose ID tables match their
 * devices, vfio-pci loaded, and a context using the fake modprobe, lock and proc dirs in it. */
static void setup(void)
{
    root = ptk_new();
    warnings[0] = '\0';
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_loaded_driver(root, "mlx5_core", "mlx5_core");
    ptk_driver_ids(root, "mlx5_core", "pci:v000015B3d0000101Esv*sd*bc*sc*i*");
    ptk_loaded_driver(root, "e1000e", "e1000e");
    ptk_driver_ids(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
    char *dir = NULL;
    CHECK(asprintf(&dir, "%s/kernel-6.8.0-151-generic", getenv("PCIBIND_TEST_DATA")) > 0);
    ctx = test_context(root, root, getenv("FAKE_MODPROBE"), dir);
    free(dir);
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, capture_warnings, NULL, LOG_WARNING), PCIBIND_OK);
}

static void teardown(void)
{
    pcibind_ctx_free(ctx);
    ctx = NULL;
    ptk_destroy(root);
    root = NULL;
}

static void expect_override(const char *bdf, const char *expected)
{
    char *value = ptk_override(root, bdf);
    CHECK_STR(value, expected);
    free(value);
}

static void expect_bound(const char *bdf, const char *driver)
{
    if (!ptk_is_bound_to(root, bdf, driver)) {
        printf("#   %s is not bound to %s\n", bdf, driver ? driver : "(no driver)");
        harness_failed_now = 1;
    }
}

static void expect_nothing_written(void)
{
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
}

static void expect_bind(const char *bdf, const char *name, unsigned flags, const char *driver)
{
    char *out = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_bind(ctx, bdf, name, flags, &out), PCIBIND_OK);
    CHECK_STR(out, driver);
    free(out);
    expect_bound(bdf, driver);
}

static int vfio_bound(const char *bdf)
{
    int result = -1;
    CHECK_RC(pcibind_is_vfio_bound(ctx, bdf, &result), PCIBIND_OK);
    return result;
}

/* --- the basic moves --- */

static void unbound_device_to_vfio_pci(void)
{
    setup();
    ptk_device(root, "0000:01:00.0", VIRTIO_NET, NULL);
    CHECK(vfio_bound("0000:01:00.0") == 0);
    expect_bind("0000:01:00.0", "vfio-pci", 0, "vfio-pci");
    expect_override("0000:01:00.0", "vfio-pci"); /* kept, so a reprobe keeps it there */
    char *vfio_dev = ptk_path(root, "devices/pci0000:00/0000:01:00.0/vfio-dev");
    CHECK(access(vfio_dev, F_OK) == 0);
    free(vfio_dev);
    CHECK(vfio_bound("0000:01:00.0") == 1);
    teardown();
}

static void host_device_to_vfio_pci_and_back(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    expect_bind("0000:02:00.0", "vfio-pci", 0, "vfio-pci");
    char *log = ptk_write_log(root);
    /* Override first, then unbind, then probe: never an unbound moment without the override. */
    char *o = strstr(log, "driver_override"), *u = strstr(log, "e1000e/unbind"),
         *p = strstr(log, "drivers_probe");
    CHECK(o && u && p && o < u && u < p);
    free(log);

    char *driver = NULL;
    CHECK_RC(pcibind_reattach(ctx, "0000:02:00.0", NULL, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "e1000e");
    free(driver);
    expect_bound("0000:02:00.0", "e1000e");
    expect_override("0000:02:00.0", "(null)");
    CHECK(vfio_bound("0000:02:00.0") == 0);
    teardown();
}

static void bind_by_module_name_loads_it(void)
{
    setup();
    ptk_device(root, "0000:01:00.0", VIRTIO_NET, NULL);
    /* A module name whose driver has another spelling. */
    expect_bind("0000:01:00.0", "vfio_pci", 0, "vfio-pci");
    teardown();

    setup();
    ptk_device(root, "0000:03:00.0", "pci:v00008086d0000E20Bsv00008086sd00001100bc03sc00i00", NULL);
    ptk_modprobe_table(root, "xe_vfio_pci xe-vfio-pci vfio");
    /* Not in the 6.8 tables, so the claim check cannot tell and allows it (with a warning). */
    expect_bind("0000:03:00.0", "xe_vfio_pci", 0, "xe-vfio-pci");
    char *log = ptk_modprobe_log(root);
    CHECK_CONTAINS(log, "[-b] [xe_vfio_pci]");
    free(log);
    CHECK(vfio_bound("0000:03:00.0") == 1);
    teardown();
}

static void null_name_picks_the_variant(void)
{
    setup();
    ptk_device(root, "0000:3b:00.2", MLX5_VF, "mlx5_core");
    ptk_modprobe_table(root, "mlx5_vfio_pci mlx5_vfio_pci vfio");
    expect_bind("0000:3b:00.2", NULL, 0, "mlx5_vfio_pci");
    expect_override("0000:3b:00.2", "mlx5_vfio_pci");
    CHECK(vfio_bound("0000:3b:00.2") == 1);
    teardown();
}

static void null_name_without_variant_gets_vfio_pci(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    expect_bind("0000:02:00.0", NULL, 0, "vfio-pci");
    teardown();
}

static void variant_that_will_not_load_falls_back_to_vfio_pci(void)
{
    setup();
    ptk_device(root, "0000:3b:00.2", MLX5_VF, "mlx5_core");
    ptk_modprobe_table(root, "mlx5_vfio_pci !modprobe: ERROR: could not insert 'mlx5_vfio_pci': Operation not permitted");
    expect_bind("0000:3b:00.2", NULL, 0, "vfio-pci");
    CHECK_CONTAINS(warnings, "falling back to vfio-pci");
    teardown();
}

static void already_on_target_writes_nothing(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    expect_bind("0000:02:00.0", "e1000e", 0, "e1000e");
    expect_nothing_written();
    teardown();
}

/* --- failures and rollback --- */

static void probe_failure_restores_driver_and_override(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    ptk_fault(root, "probe:vfio-pci ENODEV");
    char *out = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "vfio-pci", 0, &out), PCIBIND_ERR_BIND);
    CHECK(out == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "the kernel did not bind vfio-pci");
    CHECK_CONTAINS(pcibind_last_error_message(), "restored (bound to e1000e, driver_override unset)");
    expect_bound("0000:02:00.0", "e1000e");
    expect_override("0000:02:00.0", "(null)");
    teardown();
}

static void probe_and_rebind_failing_is_a_restore_error(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    ptk_fault(root, "probe:vfio-pci ENODEV");
    ptk_fault(root, "probe:e1000e EIO");
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_RESTORE);
    const char *msg = pcibind_last_error_message();
    CHECK_CONTAINS(msg, "restoring failed");
    CHECK_CONTAINS(msg, "the kernel did not bind e1000e");
    /* The message states the real state, which is: unbound, override cleared. */
    CHECK_CONTAINS(msg, "the device is now bound to no driver, driver_override unset");
    expect_bound("0000:02:00.0", NULL);
    expect_override("0000:02:00.0", "(null)");
    teardown();
}

static void unbind_ebusy_changes_nothing(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    ptk_fault(root, "bus/pci/drivers/e1000e/unbind EBUSY");
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_BIND);
    CHECK(pcibind_last_error_errno() == EBUSY);
    CHECK_CONTAINS(pcibind_last_error_message(), "unbinding from e1000e failed");
    expect_bound("0000:02:00.0", "e1000e");
    expect_override("0000:02:00.0", "(null)");
    teardown();
}

static void device_removed_mid_transaction(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    ptk_fault(root, "vanish:0000:02:00.0 after-unbind");
    /* A device that is gone is not stranded (SPEC 3.13): no false PCIBIND_ERR_RESTORE, and
     * nothing more is written for it. */
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_NO_DEVICE);
    CHECK_CONTAINS(pcibind_last_error_message(), "disappeared during the operation");
    /* The write that found it gone was the last: no restore was tried. */
    char *log = ptk_write_log(root);
    char *after = strstr(log, "drivers_probe");
    CHECK(after && strstr(after, "driver_override") == NULL);
    free(log);
    char *dummy = NULL;
    CHECK_RC(pcibind_current_driver(ctx, "0000:02:00.0", &dummy), PCIBIND_ERR_NO_DEVICE);
    teardown();
}

static void someone_elses_override_is_restored(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    ptk_write(root, "devices/pci0000:00/0000:02:00.0/driver_override", "e1000e\n");
    ptk_fault(root, "probe:vfio-pci ENODEV");
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_BIND);
    expect_bound("0000:02:00.0", "e1000e");
    expect_override("0000:02:00.0", "e1000e");
    teardown();
}

static void override_write_eio_restores(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    ptk_fault(root, "bus/pci/devices/0000:02:00.0/driver_override EIO 1");
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_BIND);
    CHECK(pcibind_last_error_errno() == EIO);
    expect_bound("0000:02:00.0", "e1000e");
    expect_override("0000:02:00.0", "(null)");
    teardown();
}

/* --- safety checks --- */

static void in_use_netdev_is_refused_unless_forced(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    nic_carries_the_hosts_traffic_in(root, "0000:02:00.0");
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "network interface eth0 is up");
    expect_nothing_written();
    expect_bind("0000:02:00.0", "vfio-pci", PCIBIND_BIND_FORCE, "vfio-pci");
    teardown();
}

static void netdev_with_only_a_link_local_address_is_not_in_use(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    ptk_mkdirs(root, "devices/pci0000:00/0000:02:00.0/net/eth0");
    ptk_write(root, "devices/pci0000:00/0000:02:00.0/net/eth0/flags", "0x1003\n");
    /* Up, but only a link-local IPv6 address: not in use. */
    ptk_write(root, "proc/net/if_inet6", "fe800000000000000000000000000001 02 40 20 80 eth0\n");
    expect_bind("0000:02:00.0", "vfio-pci", 0, "vfio-pci");
    teardown();
}

/* An NVMe disk nvme0n1 under the device at 0000:04:00.0, as sysfs shows one: a directory whose
 * `subsystem` link names `block`, with its `dev` number and `holders/`. */
static void add_nvme_disk(const char *holder)
{
    const char *disk = "devices/pci0000:00/0000:04:00.0/nvme/nvme0/nvme0n1";
    char rel[256];
    ptk_mkdirs(root, disk);
    snprintf(rel, sizeof(rel), "%s/subsystem", disk);
    ptk_symlink(root, rel, "../../../../../../class/block");
    snprintf(rel, sizeof(rel), "%s/dev", disk);
    ptk_write(root, rel, "259:0\n");
    snprintf(rel, sizeof(rel), "%s/holders/%s", disk, holder ? holder : "");
    ptk_mkdirs(root, rel);
}

static void mounted_block_device_is_refused_unless_forced(void)
{
    setup();
    ptk_loaded_driver(root, "nvme", "nvme");
    ptk_driver_ids(root, "nvme", "pci:v*d*sv*sd*bc01sc08i02");
    ptk_device(root, "0000:04:00.0", NVME, "nvme");
    add_nvme_disk(NULL);
    ptk_write(root, "proc/self/mountinfo",
              "29 1 259:0 / / rw,relatime shared:1 - ext4 /dev/nvme0n1 rw\n");
    CHECK_RC(pcibind_bind(ctx, "0000:04:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "block device nvme0n1 is mounted on /");
    expect_nothing_written();
    expect_bind("0000:04:00.0", "vfio-pci", PCIBIND_BIND_FORCE, "vfio-pci");
    teardown();
}

static void held_block_device_is_refused(void)
{
    setup();
    ptk_loaded_driver(root, "nvme", "nvme");
    ptk_device(root, "0000:04:00.0", NVME, "nvme");
    add_nvme_disk("dm-0");
    CHECK_RC(pcibind_bind(ctx, "0000:04:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "held by dm-0");
    expect_nothing_written();
    teardown();
}

static void pf_with_vfs_is_refused_for_vfio_unless_forced(void)
{
    setup();
    ptk_device(root, "0000:3b:00.0", "pci:v000015B3d00001017sv000015B3sd00000020bc02sc00i00", "mlx5_core");
    ptk_write(root, "devices/pci0000:00/0000:3b:00.0/sriov_numvfs", "4\n");
    CHECK_RC(pcibind_bind(ctx, "0000:3b:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "4 VFs enabled");
    expect_nothing_written();
    expect_bind("0000:3b:00.0", "vfio-pci", PCIBIND_BIND_FORCE, "vfio-pci");
    teardown();
}

static void driver_that_does_not_claim_is_refused(void)
{
    setup();
    ptk_loaded_driver(root, "iavf", "iavf");
    ptk_device(root, "0000:3b:00.2", MLX5_VF, "mlx5_core");
    CHECK_RC(pcibind_bind(ctx, "0000:3b:00.2", "iavf", 0, NULL), PCIBIND_ERR_NOT_CLAIMED);
    CHECK_CONTAINS(pcibind_last_error_message(), "no pci: alias of module iavf matches");
    expect_nothing_written();
    expect_bound("0000:3b:00.2", "mlx5_core");

    /* Forced: the override makes the kernel probe iavf anyway. */
    expect_bind("0000:3b:00.2", "iavf", PCIBIND_BIND_FORCE, "iavf");
    /* A named reattach brings it back to its host driver. */
    char *driver = NULL;
    CHECK_RC(pcibind_reattach(ctx, "0000:3b:00.2", "mlx5_core", 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "mlx5_core");
    free(driver);
    expect_bound("0000:3b:00.2", "mlx5_core");
    expect_override("0000:3b:00.2", "(null)");
    teardown();
}

static void variant_that_does_not_claim_is_refused(void)
{
    setup();
    ptk_vfio_driver(root, "mlx5_vfio_pci", "mlx5_vfio_pci");
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "mlx5_vfio_pci", 0, NULL), PCIBIND_ERR_NOT_CLAIMED);
    CHECK_CONTAINS(pcibind_last_error_message(), "no vfio_pci: alias of module mlx5_vfio_pci");
    expect_nothing_written();
    teardown();
}

/* --- unbind, dry run, groups --- */

static void unbind_leaves_device_unbound_and_ungrabbable(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    CHECK_RC(pcibind_unbind(ctx, "0000:02:00.0", 0), PCIBIND_OK);
    expect_bound("0000:02:00.0", NULL);
    expect_override("0000:02:00.0", "none");
    /* A later probe (e1000e's ID table matches) must not grab it. */
    char *probe = ptk_path(root, "bus/pci/drivers_probe");
    int fd = open(probe, O_WRONLY);
    CHECK(fd >= 0 && write(fd, "0000:02:00.0", 12) == 12);
    if (fd >= 0)
        close(fd);
    free(probe);
    expect_bound("0000:02:00.0", NULL);
    /* reattach brings it back. */
    CHECK_RC(pcibind_reattach(ctx, "0000:02:00.0", NULL, 0, NULL), PCIBIND_OK);
    expect_bound("0000:02:00.0", "e1000e");
    CHECK_RC(pcibind_unbind(ctx, "0000:02:00.0", PCIBIND_BIND_DRY_RUN), PCIBIND_ERR_INVALID_ARG);
    teardown();
}

static void reattach_of_a_device_no_host_driver_matches(void)
{
    setup();
    ptk_device(root, "0000:05:00.0", "pci:v0000FFFEd0000FFFEsv00000000sd00000000bcFFscFFi00", NULL);
    expect_bind("0000:05:00.0", "vfio-pci", PCIBIND_BIND_FORCE, "vfio-pci");
    char *driver = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_reattach(ctx, "0000:05:00.0", NULL, 0, &driver), PCIBIND_OK);
    CHECK(driver == NULL);
    expect_bound("0000:05:00.0", NULL);
    expect_override("0000:05:00.0", "(null)");
    teardown();
}

static void dry_run_touches_nothing(void)
{
    setup();
    ptk_device(root, "0000:3b:00.2", MLX5_VF, "mlx5_core");
    ptk_modprobe_table(root, "mlx5_vfio_pci mlx5_vfio_pci vfio");
    char *plan = NULL;
    CHECK_RC(pcibind_bind_plan(ctx, "0000:3b:00.2", NULL, 0, &plan), PCIBIND_OK);
    CHECK_CONTAINS(plan, "choose mlx5_vfio_pci");
    CHECK_CONTAINS(plan, "-b mlx5_vfio_pci");
    CHECK_CONTAINS(plan, "mlx5_core/unbind");
    CHECK_CONTAINS(plan, "drivers_probe");
    free(plan);
    char *driver = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_bind(ctx, "0000:3b:00.2", "vfio-pci", PCIBIND_BIND_DRY_RUN, &driver), PCIBIND_OK);
    CHECK_STR(driver, "vfio-pci");
    free(driver);
    expect_nothing_written();
    char *log = ptk_modprobe_log(root);
    CHECK_STR(log, "");
    free(log);
    expect_bound("0000:3b:00.2", "mlx5_core");
    teardown();
}

/* --- from vfio-pci, reattach, dry run --- */

/* A NIC as a manager leaves it after detaching: moved onto vfio-pci by the library (so the shim
 * made its vfio-dev/), override "vfio-pci"; write.log emptied afterwards. */
static void detached_nic(const char *bdf)
{
    ptk_device(root, bdf, E1000E, "e1000e");
    expect_bind(bdf, "vfio-pci", 0, "vfio-pci");
    ptk_write(root, "write.log", "");
}

static void expect_back_on_vfio_pci(const char *bdf)
{
    expect_bound(bdf, "vfio-pci");
    expect_override(bdf, "vfio-pci");
    CHECK(vfio_bound(bdf) == 1);
}

static void failed_move_off_vfio_pci_comes_back_to_it(void)
{
    setup();
    detached_nic("0000:02:00.0");
    ptk_fault(root, "probe:e1000e ENODEV");
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "e1000e", 0, NULL), PCIBIND_ERR_BIND);
    CHECK_CONTAINS(pcibind_last_error_message(),
                   "the device was restored (bound to vfio-pci, driver_override 'vfio-pci')");
    expect_back_on_vfio_pci("0000:02:00.0");
    /* Back through the override: vfio-pci/bind was never written (the kernel refuses it). */
    char *log = ptk_write_log(root);
    CHECK(strstr(log, "vfio-pci/bind") == NULL);
    free(log);
    teardown();
}

static void failed_reattach_from_vfio_pci_comes_back_to_it(void)
{
    setup();
    detached_nic("0000:02:00.0");
    ptk_fault(root, "probe:e1000e ENODEV");
    char *driver = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_reattach(ctx, "0000:02:00.0", NULL, 0, &driver), PCIBIND_ERR_BIND);
    CHECK(driver == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "reattaching to the host driver");
    expect_back_on_vfio_pci("0000:02:00.0");

    ptk_fault(root, "probe:e1000e ENODEV");
    CHECK_RC(pcibind_reattach(ctx, "0000:02:00.0", "e1000e", 0, NULL), PCIBIND_ERR_BIND);
    CHECK_CONTAINS(pcibind_last_error_message(), "the kernel did not bind e1000e");
    expect_back_on_vfio_pci("0000:02:00.0");
    teardown();
}

static void reattach_of_a_device_on_its_host_driver_writes_nothing(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    const char *names[] = {NULL, "e1000e"};
    for (size_t i = 0; i < 2; i++) {
        char *driver = NULL;
        CHECK_RC(pcibind_reattach(ctx, "0000:02:00.0", names[i], 0, &driver), PCIBIND_OK);
        CHECK_STR(driver, "e1000e");
        free(driver);
    }
    expect_nothing_written();
    expect_override("0000:02:00.0", "(null)");
    teardown();
}

static void reattach_to_the_vfio_driver_it_is_on_writes_nothing(void)
{
    setup();
    detached_nic("0000:02:00.0");
    const char *names[] = {"vfio-pci", "vfio_pci"};
    for (size_t i = 0; i < 2; i++) {
        char *driver = NULL;
        CHECK_RC(pcibind_reattach(ctx, "0000:02:00.0", names[i], 0, &driver), PCIBIND_OK);
        CHECK_STR(driver, "vfio-pci");
        free(driver);
    }
    expect_nothing_written();
    expect_back_on_vfio_pci("0000:02:00.0");
    teardown();
}

static void named_reattach_to_a_host_driver_clears_the_override(void)
{
    setup();
    detached_nic("0000:02:00.0");
    char *driver = NULL;
    CHECK_RC(pcibind_reattach(ctx, "0000:02:00.0", "e1000e", 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "e1000e");
    free(driver);
    expect_bound("0000:02:00.0", "e1000e");
    expect_override("0000:02:00.0", "(null)");

    /* On e1000e with the override naming it (as a bind leaves it): only the override goes,
     * the NIC is not unbound. */
    ptk_write(root, "devices/pci0000:00/0000:02:00.0/driver_override", "e1000e\n");
    ptk_write(root, "write.log", "");
    CHECK_RC(pcibind_reattach(ctx, "0000:02:00.0", "e1000e", 0, NULL), PCIBIND_OK);
    char *log = ptk_write_log(root);
    CHECK_CONTAINS(log, "driver_override");
    CHECK(strstr(log, "unbind") == NULL && strstr(log, "drivers_probe") == NULL);
    free(log);
    expect_bound("0000:02:00.0", "e1000e");
    expect_override("0000:02:00.0", "(null)");
    teardown();
}

static void named_reattach_to_a_driver_that_does_not_claim_keeps_the_override(void)
{
    setup();
    ptk_loaded_driver(root, "iavf", "iavf");
    ptk_device(root, "0000:3b:00.2", MLX5_VF, "mlx5_core");
    /* iavf does not claim an mlx5 VF: refused as bind refuses it (0.3), nothing written... */
    CHECK_RC(pcibind_reattach(ctx, "0000:3b:00.2", "iavf", 0, NULL), PCIBIND_ERR_NOT_CLAIMED);
    expect_nothing_written();
    expect_bound("0000:3b:00.2", "mlx5_core");
    /* ...and forced, only the override keeps it there after a reprobe. */
    CHECK_RC(pcibind_reattach(ctx, "0000:3b:00.2", "iavf", PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    expect_bound("0000:3b:00.2", "iavf");
    expect_override("0000:3b:00.2", "iavf");
    teardown();
}

static void reattach_with_no_name_loads_the_host_module_first(void)
{
    setup();
    /* An NVMe controller: the 6.8 tables name nvme, which is not loaded yet. */
    ptk_device(root, "0000:04:00.0", NVME, NULL);
    expect_bind("0000:04:00.0", "vfio-pci", 0, "vfio-pci");
    ptk_modprobe_table(root, "nvme nvme ids=pci:v*d*sv*sd*bc01sc08i02");
    char *driver = NULL;
    CHECK_RC(pcibind_reattach(ctx, "0000:04:00.0", NULL, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "nvme");
    free(driver);
    expect_bound("0000:04:00.0", "nvme");
    expect_override("0000:04:00.0", "(null)");
    char *log = ptk_modprobe_log(root);
    CHECK_CONTAINS(log, "[-b] [nvme]");
    free(log);
    teardown();
}

static void unbind_of_an_unbound_device_kept_so_writes_nothing(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    CHECK_RC(pcibind_unbind(ctx, "0000:02:00.0", 0), PCIBIND_OK);
    ptk_write(root, "write.log", "");
    CHECK_RC(pcibind_unbind(ctx, "0000:02:00.0", 0), PCIBIND_OK);
    expect_nothing_written();
    expect_bound("0000:02:00.0", NULL);
    expect_override("0000:02:00.0", "none");
    teardown();
}

/* A tree whose vfio-pci is not loaded yet: the fake modprobe would register it. */
static void setup_without_vfio_pci(void)
{
    root = ptk_new();
    warnings[0] = '\0';
    ptk_loaded_driver(root, "e1000e", "e1000e");
    ptk_driver_ids(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
    ptk_modprobe_table(root, "vfio_pci vfio-pci vfio");
    char *dir = NULL;
    CHECK(asprintf(&dir, "%s/kernel-6.8.0-151-generic", getenv("PCIBIND_TEST_DATA")) > 0);
    ctx = test_context(root, root, getenv("FAKE_MODPROBE"), dir);
    free(dir);
}

static char plan_lines[8192];
static int plan_messages, plan_messages_with_newline;
static void capture_plan(void *userdata, int priority, const char *message)
{
    (void)userdata;
    if (priority != LOG_NOTICE)
        return;
    plan_messages++;
    plan_messages_with_newline += strchr(message, '\n') != NULL;
    size_t len = strlen(plan_lines);
    snprintf(plan_lines + len, sizeof(plan_lines) - len, "%s\n", message);
}

static void dry_run_before_the_module_is_loaded_checks_and_loads_nothing(void)
{
    setup_without_vfio_pci();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    plan_lines[0] = '\0';
    plan_messages = plan_messages_with_newline = 0;
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, capture_plan, NULL, LOG_NOTICE), PCIBIND_OK);

    /* Not in use: success, no driver known yet, the plan says what would be loaded. */
    char *driver = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", NULL, PCIBIND_BIND_DRY_RUN, &driver), PCIBIND_OK);
    CHECK(driver == NULL);
    CHECK_CONTAINS(plan_lines, "-b vfio_pci");
    CHECK_CONTAINS(plan_lines, "safety checks passed");
    CHECK_CONTAINS(plan_lines, "<the PCI driver of module vfio_pci>");
    CHECK_CONTAINS(plan_lines, "e1000e/unbind");
    CHECK_CONTAINS(plan_lines, "on failure, restore");
    CHECK(plan_messages > 5);
    CHECK(plan_messages_with_newline == 0);

    /* In use: refused exactly as the real bind would refuse it. */
    nic_carries_the_hosts_traffic_in(root, "0000:02:00.0");
    char *plan = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_bind_plan(ctx, "0000:02:00.0", "vfio-pci", 0, &plan), PCIBIND_ERR_IN_USE);
    CHECK(plan == NULL);
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", NULL, PCIBIND_BIND_DRY_RUN, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "network interface eth0 is up");

    expect_nothing_written();
    char *log = ptk_modprobe_log(root);
    CHECK_STR(log, "");
    free(log);
    char *module = ptk_path(root, "module/vfio_pci");
    CHECK(access(module, F_OK) != 0);
    free(module);
    teardown();
}

static void dry_run_claim_check_needs_no_module_load(void)
{
    setup_without_vfio_pci();
    ptk_modprobe_table(root, "nvme nvme");
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    /* nvme is not loaded, but the tables say it does not claim the NIC. */
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "nvme", PCIBIND_BIND_DRY_RUN, NULL),
             PCIBIND_ERR_NOT_CLAIMED);
    CHECK_CONTAINS(pcibind_last_error_message(), "no pci: alias of module nvme matches");
    char *log = ptk_modprobe_log(root);
    CHECK_STR(log, "");
    free(log);
    teardown();
}

/* The plan is the step list the bind runs: every write the real bind makes is in the plan. */
static void dry_run_plan_names_every_write_the_bind_makes(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    char *plan = NULL;
    CHECK_RC(pcibind_bind_plan(ctx, "0000:02:00.0", "vfio-pci", 0, &plan), PCIBIND_OK);
    expect_bind("0000:02:00.0", "vfio-pci", 0, "vfio-pci");
    char *log = ptk_write_log(root);
    char *save = NULL;
    int writes = 0;
    for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        /* write.log: "PATH<TAB>VALUE<TAB>RESULT": the plan names each path (under the root). */
        char *tab = strchr(line, '\t');
        if (tab)
            *tab = '\0';
        CHECK_CONTAINS(plan, line);
        writes++;
    }
    CHECK(writes == 3);
    free(log);
    free(plan);
    teardown();
}

static void iommu_group_with_bridge_and_blocking_sibling(void)
{
    setup();
    ptk_loaded_driver(root, "snd_hda_intel", "snd_hda_intel");
    ptk_builtin_driver(root, "pcieport", "pcieportdrv");
    ptk_device(root, "0000:00:01.0", "pci:v00008086d00001901sv00000000sd00000000bc06sc04i00", "pcieport");
    ptk_device(root, "0000:01:00.0", "pci:v000010DEd00002204sv00001462sd00003880bc03sc00i00", NULL);
    ptk_device(root, "0000:01:00.1", "pci:v000010DEd00001AEFsv00001462sd00003880bc04sc03i00", "snd_hda_intel");
    static const char *const members[] = {"0000:00:01.0", "0000:01:00.0", "0000:01:00.1"};
    for (size_t i = 0; i < 3; i++)
        ptk_iommu_group(root, 1, members[i]);
    char **list = (char **)(uintptr_t)0x1;
    CHECK_RC(pcibind_iommu_group_members(ctx, "0000:01:00.0", &list), PCIBIND_OK);
    CHECK(list != NULL && list[0] && list[1] && list[2] && !list[3]);
    if (list && list[0] && list[1] && list[2]) {
        CHECK_STR(list[0], "0000:00:01.0");
        CHECK_STR(list[1], "0000:01:00.0");
        CHECK_STR(list[2], "0000:01:00.1");
    }
    pcibind_strv_free(list);

    int viable = -1;
    char *reason = NULL;
    CHECK_RC(pcibind_iommu_group_viable(ctx, "0000:01:00.0", 0, &viable, &reason), PCIBIND_OK);
    CHECK(viable == 0);
    CHECK_CONTAINS(reason, "0000:01:00.1 (bound to snd_hda_intel)");
    CHECK(reason && !strstr(reason, "00:01.0"));
    free(reason);

    expect_bind("0000:01:00.1", "vfio-pci", 0, "vfio-pci");
    reason = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_iommu_group_viable(ctx, "0000:01:00.0", 0, &viable, &reason), PCIBIND_OK);
    CHECK(viable == 1);
    CHECK(reason == NULL);

    /* A device without a group. */
    ptk_device(root, "0000:06:00.0", E1000E, NULL);
    list = (char **)(uintptr_t)0x1;
    CHECK_RC(pcibind_iommu_group_members(ctx, "0000:06:00.0", &list), PCIBIND_ERR_IO);
    CHECK(list == NULL);
    CHECK(pcibind_last_error_errno() == ENOENT);
    teardown();
}

/* ProtectKernelModules=yes: no modules.alias can be read. The kernel's variants are still known
 * as VFIO drivers (the library ships their names), and vfio-dev/ marks any VFIO-bound device. */

static void without_tables(void)
{
    char *none = ptk_path(root, "no-modules-here");
    CHECK_RC(pcibind_ctx_set_modules_dir(ctx, none), PCIBIND_OK);
    free(none);
}

static void variants_are_vfio_drivers_without_tables(void)
{
    setup();
    without_tables();
    /* A variant of the kernel's (driver spelled with a dash) on a kernel without vfio-dev/. */
    ptk_loaded_driver(root, "xe_vfio_pci", "xe-vfio-pci");
    ptk_device(root, "0000:03:00.0", "pci:v00008086d0000E20Bsv00008086sd00001100bc03sc00i00",
               "xe-vfio-pci");
    CHECK(vfio_bound("0000:03:00.0") == 1);
    /* A variant no one knows by name, on a kernel with vfio-dev/. */
    ptk_loaded_driver(root, "acme_vfio_pci", "acme_vfio_pci");
    ptk_device(root, "0000:03:00.1", "pci:v00001234d00005678sv00001234sd00000001bc12sc00i00",
               "acme_vfio_pci");
    ptk_mkdirs(root, "devices/pci0000:00/0000:03:00.1/vfio-dev/vfio7");
    CHECK(vfio_bound("0000:03:00.1") == 1);
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    CHECK(vfio_bound("0000:02:00.0") == 0);

    ptk_iommu_group(root, 3, "0000:03:00.0");
    ptk_iommu_group(root, 3, "0000:03:00.1");
    int viable = -1;
    char *reason = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_iommu_group_viable(ctx, "0000:03:00.0", 0, &viable, &reason), PCIBIND_OK);
    CHECK(viable == 1);
    CHECK(reason == NULL);
    teardown();
}

static void pf_with_vfs_is_refused_for_a_variant_without_tables(void)
{
    setup();
    without_tables();
    ptk_vfio_driver(root, "mlx5_vfio_pci", "mlx5_vfio_pci");
    ptk_device(root, "0000:3b:00.0", "pci:v000015B3d00001017sv000015B3sd00000020bc02sc00i00", "mlx5_core");
    ptk_write(root, "devices/pci0000:00/0000:3b:00.0/sriov_numvfs", "4\n");
    CHECK_RC(pcibind_bind(ctx, "0000:3b:00.0", "mlx5_vfio_pci", 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "4 VFs enabled");
    expect_nothing_written();
    expect_bound("0000:3b:00.0", "mlx5_core");
    teardown();
}

/* --- concurrency --- */

struct job {
    const char *bdf;
    const char *name;
    int rc;
};

static void *bind_job(void *arg)
{
    struct job *j = arg;
    j->rc = pcibind_bind(ctx, j->bdf, j->name, PCIBIND_BIND_FORCE, NULL);
    if (j->rc != PCIBIND_OK)
        printf("#   %s to %s: %d: %s\n", j->bdf, j->name, j->rc, pcibind_last_error_message());
    return NULL;
}

static void eight_threads_bind_eight_devices(void)
{
    setup();
    static const char *const bdfs[] = {"0000:10:00.0", "0000:11:00.0", "0000:12:00.0", "0000:13:00.0",
                                       "0000:14:00.0", "0000:15:00.0", "0000:16:00.0", "0000:17:00.0"};
    pthread_t threads[8];
    struct job jobs[8];
    for (int i = 0; i < 8; i++) {
        ptk_device(root, bdfs[i], E1000E, "e1000e");
        jobs[i] = (struct job){bdfs[i], "vfio-pci", -100};
    }
    for (int i = 0; i < 8; i++)
        pthread_create(&threads[i], NULL, bind_job, &jobs[i]);
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        CHECK(jobs[i].rc == PCIBIND_OK);
        expect_bound(bdfs[i], "vfio-pci");
    }
    teardown();
}

static void four_threads_race_on_one_device(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    pthread_t threads[4];
    struct job jobs[4];
    static const char *const targets[] = {"vfio-pci", "e1000e", "vfio-pci", "e1000e"};
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){"0000:02:00.0", targets[i], -100};
        pthread_create(&threads[i], NULL, bind_job, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(jobs[i].rc == PCIBIND_OK);
    }
    /* Serialized: the device is on one of the two, consistently with its override. */
    char *override = ptk_override(root, "0000:02:00.0");
    CHECK(override != NULL);
    if (override && strcmp(override, "vfio-pci") == 0)
        expect_bound("0000:02:00.0", "vfio-pci");
    else
        expect_bound("0000:02:00.0", "e1000e");
    free(override);
    teardown();
}

static void two_processes_race_on_one_device(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            int ok = 1;
            for (int n = 0; n < 20 && ok; n++) {
                ok = pcibind_bind(ctx, "0000:02:00.0", "vfio-pci", PCIBIND_BIND_FORCE, NULL) == 0 &&
                     pcibind_reattach(ctx, "0000:02:00.0", "e1000e", 0, NULL) == 0;
            }
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status = -1;
        waitpid(pids[i], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    expect_bound("0000:02:00.0", "e1000e");
    expect_override("0000:02:00.0", "(null)");
    teardown();
}

/* --- bad input --- */

static void bad_input_through_bind_unbind_reattach(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    static const char *const bad_names[] = {"", "-r", "../vfio-pci", "/vfio-pci", "a..b", "vfio pci",
                                            "vfio-pci\n", "\xff", ".x"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", bad_names[i], 0, NULL), PCIBIND_ERR_INVALID_ARG);
        CHECK_RC(pcibind_reattach(ctx, "0000:02:00.0", bad_names[i], 0, NULL), PCIBIND_ERR_INVALID_ARG);
    }
    static const char *const bad_addresses[] = {"", "0000:02:00", "0000:02:00.0\n", "../0000:02:00.0",
                                                "0000:02:20.0", "zz"};
    for (size_t i = 0; i < sizeof(bad_addresses) / sizeof(bad_addresses[0]); i++) {
        CHECK_RC(pcibind_bind(ctx, bad_addresses[i], "vfio-pci", 0, NULL), PCIBIND_ERR_INVALID_ADDRESS);
        CHECK_RC(pcibind_unbind(ctx, bad_addresses[i], 0), PCIBIND_ERR_INVALID_ADDRESS);
        CHECK_RC(pcibind_reattach(ctx, bad_addresses[i], NULL, 0, NULL), PCIBIND_ERR_INVALID_ADDRESS);
    }
    CHECK_RC(pcibind_bind(ctx, "0000:09:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_NO_DEVICE);
    CHECK_RC(pcibind_unbind(ctx, "0000:09:00.0", 0), PCIBIND_ERR_NO_DEVICE);
    CHECK_RC(pcibind_reattach(ctx, "0000:09:00.0", NULL, 0, NULL), PCIBIND_ERR_NO_DEVICE);
    CHECK_RC(pcibind_bind(ctx, NULL, "vfio-pci", 0, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_bind(NULL, "0000:02:00.0", "vfio-pci", 0, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "vfio-pci", 4, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_reattach(ctx, "0000:02:00.0", NULL, PCIBIND_BIND_DRY_RUN, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_unbind(ctx, "0000:02:00.0", PCIBIND_BIND_DRY_RUN), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_recover(ctx, NULL, 1, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_recover(ctx, "0000:09:00.0", 0, NULL), PCIBIND_ERR_NO_DEVICE);
    CHECK_RC(pcibind_recover(ctx, "zz", 0, NULL), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_RC(pcibind_is_vfio_bound(ctx, "0000:02:00.0", NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "no_such_driver", 0, NULL), PCIBIND_ERR_NO_DRIVER);
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "none", 0, NULL), PCIBIND_ERR_NO_DRIVER);
    expect_nothing_written();
    expect_bound("0000:02:00.0", "e1000e");
    teardown();
}

RUN_TESTS(TEST_CASE(unbound_device_to_vfio_pci), TEST_CASE(host_device_to_vfio_pci_and_back),
          TEST_CASE(bind_by_module_name_loads_it), TEST_CASE(null_name_picks_the_variant),
          TEST_CASE(null_name_without_variant_gets_vfio_pci),
          TEST_CASE(variant_that_will_not_load_falls_back_to_vfio_pci),
          TEST_CASE(already_on_target_writes_nothing),
          TEST_CASE(probe_failure_restores_driver_and_override),
          TEST_CASE(probe_and_rebind_failing_is_a_restore_error),
          TEST_CASE(unbind_ebusy_changes_nothing), TEST_CASE(device_removed_mid_transaction),
          TEST_CASE(someone_elses_override_is_restored), TEST_CASE(override_write_eio_restores),
          TEST_CASE(in_use_netdev_is_refused_unless_forced),
          TEST_CASE(netdev_with_only_a_link_local_address_is_not_in_use),
          TEST_CASE(mounted_block_device_is_refused_unless_forced),
          TEST_CASE(held_block_device_is_refused),
          TEST_CASE(pf_with_vfs_is_refused_for_vfio_unless_forced),
          TEST_CASE(driver_that_does_not_claim_is_refused),
          TEST_CASE(variant_that_does_not_claim_is_refused),
          TEST_CASE(unbind_leaves_device_unbound_and_ungrabbable),
          TEST_CASE(reattach_of_a_device_no_host_driver_matches), TEST_CASE(dry_run_touches_nothing),
          TEST_CASE(failed_move_off_vfio_pci_comes_back_to_it),
          TEST_CASE(failed_reattach_from_vfio_pci_comes_back_to_it),
          TEST_CASE(reattach_of_a_device_on_its_host_driver_writes_nothing),
          TEST_CASE(reattach_to_the_vfio_driver_it_is_on_writes_nothing),
          TEST_CASE(named_reattach_to_a_host_driver_clears_the_override),
          TEST_CASE(named_reattach_to_a_driver_that_does_not_claim_keeps_the_override),
          TEST_CASE(reattach_with_no_name_loads_the_host_module_first),
          TEST_CASE(unbind_of_an_unbound_device_kept_so_writes_nothing),
          TEST_CASE(dry_run_before_the_module_is_loaded_checks_and_loads_nothing),
          TEST_CASE(dry_run_claim_check_needs_no_module_load),
          TEST_CASE(dry_run_plan_names_every_write_the_bind_makes),
          TEST_CASE(iommu_group_with_bridge_and_blocking_sibling),
          TEST_CASE(variants_are_vfio_drivers_without_tables),
          TEST_CASE(pf_with_vfs_is_refused_for_a_variant_without_tables),
          TEST_CASE(eight_threads_bind_eight_devices), TEST_CASE(four_threads_race_on_one_device),
          TEST_CASE(two_processes_race_on_one_device),
          TEST_CASE(bad_input_through_bind_unbind_reattach))
