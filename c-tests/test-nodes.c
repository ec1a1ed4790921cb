/* VFIO device nodes (SPEC 3.9) through the C API, with the kernel shim preloaded: a device
 * bound to vfio-pci (the shim gives it vfio-dev/vfioN) in IOMMU group 7, and a fake dev root
 * where the shim makes and removes the nodes devtmpfs would, for a kernel of each generation
 * (the test makes what modules make: the container and /dev/iommu). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testctx.h"

#define BDF "0000:02:00.0"
static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";

static char *root;
static pcibind_ctx *ctx;

static void node(const char *rel)
{
    char *path = NULL;
    CHECK(asprintf(&path, "dev/%s", rel) > 0);
    ptk_write(root, path, "");
    free(path);
}

/* The device in IOMMU group 7 unless `group` is 0 (then no group: no IOMMU translates it);
 * dev/vfio/ in the tree, so the shim keeps the nodes a bind makes. */
static void setup_with(int group)
{
    root = ptk_new();
    e1000e_and_vfio_pci(root);
    ptk_device(root, BDF, E1000E, "e1000e");
    if (group)
        ptk_iommu_group(root, (unsigned)group, BDF);
    ptk_mkdirs(root, "dev/vfio");
    ctx = test_context(root, root, getenv("FAKE_MODPROBE"), NULL);
    char *dev = ptk_path(root, "dev");
    CHECK_RC(pcibind_ctx_set_dev_root(ctx, dev), PCIBIND_OK);
    free(dev);
}

static void setup(void)
{
    setup_with(7);
}

static void teardown(void)
{
    pcibind_ctx_free(ctx);
    ctx = NULL;
    ptk_destroy(root);
    root = NULL;
}

static int node_exists(const char *rel)
{
    char *path = NULL;
    CHECK(asprintf(&path, "dev/%s", rel) > 0);
    char *content = ptk_read(root, path);
    free(path);
    free(content);
    return content != NULL;
}

/* The paths, joined with spaces and relative to the dev root. */
static char *joined(char **paths)
{
    char *dev = ptk_path(root, "dev/");
    size_t n = strlen(dev);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    for (char **p = paths; p && *p; p++) {
        CHECK(strncmp(*p, dev, n) == 0);
        fprintf(f, "%s%s", p == paths ? "" : " ", *p + n);
    }
    fclose(f);
    free(dev);
    return out;
}

static void expect_nodes(const char *expected)
{
    char **paths = (char **)(uintptr_t)0x1;
    CHECK_RC(pcibind_vfio_device_nodes(ctx, BDF, &paths), PCIBIND_OK);
    char *got = joined(paths);
    CHECK_STR(got, expected);
    free(got);
    pcibind_strv_free(paths);
}

/* The group's node comes with the bind (the shim, as devtmpfs) and goes with the unbind. */
static void legacy_container_and_group(void)
{
    setup();
    node("vfio/vfio");
    CHECK(!node_exists("vfio/7"));
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL), PCIBIND_OK);
    expect_nodes("vfio/vfio vfio/7");
    CHECK_RC(pcibind_reattach(ctx, BDF, NULL, 0, NULL), PCIBIND_OK);
    CHECK(!node_exists("vfio/7"));
    CHECK(node_exists("vfio/vfio"));
    teardown();
}

/* A kernel with the VFIO character device and iommufd: the pair after the legacy nodes. */
static void iommufd_pair_after_the_legacy_nodes(void)
{
    setup();
    ptk_mkdirs(root, "dev/vfio/devices");
    node("vfio/vfio");
    node("iommu");
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL), PCIBIND_OK);
    expect_nodes("vfio/vfio vfio/7 iommu vfio/devices/vfio0");
    CHECK_RC(pcibind_unbind(ctx, BDF, 0), PCIBIND_OK);
    CHECK(!node_exists("vfio/devices/vfio0"));
    CHECK(!node_exists("vfio/7"));
    teardown();
}

/* The character device without /dev/iommu is no pair (and neither is /dev/iommu alone). */
static void iommufd_only_as_a_pair(void)
{
    setup();
    ptk_mkdirs(root, "dev/vfio/devices");
    node("vfio/vfio");
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL), PCIBIND_OK);
    CHECK(node_exists("vfio/devices/vfio0"));
    expect_nodes("vfio/vfio vfio/7");
    node("iommu");
    expect_nodes("vfio/vfio vfio/7 iommu vfio/devices/vfio0");
    teardown();

    setup();
    node("vfio/vfio");
    node("iommu"); /* but no character device: a kernel without VFIO_DEVICE_CDEV */
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL), PCIBIND_OK);
    expect_nodes("vfio/vfio vfio/7");
    teardown();
}

/* No IOMMU for the device and vfio's unsafe no-IOMMU mode on: VFIO gives it a group of its own
 * (the lowest number free) with a noiommu- node; both go when it is unbound. */
static void noiommu_group(void)
{
    setup_with(0);
    ptk_mkdirs(root, "kernel/iommu_groups/0/devices"); /* taken by another device */
    ptk_mkdirs(root, "module/vfio/parameters");
    ptk_write(root, "module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n");
    node("vfio/vfio");
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL), PCIBIND_OK);
    expect_nodes("vfio/vfio vfio/noiommu-1");
    char *members = ptk_read(root, "kernel/iommu_groups/1/devices/" BDF "/modalias");
    CHECK(members != NULL);
    free(members);
    CHECK_RC(pcibind_unbind(ctx, BDF, 0), PCIBIND_OK);
    CHECK(!node_exists("vfio/noiommu-1"));
    char *gone = ptk_path(root, "kernel/iommu_groups/1");
    CHECK(access(gone, F_OK) < 0);
    free(gone);
    gone = ptk_path(root, "devices/pci0000:00/" BDF "/iommu_group");
    CHECK(access(gone, F_OK) < 0);
    free(gone);
    teardown();
}

/* Two devices in one group: the node stays until the last of them leaves VFIO (as on the real
 * kernels: kernel-tests' kernel_group_node_lives_while_a_member_is_on_vfio). */
static void group_node_lives_while_a_member_is_on_vfio(void)
{
    setup();
    ptk_device(root, "0000:02:00.1", E1000E, "e1000e");
    ptk_iommu_group(root, 7, "0000:02:00.1");
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL), PCIBIND_OK);
    CHECK(node_exists("vfio/7"));
    CHECK_RC(pcibind_bind(ctx, "0000:02:00.1", "vfio-pci", 0, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_reattach(ctx, BDF, NULL, 0, NULL), PCIBIND_OK);
    CHECK(node_exists("vfio/7"));
    CHECK_RC(pcibind_reattach(ctx, "0000:02:00.1", NULL, 0, NULL), PCIBIND_OK);
    CHECK(!node_exists("vfio/7"));
    teardown();
}

static void not_on_vfio_is_unsupported(void)
{
    setup();
    node("vfio/vfio");
    char **paths = (char **)(uintptr_t)0x1;
    CHECK_RC(pcibind_vfio_device_nodes(ctx, BDF, &paths), PCIBIND_ERR_UNSUPPORTED);
    CHECK(paths == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "not on a VFIO driver");
    CHECK_STR(pcibind_strerror(PCIBIND_ERR_UNSUPPORTED), "the device cannot do this");
    CHECK_RC(pcibind_vfio_device_nodes(ctx, BDF, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_vfio_device_nodes(ctx, "0000:09:00.0", &paths), PCIBIND_ERR_NO_DEVICE);
    CHECK_RC(pcibind_vfio_device_nodes(ctx, "junk", &paths), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_RC(pcibind_ctx_set_dev_root(ctx, "relative/dev"), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_ctx_set_dev_root(ctx, NULL), PCIBIND_OK);
    teardown();
}

RUN_TESTS(TEST_CASE(legacy_container_and_group), TEST_CASE(iommufd_pair_after_the_legacy_nodes),
          TEST_CASE(iommufd_only_as_a_pair), TEST_CASE(noiommu_group),
          TEST_CASE(group_node_lives_while_a_member_is_on_vfio),
          TEST_CASE(not_on_vfio_is_unsupported))
