/* Hostile trees: a fake root whose links lead outside it (absolute, or climbing out with ..),
 * symlink loops, FIFOs and huge files where small attributes belong, directories where files
 * belong, and non-UTF-8 names. Every call must return an error (none may succeed by reading
 * outside the root, none may hang), and nothing outside the root may be read or written:
 * the "outside" directory holds a plausible device and driver whose files must stay unchanged,
 * and whose valid contents would make the calls succeed if they were followed.
 *
 * The kernel files a bind writes (driver_override, DRV/unbind, drivers_probe), and the
 * directories above them, are also made links out of the root: beforehand, and swapped in at
 * the very moment of the open (the kernel shim's race: lines), which is what a check of the
 * path followed by an open of it by name loses. meson runs this with openat2 available and
 * refused (EPERM, ENOSYS): the library's fallback walk must hold the same line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testctx.h"

static const char *const MLX5_VF = "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00";

static char *base;    /* holds root/ and outside/ */
static char *root;
static char *outside;
static pcibind_ctx *ctx;

static void setup(void)
{
    base = ptk_new();
    ptk_mkdirs(base, "root");
    ptk_mkdirs(base, "outside/dev");
    ptk_mkdirs(base, "outside/drv");
    root = ptk_path(base, "root");
    outside = ptk_path(base, "outside");
    /* A believable device and driver outside the root. */
    char line[128];
    snprintf(line, sizeof(line), "%s\n", MLX5_VF);
    ptk_write(outside, "dev/modalias", line);
    ptk_write(outside, "dev/driver_override", "(null)\n");
    ptk_write(outside, "drv/bind", "");
    ptk_write(outside, "drv/unbind", "");
    ptk_write(outside, "probe", "");
    ptk_mkdirs(outside, "pci");
    ptk_write(outside, "pci/drivers_probe", "");
    ptk_init(root);
    ptk_mkdirs(root, "lib-modules");
    ptk_write(root, "lib-modules/modules.alias",
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n");
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    setenv("FAKE_SYSFS_ROOT", root, 1);

    char *modules = ptk_path(root, "lib-modules");
    ctx = test_context(root, base, NULL, modules); /* locks and proc outside the tree */
    free(modules);
}

static void outside_untouched(void)
{
    char *o = ptk_read(outside, "dev/driver_override");
    CHECK_STR(o, "(null)\n");
    free(o);
    char *b = ptk_read(outside, "drv/bind");
    CHECK_STR(b, "");
    free(b);
    b = ptk_read(outside, "drv/unbind");
    CHECK_STR(b, "");
    free(b);
    b = ptk_read(outside, "probe");
    CHECK_STR(b, "");
    free(b);
    b = ptk_read(outside, "pci/drivers_probe");
    CHECK_STR(b, "");
    free(b);
}

static void teardown(void)
{
    outside_untouched();
    pcibind_ctx_free(ctx);
    ctx = NULL;
    free(root);
    free(outside);
    ptk_destroy(base);
}

/* Every device call on `bdf` fails (with one of the codes a bad tree may give). */
static void every_call_fails(const char *bdf)
{
    char *s = (char *)(uintptr_t)0x1;
    char **v = (char **)(uintptr_t)0x1;
    int flag = -1;
    int rc;
#define FAILS(call)                                                                           \
    do {                                                                                      \
        rc = (call);                                                                          \
        if (rc != PCIBIND_ERR_IO && rc != PCIBIND_ERR_NO_DEVICE) {                            \
            printf("#   %s on %s gave %d (%s)\n", #call, bdf, rc, pcibind_last_error_message()); \
            harness_failed_now = 1;                                                           \
        }                                                                                     \
    } while (0)
    FAILS(pcibind_find_vfio_variant(ctx, bdf, &s));
    CHECK(s == NULL);
    FAILS(pcibind_bind(ctx, bdf, "vfio-pci", PCIBIND_BIND_FORCE, &s));
    CHECK(s == NULL);
    FAILS(pcibind_bind(ctx, bdf, NULL, 0, &s));
    FAILS(pcibind_unbind(ctx, bdf, 0));
    FAILS(pcibind_reattach(ctx, bdf, NULL, 0, &s));
    FAILS(pcibind_iommu_group_members(ctx, bdf, &v));
    CHECK(v == NULL);
#undef FAILS
    (void)flag;
}

static void absolute_link_out_of_the_root(void)
{
    setup();
    char *target = ptk_path(outside, "dev");
    ptk_symlink(root, "bus/pci/devices/0000:01:00.0", target);
    free(target);
    every_call_fails("0000:01:00.0");
    char *driver = NULL;
    int rc = pcibind_current_driver(ctx, "0000:01:00.0", &driver);
    CHECK(rc == PCIBIND_ERR_IO || rc == PCIBIND_ERR_NO_DEVICE);
    teardown();
}

static void relative_link_climbing_out(void)
{
    setup();
    ptk_symlink(root, "bus/pci/devices/0000:02:00.0", "../../../../outside/dev");
    every_call_fails("0000:02:00.0");
    CHECK_CONTAINS(pcibind_last_error_message(), "outside the sysfs root");
    CHECK(pcibind_last_error_errno() == EXDEV);
    teardown();
}

static void attribute_linked_outside(void)
{
    setup();
    ptk_device(root, "0000:03:00.0", MLX5_VF, NULL);
    char *rel = "devices/pci0000:00/0000:03:00.0/modalias";
    char *p = ptk_path(root, rel);
    unlink(p);
    free(p);
    char *target = ptk_path(outside, "dev/modalias");
    ptk_symlink(root, rel, target);
    free(target);
    char *s = NULL;
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:03:00.0", &s), PCIBIND_ERR_IO);
    CHECK_CONTAINS(pcibind_last_error_message(), "outside the sysfs root");
    /* A write target linked outside is refused too. */
    p = ptk_path(root, "devices/pci0000:00/0000:03:00.0/driver_override");
    unlink(p);
    free(p);
    target = ptk_path(outside, "dev/driver_override");
    ptk_symlink(root, "devices/pci0000:00/0000:03:00.0/driver_override", target);
    free(target);
    CHECK(pcibind_unbind(ctx, "0000:03:00.0", 0) < 0);
    teardown();
}

static void driver_directory_linked_outside(void)
{
    setup();
    char *target = ptk_path(outside, "drv");
    ptk_symlink(root, "bus/pci/drivers/evil", target);
    free(target);
    ptk_device(root, "0000:04:00.0", MLX5_VF, NULL);
    char *driver = NULL;
    CHECK_RC(pcibind_resolve_driver(ctx, "evil", 0, &driver), PCIBIND_ERR_NO_DRIVER);
    CHECK(driver == NULL);
    CHECK(pcibind_bind(ctx, "0000:04:00.0", "evil", PCIBIND_BIND_FORCE, NULL) < 0);
    teardown();
}

static void symlink_loops(void)
{
    setup();
    ptk_symlink(root, "bus/pci/devices/0000:05:00.0", "0000:05:00.0");
    every_call_fails("0000:05:00.0");
    ptk_device(root, "0000:05:00.1", MLX5_VF, NULL);
    ptk_symlink(root, "devices/pci0000:00/0000:05:00.1/driver", "driver");
    char *driver = NULL;
    int rc = pcibind_current_driver(ctx, "0000:05:00.1", &driver);
    /* A self-referencing driver link names a driver "driver" that is not registered. */
    CHECK(rc == PCIBIND_OK || rc == PCIBIND_ERR_IO);
    free(driver);
    CHECK(pcibind_bind(ctx, "0000:05:00.1", "vfio-pci", PCIBIND_BIND_FORCE, NULL) < 0);
    teardown();
}

static void fifo_and_huge_files_where_attributes_belong(void)
{
    setup();
    ptk_device(root, "0000:06:00.0", MLX5_VF, NULL);
    char *p = ptk_path(root, "devices/pci0000:00/0000:06:00.0/modalias");
    unlink(p);
    CHECK(mkfifo(p, 0600) == 0);
    free(p);
    char *s = NULL;
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:06:00.0", &s), PCIBIND_ERR_IO); /* no hang */

    ptk_device(root, "0000:06:00.1", MLX5_VF, NULL);
    p = ptk_path(root, "devices/pci0000:00/0000:06:00.1/modalias");
    CHECK(truncate(p, 1L << 30) == 0); /* 1 GiB, sparse */
    free(p);
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:06:00.1", &s), PCIBIND_ERR_IO);
    CHECK_CONTAINS(pcibind_last_error_message(), "longer than");

    ptk_device(root, "0000:06:00.2", MLX5_VF, NULL);
    p = ptk_path(root, "devices/pci0000:00/0000:06:00.2/driver_override");
    CHECK(truncate(p, 1L << 30) == 0);
    free(p);
    CHECK(pcibind_bind(ctx, "0000:06:00.2", "vfio-pci", PCIBIND_BIND_FORCE, NULL) < 0);

    /* A FIFO as a driver's unbind file: the write fails instead of blocking. */
    ptk_device(root, "0000:06:00.3", MLX5_VF, "vfio-pci");
    p = ptk_path(root, "bus/pci/drivers/vfio-pci/unbind");
    unlink(p);
    CHECK(mkfifo(p, 0600) == 0);
    free(p);
    CHECK(pcibind_unbind(ctx, "0000:06:00.3", 0) < 0);
    teardown();
}

static void directories_where_files_belong(void)
{
    setup();
    ptk_device(root, "0000:07:00.0", MLX5_VF, NULL);
    char *p = ptk_path(root, "devices/pci0000:00/0000:07:00.0/modalias");
    unlink(p);
    free(p);
    ptk_mkdirs(root, "devices/pci0000:00/0000:07:00.0/modalias");
    char *s = NULL;
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:07:00.0", &s), PCIBIND_ERR_IO);

    ptk_device(root, "0000:07:00.1", MLX5_VF, NULL);
    ptk_mkdirs(root, "devices/pci0000:00/0000:07:00.1/driver");
    char *driver = NULL;
    CHECK_RC(pcibind_current_driver(ctx, "0000:07:00.1", &driver), PCIBIND_ERR_IO);
    CHECK(pcibind_bind(ctx, "0000:07:00.1", "vfio-pci", PCIBIND_BIND_FORCE, NULL) < 0);

    /* The alias table a directory: not an error, the fallback with a warning. */
    p = ptk_path(root, "lib-modules/modules.alias");
    unlink(p);
    free(p);
    ptk_mkdirs(root, "lib-modules/modules.alias");
    ptk_device(root, "0000:07:00.2", MLX5_VF, NULL);
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:07:00.2", &s), PCIBIND_OK);
    CHECK_STR(s, "vfio_pci");
    free(s);
    teardown();
}

static void non_utf8_names(void)
{
    setup();
    ptk_device(root, "0000:08:00.0", MLX5_VF, NULL);
    ptk_mkdirs(root, "bus/pci/drivers/\xff\xfe");
    ptk_symlink(root, "devices/pci0000:00/0000:08:00.0/driver", "../../../bus/pci/drivers/\xff\xfe");
    char *driver = NULL;
    CHECK_RC(pcibind_current_driver(ctx, "0000:08:00.0", &driver), PCIBIND_ERR_IO);
    CHECK(driver == NULL);
    /* Listing drivers skips the non-UTF-8 one; resolution still works for the others. */
    CHECK_RC(pcibind_resolve_driver(ctx, "vfio_pci", 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "vfio-pci");
    free(driver);
    ptk_mkdirs(root, "kernel/iommu_groups/3/devices");
    ptk_mkdirs(root, "kernel/iommu_groups/3/devices/\xff");
    ptk_symlink(root, "devices/pci0000:00/0000:08:00.0/iommu_group",
                "../../../kernel/iommu_groups/\xff");
    char **v = NULL;
    CHECK(pcibind_iommu_group_members(ctx, "0000:08:00.0", &v) < 0);
    CHECK(v == NULL);
    teardown();
}

/* ---- writes ------------------------------------------------------------------------------ */

#define BOUND "0000:09:00.0"

/* A device on mlx5_core, which a forced bind to vfio-pci moves with three writes:
 * driver_override, mlx5_core/unbind, drivers_probe. */
static void bound_device(void)
{
    ptk_loaded_driver(root, "mlx5_core", "mlx5_core");
    ptk_driver_ids(root, "mlx5_core", "pci:v000015B3d0000101Esv*sd*bc*sc*i*");
    ptk_device(root, BOUND, MLX5_VF, "mlx5_core");
}

/* What the writes' paths lead through, each with where a link out of the root could point
 * instead: beside it in outside/, absolute, and the same climbing out with "..". */
static const struct {
    const char *path;     /* under the root */
    const char *outside;  /* under outside/ */
    const char *climbing; /* a relative link target reaching the same */
} WRITE_PATHS[] = {
    {"devices/pci0000:00/" BOUND "/driver_override", "dev/driver_override",
     "../../../../outside/dev/driver_override"},
    {"devices/pci0000:00/" BOUND, "dev", "../../../outside/dev"},
    {"bus/pci/drivers/mlx5_core/unbind", "drv/unbind", "../../../../../outside/drv/unbind"},
    {"bus/pci/drivers/mlx5_core", "drv", "../../../../outside/drv"},
    {"bus/pci/drivers_probe", "probe", "../../../outside/probe"},
    {"bus/pci", "pci", "../../outside/pci"},
};
#define NWRITE_PATHS (sizeof(WRITE_PATHS) / sizeof(WRITE_PATHS[0]))

/* The tree itself, untouched: the forced bind succeeds (so the refusals below are the links'). */
static void writes_succeed_in_the_tree_as_built(void)
{
    setup();
    bound_device();
    CHECK_RC(pcibind_bind(ctx, BOUND, "vfio-pci", PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    CHECK(ptk_is_bound_to(root, BOUND, "vfio-pci"));
    CHECK_RC(pcibind_reattach(ctx, BOUND, NULL, 0, NULL), PCIBIND_OK);
    CHECK(ptk_is_bound_to(root, BOUND, "mlx5_core"));
    teardown();
}

/* Each write target, and each directory above one, a link out of the root before the calls. */
static void write_targets_linked_outside(void)
{
    for (size_t i = 0; i < NWRITE_PATHS; i++) {
        for (int climbing = 0; climbing < 2; climbing++) {
            setup();
            bound_device();
            char *p = ptk_path(root, WRITE_PATHS[i].path);
            char *aside = NULL;
            CHECK(asprintf(&aside, "%s.orig", p) > 0);
            CHECK(rename(p, aside) == 0);
            char *target = ptk_path(outside, WRITE_PATHS[i].outside);
            ptk_symlink(root, WRITE_PATHS[i].path, climbing ? WRITE_PATHS[i].climbing : target);
            int rc = pcibind_bind(ctx, BOUND, "vfio-pci", PCIBIND_BIND_FORCE, NULL);
            if (rc >= 0) {
                printf("#   bind through %s linked to %s succeeded\n", WRITE_PATHS[i].path,
                       climbing ? WRITE_PATHS[i].climbing : target);
                harness_failed_now = 1;
            }
            /* More writes through the links, whatever they answer: none may escape either. */
            rc = pcibind_unbind(ctx, BOUND, 0);
            rc = pcibind_reattach(ctx, BOUND, NULL, 0, NULL);
            (void)rc;
            free(target);
            free(aside);
            free(p);
            teardown(); /* nothing outside written */
        }
    }
}

/* Each of them swapped for a link out of the root at the moment its write target is opened,
 * after every lookup the library made before: "race:NAME PATH LINK" (kernel-shim.c). */
static void links_swapped_in_at_the_open(void)
{
    static const char *const OPENED[NWRITE_PATHS] = {
        "bus/pci/devices/" BOUND "/driver_override", "bus/pci/devices/" BOUND "/driver_override",
        "bus/pci/drivers/mlx5_core/unbind",          "bus/pci/drivers/mlx5_core/unbind",
        "bus/pci/drivers_probe",                     "bus/pci/drivers_probe",
    };
    for (size_t i = 0; i < NWRITE_PATHS; i++) {
        setup();
        bound_device();
        char *target = ptk_path(outside, WRITE_PATHS[i].outside);
        char *line = NULL;
        CHECK(asprintf(&line, "race:%s %s %s", OPENED[i], WRITE_PATHS[i].path, target) > 0);
        ptk_fault(root, line);
        int rc = pcibind_bind(ctx, BOUND, "vfio-pci", PCIBIND_BIND_FORCE, NULL);
        char *aside = NULL;
        CHECK(asprintf(&aside, "%s.raced", WRITE_PATHS[i].path) > 0);
        char *p = ptk_path(root, aside);
        if (access(p, F_OK) != 0) {
            printf("#   the race on %s never fired\n", WRITE_PATHS[i].path);
            harness_failed_now = 1;
        }
        if (rc >= 0) {
            printf("#   bind with %s swapped for a link at the open of %s succeeded\n",
                   WRITE_PATHS[i].path, OPENED[i]);
            harness_failed_now = 1;
        }
        free(p);
        free(aside);
        free(line);
        free(target);
        teardown(); /* nothing outside written */
    }
}

RUN_TESTS(TEST_CASE(absolute_link_out_of_the_root), TEST_CASE(relative_link_climbing_out),
          TEST_CASE(attribute_linked_outside), TEST_CASE(driver_directory_linked_outside),
          TEST_CASE(symlink_loops), TEST_CASE(fifo_and_huge_files_where_attributes_belong),
          TEST_CASE(directories_where_files_belong), TEST_CASE(non_utf8_names),
          TEST_CASE(writes_succeed_in_the_tree_as_built), TEST_CASE(write_targets_linked_outside),
          TEST_CASE(links_swapped_in_at_the_open))
