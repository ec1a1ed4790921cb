/* VFIO device nodes (SPEC 3.9) through the C API, with the kernel shim preloaded: a device
 * bound to vfio-pci (the shim gives it vfio-dev/vfioN) in IOMMU group 7, and a fake dev root
 * holding the nodes a kernel of each generation creates. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

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

static void setup(void)
{
    root = ptk_new();
    e1000e_and_vfio_pci(root);
    ptk_device(root, BDF, E1000E, "e1000e");
    ptk_mkdirs(root, "kernel/iommu_groups/7/devices");
    ptk_symlink(root, "kernel/iommu_groups/7/devices/" BDF, "../../../../devices/pci0000:00/" BDF);
    ptk_symlink(root, "devices/pci0000:00/" BDF "/iommu_group", "../../../kernel/iommu_groups/7");
    ptk_mkdirs(root, "dev/vfio/devices");
    ctx = test_context(root, root, getenv("FAKE_MODPROBE"), NULL);
    char *dev = ptk_path(root, "dev");
    CHECK_RC(pcibind_ctx_set_dev_root(ctx, dev), PCIBIND_OK);
    free(dev);
}

static void teardown(void)
{
    pcibind_ctx_free(ctx);
    ctx = NULL;
    ptk_destroy(root);
    root = NULL;
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

static void legacy_container_and_group(void)
{
    setup();
    node("vfio/vfio");
    node("vfio/7");
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL), PCIBIND_OK);
    expect_nodes("vfio/vfio vfio/7");
    teardown();
}

static void iommufd_pair_after_the_legacy_nodes(void)
{
    setup();
    node("vfio/vfio");
    node("vfio/7");
    node("iommu");
    node("vfio/devices/vfio0");
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL), PCIBIND_OK);
    expect_nodes("vfio/vfio vfio/7 iommu vfio/devices/vfio0");
    teardown();
}

static void iommufd_only_as_a_pair(void)
{
    setup();
    node("vfio/vfio");
    node("vfio/7");
    node("iommu"); /* but no character device for this device */
    node("vfio/devices/vfio3");
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL), PCIBIND_OK);
    expect_nodes("vfio/vfio vfio/7");
    teardown();
}

static void noiommu_group(void)
{
    setup();
    node("vfio/vfio");
    node("vfio/noiommu-7");
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, NULL), PCIBIND_OK);
    expect_nodes("vfio/vfio vfio/noiommu-7");
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
          TEST_CASE(not_on_vfio_is_unsupported))
