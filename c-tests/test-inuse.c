/* "In use on the host" through the C API (SPEC 1, "What in use looks like"; SPEC 3.3 step 5):
 * host topologies the kernel really builds, each refused by pcibind_bind() with
 * PCIBIND_ERR_IN_USE and a message naming what uses the device, without a write; and the NVMe
 * multipath case that is allowed, with a warning. The kernel shim is preloaded, so an allowed
 * bind really moves the device in the fake tree, and an O_EXCL open of a disk's node in the
 * tree's dev/ gets the block layer's answer from fault.table (open-excl:MAJ:MIN EBUSY: held)
 * without any real device being opened. Making nodes needs root: those scenarios say they are
 * skipped otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <syslog.h>
#include <unistd.h>

#include "testctx.h"

static char *root;
static pcibind_ctx *ctx;

static const char *const VIRTIO_NET = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00";
static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
static const char *const NVME = "pci:v00008086d0000F1A8sv00008086sd0000390Bbc01sc08i02";
static const char *const VGA = "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00";

static const char *const ROUTE_HEADER =
    "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n";


static void setup(void)
{
    root = ptk_new();
    warnings[0] = '\0';
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_loaded_driver(root, "virtio_pci", "virtio-pci");
    ptk_loaded_driver(root, "e1000e", "e1000e");
    ptk_loaded_driver(root, "nvme", "nvme");
    ptk_loaded_driver(root, "bochs", "bochs-drm");
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

/* --- small tree builders of this file (paths relative to the root) --- */

/* ptk_write() and ptk_symlink() after creating the parent directory. */
static void put(const char *rel, const char *content)
{
    char *parent = strdup(rel);
    *strrchr(parent, '/') = '\0';
    ptk_mkdirs(root, parent);
    free(parent);
    ptk_write(root, rel, content);
}

static void put_link(const char *rel, const char *target)
{
    char *parent = strdup(rel);
    *strrchr(parent, '/') = '\0';
    ptk_mkdirs(root, parent);
    free(parent);
    ptk_symlink(root, rel, target);
}

/* Interface NAME in PARENT/net/NAME with `flags`, and class/net/NAME linking to it. */
static void netdev(const char *parent, const char *name, const char *flags)
{
    char rel[512], target[512];
    snprintf(rel, sizeof(rel), "%s/net/%s/flags", parent, name);
    put(rel, flags);
    snprintf(rel, sizeof(rel), "class/net/%s", name);
    snprintf(target, sizeof(target), "../../%s/net/%s", parent, name);
    put_link(rel, target);
}

/* UPPER is above LOWER: LOWER's upper_UPPER link, and `master` too for a bridge/bond port. */
static void stacked(const char *lower, const char *upper, int master)
{
    char rel[512], target[512];
    snprintf(target, sizeof(target), "../../../virtual/net/%s", upper);
    snprintf(rel, sizeof(rel), "class/net/%s/upper_%s", lower, upper);
    ptk_symlink(root, rel, target);
    if (master) {
        snprintf(rel, sizeof(rel), "class/net/%s/master", lower);
        ptk_symlink(root, rel, target);
    }
}

/* Block device PARENT/NAME: `subsystem` names block, `dev` (none when NULL), `holders/`. */
static void block_device(const char *parent, const char *name, const char *dev)
{
    char rel[512];
    snprintf(rel, sizeof(rel), "%s/%s/holders", parent, name);
    ptk_mkdirs(root, rel);
    snprintf(rel, sizeof(rel), "%s/%s/subsystem", parent, name);
    ptk_symlink(root, rel, "/class/block"); /* only its last component is read */
    if (dev) {
        char line[64];
        snprintf(rel, sizeof(rel), "%s/%s/dev", parent, name);
        snprintf(line, sizeof(line), "%s\n", dev);
        ptk_write(root, rel, line);
    }
}

static void expect_nothing_written(void)
{
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
}

static void expect_in_use(const char *bdf, const char *reason)
{
    char *out = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_bind(ctx, bdf, "vfio-pci", 0, &out), PCIBIND_ERR_IN_USE);
    CHECK(out == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), reason);
    expect_nothing_written();
}

/* The disk nvme0n1 (259:0) below the NVMe controller at 0000:04:00.0, with its uevent, and its
 * node in the tree's dev/ (0 when nodes cannot be made here: not root). */
static int nvme_disk_with_a_node(void)
{
    ptk_device(root, "0000:04:00.0", NVME, "nvme");
    block_device("devices/pci0000:00/0000:04:00.0/nvme/nvme0", "nvme0n1", "259:0");
    ptk_write(root, "devices/pci0000:00/0000:04:00.0/nvme/nvme0/nvme0n1/uevent",
              "MAJOR=259\nMINOR=0\nDEVNAME=nvme0n1\nDEVTYPE=disk\n");
    if (ptk_block_node(root, "nvme0n1", 259, 0) < 0) {
        printf("# skipped: cannot make block device nodes here (%s)\n", strerror(errno));
        return 0;
    }
    return 1;
}

static void expect_bound_to_vfio(const char *bdf)
{
    char *out = NULL;
    CHECK_RC(pcibind_bind(ctx, bdf, "vfio-pci", 0, &out), PCIBIND_OK);
    CHECK_STR(out, "vfio-pci");
    free(out);
    CHECK(ptk_is_bound_to(root, bdf, "vfio-pci"));
}

/* --- scenarios --- */

/* virtio-net's interface is one level down, below the virtio device. */
static void virtio_net_interface_with_the_default_route(void)
{
    setup();
    ptk_device(root, "0000:00:03.0", VIRTIO_NET, "virtio-pci");
    netdev("devices/pci0000:00/0000:00:03.0/virtio2", "eth0", "0x1003\n");
    char route[512];
    snprintf(route, sizeof(route), "%seth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
             ROUTE_HEADER);
    ptk_write(root, "proc/net/route", route);
    expect_in_use("0000:00:03.0", "network interface eth0 is up with 1 IPv4 route(s)");
    teardown();
}

static void nic_enslaved_to_a_bridge_with_an_address(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    netdev("devices/pci0000:00/0000:02:00.0", "eth0", "0x1003\n");
    netdev("devices/virtual", "br0", "0x1003\n");
    ptk_mkdirs(root, "devices/virtual/net/br0/bridge");
    stacked("eth0", "br0", 1);
    ptk_write(root, "proc/net/if_inet6", "20010db8000000000000000000000001 05 40 00 80 br0\n");
    expect_in_use("0000:02:00.0", "network interface eth0 is a port of bridge br0, which is up "
                                  "with IPv6 address 20010db8000000000000000000000001");
    teardown();
}

/* A two-disk btrfs mounted through the other disk: mountinfo shows 0:NN and /dev/sda. */
static void disk_of_a_btrfs_mounted_through_another_member(void)
{
    setup();
    ptk_device(root, "0000:04:00.0", NVME, "nvme");
    block_device("devices/pci0000:00/0000:04:00.0/nvme/nvme0", "nvme0n1", "259:0");
    put_link("fs/btrfs/0d6c9a5e-0000-4000-8000-000000000001/devices/sda", "/devices/sda");
    ptk_symlink(root, "fs/btrfs/0d6c9a5e-0000-4000-8000-000000000001/devices/nvme0n1",
                "/devices/nvme0n1");
    ptk_write(root, "proc/self/mountinfo",
              "29 1 0:33 / / rw,relatime shared:1 - btrfs /dev/sda rw\n");
    expect_in_use("0000:04:00.0", "block device nvme0n1 is a member of the btrfs file system "
                                  "0d6c9a5e-0000-4000-8000-000000000001 mounted on /");
    teardown();
}

/* A GPU whose framebuffer the console may be drawn on. */
static void gpu_with_a_framebuffer(void)
{
    setup();
    ptk_device(root, "0000:00:01.0", VGA, "bochs-drm");
    ptk_mkdirs(root, "devices/pci0000:00/0000:00:01.0/graphics/fb0");
    expect_in_use("0000:00:01.0", "framebuffer fb0");
    teardown();
}

/* NVMe native multipath: namespace 1 (nvme0n1, mounted on /) hangs under nvme-subsys0; the
 * controllers nvme0 (0000:04:00.0) and, when `other_state` is given, nvme1 (0000:05:00.0)
 * hold its hidden path disks. */
static void multipath(const char *other_state)
{
    const char *subsys = "devices/virtual/nvme-subsystem/nvme-subsys0";
    put_link("class/nvme-subsystem/nvme-subsys0",
             "../../devices/virtual/nvme-subsystem/nvme-subsys0");
    ptk_mkdirs(root, subsys);
    block_device(subsys, "nvme0n1", "259:0");
    ptk_write(root, "devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1/nsid", "1\n");
    const struct {
        const char *bdf, *ctrl, *path, *state;
    } ctrls[] = {{"0000:04:00.0", "nvme0", "nvme0c0n1", "live"},
                 {"0000:05:00.0", "nvme1", "nvme0c1n1", other_state}};
    for (size_t i = 0; i < 2; i++) {
        if (!ctrls[i].state)
            continue;
        char dir[512], rel[600], target[512];
        ptk_device(root, ctrls[i].bdf, NVME, "nvme");
        snprintf(dir, sizeof(dir), "devices/pci0000:00/%s/nvme/%s", ctrls[i].bdf, ctrls[i].ctrl);
        snprintf(rel, sizeof(rel), "%s/state", dir);
        snprintf(target, sizeof(target), "%s\n", ctrls[i].state);
        put(rel, target);
        block_device(dir, ctrls[i].path, NULL); /* hidden: no `dev` */
        snprintf(rel, sizeof(rel), "%s/%s/nsid", dir, ctrls[i].path);
        ptk_write(root, rel, "1\n");
        snprintf(rel, sizeof(rel), "%s/%s", subsys, ctrls[i].ctrl);
        snprintf(target, sizeof(target), "../../../pci0000:00/%s/nvme/%s", ctrls[i].bdf,
                 ctrls[i].ctrl);
        ptk_symlink(root, rel, target);
    }
    ptk_write(root, "proc/self/mountinfo",
              "29 1 259:0 / / rw,relatime shared:1 - ext4 /dev/nvme0n1 rw\n");
}

static void nvme_controller_that_is_the_last_live_path(void)
{
    setup();
    multipath("connecting");
    expect_in_use("0000:04:00.0", "NVMe controller nvme0 is the last live path to namespace "
                                  "nvme0n1 of nvme-subsys0: block device nvme0n1 is mounted on /");
    teardown();
}

static void nvme_controller_with_another_live_path_is_allowed_with_a_warning(void)
{
    setup();
    multipath("live");
    char *out = NULL;
    CHECK_RC(pcibind_bind(ctx, "0000:04:00.0", "vfio-pci", 0, &out), PCIBIND_OK);
    CHECK_STR(out, "vfio-pci");
    free(out);
    CHECK(ptk_is_bound_to(root, "0000:04:00.0", "vfio-pci"));
    CHECK_CONTAINS(warnings, "NVMe controller nvme0 is a path to namespace nvme0n1");
    CHECK_CONTAINS(warnings, "nvme1 remain(s) a live path");
    teardown();
}

/* A ZFS pool member, an LIO backstore, a VM's disk: no holders, no mount naming the disk, only
 * the kernel's EBUSY to an exclusive open. Once let go, the bind goes through. */
static void disk_the_kernel_says_is_held_exclusively(void)
{
    setup();
    if (nvme_disk_with_a_node()) {
        ptk_fault(root, "open-excl:259:0 EBUSY");
        expect_in_use("0000:04:00.0",
                      "block device nvme0n1 is held open exclusively by something (not a "
                      "mount, swap or holder the host lists: e.g. a ZFS pool, an iSCSI/LIO "
                      "backstore or a VM's disk)");
        /* A mount the host lists names the user instead. */
        ptk_write(root, "proc/self/mountinfo", "29 1 0:44 / /tank rw - zfs /dev/nvme0n1 rw\n");
        expect_in_use("0000:04:00.0", "block device nvme0n1 is mounted on /tank");
        ptk_write(root, "fault.table", "");
        ptk_write(root, "proc/self/mountinfo", "");
        expect_bound_to_vfio("0000:04:00.0");
    }
    teardown();
}

/* The kernel's answer decides: a mount line naming a disk that the kernel lets be opened
 * exclusively is stale (the disk behind that name is another one now). */
static void disk_the_kernel_says_is_free_is_not_in_use(void)
{
    setup();
    if (nvme_disk_with_a_node()) {
        ptk_write(root, "proc/self/mountinfo", "29 1 0:44 / /old rw - ext4 /dev/nvme0n1 rw\n");
        expect_bound_to_vfio("0000:04:00.0");
    }
    teardown();
}

/* Could not ask is not "not in use": refused, saying why; forced, it binds. */
static void disk_the_kernel_may_not_be_asked_about_is_refused(void)
{
    setup();
    if (nvme_disk_with_a_node()) {
        ptk_fault(root, "open-excl:259:0 EACCES");
        expect_in_use("0000:04:00.0", "block device nvme0n1 could not be asked whether "
                                      "something holds it (");
        CHECK_CONTAINS(pcibind_last_error_message(), "Permission denied");
        CHECK_RC(pcibind_bind(ctx, "0000:04:00.0", "vfio-pci", PCIBIND_BIND_FORCE, NULL),
                 PCIBIND_OK);
        CHECK(ptk_is_bound_to(root, "0000:04:00.0", "vfio-pci"));
    }
    teardown();
}

/* NVMe multipath: the namespace disk hangs under the subsystem; the controller that is its
 * last live path asks the kernel about it too. */
static void nvme_controller_that_is_the_last_path_to_a_held_namespace(void)
{
    setup();
    multipath("connecting");
    ptk_write(root, "proc/self/mountinfo", "");
    if (ptk_block_node(root, "nvme0n1", 259, 0) == 0) {
        ptk_fault(root, "open-excl:259:0 EBUSY");
        expect_in_use("0000:04:00.0", "NVMe controller nvme0 is the last live path to namespace "
                                      "nvme0n1 of nvme-subsys0: block device nvme0n1 is held "
                                      "open exclusively by something");
    } else {
        printf("# skipped: cannot make block device nodes here (%s)\n", strerror(errno));
    }
    teardown();
}

/* An interface whose flags cannot be read (a directory stands there: EISDIR, even for root):
 * refused, naming what could not be read; PCIBIND_BIND_FORCE overrides it like any in-use
 * reason. */
static void interface_that_cannot_be_read_is_refused_unless_forced(void)
{
    setup();
    ptk_device(root, "0000:02:00.0", E1000E, "e1000e");
    ptk_mkdirs(root, "devices/pci0000:00/0000:02:00.0/net/eth0/flags");
    put_link("class/net/eth0", "../../devices/pci0000:00/0000:02:00.0/net/eth0");
    expect_in_use("0000:02:00.0", "network interface eth0: could not read its flags (");
    CHECK_CONTAINS(pcibind_last_error_message(), "so cannot tell whether it is in use");
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.0", "vfio-pci", PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    CHECK(ptk_is_bound_to(root, "0000:02:00.0", "vfio-pci"));
    teardown();
}

/* The firmware's boot framebuffer (efifb/simpledrm on BOOTFB) inside the GPU's BAR: nothing
 * below the GPU in sysfs shows it, /proc/iomem does. */
static void gpu_whose_bar_holds_the_boot_framebuffer(void)
{
    setup();
    ptk_device(root, "0000:00:01.0", VGA, "bochs-drm");
    ptk_write(root, "devices/pci0000:00/0000:00:01.0/class", "0x030000\n");
    ptk_write(root, "devices/pci0000:00/0000:00:01.0/resource",
              "0x00000000fd000000 0x00000000fdffffff 0x0000000000042208\n"
              "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
              "0x00000000febf0000 0x00000000febf0fff 0x0000000000040200\n");
    ptk_write(root, "proc/iomem",
              "00000000-00000fff : Reserved\n"
              "c0000000-febfffff : PCI Bus 0000:00\n"
              "  fd000000-fdffffff : 0000:00:01.0\n"
              "    fd000000-fd2fffff : BOOTFB\n"
              "      fd000000-fd2fffff : simpledrm\n");
    expect_in_use("0000:00:01.0", "its BAR holds the firmware's boot framebuffer (BOOTFB at "
                                  "fd000000-fd2fffff in ");
    /* On no driver at all (the firmware's framebuffer drivers are platform drivers): refused
     * all the same on the way to vfio-pci. */
    CHECK_RC(pcibind_unbind(ctx, "0000:00:01.0", PCIBIND_BIND_FORCE), PCIBIND_OK);
    CHECK(ptk_is_bound_to(root, "0000:00:01.0", NULL));
    ptk_write(root, "write.log", "");
    expect_in_use("0000:00:01.0", "its BAR holds the firmware's boot framebuffer (BOOTFB at "
                                  "fd000000-fd2fffff in ");
    /* Elsewhere in the address space, it is not this GPU's. */
    ptk_write(root, "proc/iomem", "00000000-00000fff : Reserved\n"
                                  "80000000-802fffff : BOOTFB\n");
    expect_bound_to_vfio("0000:00:01.0");
    teardown();
}

RUN_TESTS(TEST_CASE(disk_the_kernel_says_is_held_exclusively),
          TEST_CASE(disk_the_kernel_says_is_free_is_not_in_use),
          TEST_CASE(disk_the_kernel_may_not_be_asked_about_is_refused),
          TEST_CASE(nvme_controller_that_is_the_last_path_to_a_held_namespace),
          TEST_CASE(interface_that_cannot_be_read_is_refused_unless_forced),
          TEST_CASE(gpu_whose_bar_holds_the_boot_framebuffer),
          TEST_CASE(virtio_net_interface_with_the_default_route),
          TEST_CASE(nic_enslaved_to_a_bridge_with_an_address),
          TEST_CASE(disk_of_a_btrfs_mounted_through_another_member),
          TEST_CASE(gpu_with_a_framebuffer), TEST_CASE(nvme_controller_that_is_the_last_live_path),
          TEST_CASE(nvme_controller_with_another_live_path_is_allowed_with_a_warning))
