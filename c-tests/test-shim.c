/* The kernel shim (kernel-shim.c, preloaded): every kernel reaction it emulates, checked with
 * plain open()/write()/close() on fake trees and by the state of the tree afterwards (links,
 * driver_override, vfio-dev, fault.table, write.log). The first test fails when the shim is not
 * loaded, so a broken LD_PRELOAD cannot make the others pass vacuously. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pcibind-testkit.h>
#include "harness.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define MLX "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00"
#define MLX_IDS "pci:v000015B3d0000101Esv*sd*bc*sc*i*"
#define NVME "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02"
#define NVME_IDS "pci:v0000144Dd0000A808sv*sd*bc*sc*i*"
#define E1000E "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00"

#define DEV1 "0000:01:00.0"
#define DEV2 "0000:02:00.0"
#define DEV3 "0000:03:00.0"

/* wr() results above this are open() failures: OPEN_FAILED + errno. */
#define OPEN_FAILED 1000

static int write_fd(int fd, const void *buf, size_t len)
{
    ssize_t n = write(fd, buf, len);
    if (n < 0)
        return errno;
    return (size_t)n == len ? 0 : -1;
}

/* Writes len bytes to ROOT/rel with open()/write()/close(): 0 or the errno. */
static int wr_n(const char *root, const char *rel, const char *buf, size_t len)
{
    char *p = ptk_path(root, rel);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    free(p);
    if (fd < 0)
        return OPEN_FAILED + errno;
    int err = write_fd(fd, buf, len);
    close(fd);
    return err;
}

static int wr(const char *root, const char *rel, const char *value)
{
    return wr_n(root, rel, value, strlen(value));
}

static const char *err_name(int e)
{
    static char bufs[4][64];
    static int next;
    char *b = bufs[next++ % 4];
    if (e == 0)
        return "success";
    if (e == -1)
        return "short write";
    if (e > OPEN_FAILED)
        snprintf(b, 64, "open failed: %s", strerrorname_np(e - OPEN_FAILED));
    else
        snprintf(b, 64, "%s", strerrorname_np(e) ? strerrorname_np(e) : "?");
    return b;
}

#define CHECK_ERR(call, expected)                                                        \
    do {                                                                                 \
        int e_ = (call), x_ = (expected);                                                \
        if (e_ != x_) {                                                                  \
            printf("#   %s:%d: %s gave %s, expected %s\n", __FILE__, __LINE__, #call,    \
                   err_name(e_), err_name(x_));                                          \
            harness_failed_now = 1;                                                      \
        }                                                                                \
    } while (0)

#define CHECK_FILE(root, rel, expected)                                                  \
    do {                                                                                 \
        char *f_ = ptk_read(root, rel);                                                   \
        CHECK_STR(f_, expected);                                                         \
        free(f_);                                                                        \
    } while (0)

#define CHECK_LOG(root, expected)                                                        \
    do {                                                                                 \
        char *l_ = ptk_write_log(root);                                                   \
        CHECK_STR(l_, expected);                                                         \
        free(l_);                                                                        \
    } while (0)

#define CHECK_OVERRIDE(root, bdf, expected)                                              \
    do {                                                                                 \
        char *o_ = ptk_override(root, bdf);                                               \
        CHECK_STR(o_, expected);                                                         \
        free(o_);                                                                        \
    } while (0)

#define CHECK_BOUND(root, bdf, driver)                                                   \
    do {                                                                                 \
        if (!ptk_is_bound_to(root, bdf, driver)) {                                        \
            printf("#   %s:%d: %s is not bound to %s\n", __FILE__, __LINE__, bdf,        \
                   driver ? driver : "(nothing)");                                       \
            harness_failed_now = 1;                                                      \
        }                                                                                \
    } while (0)

static int exists(const char *root, const char *rel)
{
    char *p = ptk_path(root, rel);
    struct stat st;
    int r = lstat(p, &st) == 0;
    free(p);
    return r;
}

static int is_dir(const char *root, const char *rel)
{
    char *p = ptk_path(root, rel);
    struct stat st;
    int r = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    return r;
}

/* mlx5_core (IDs match MLX), nvme (IDs match NVME), vfio-pci (VFIO, no ID table). */
static char *standard_tree(void)
{
    char *root = ptk_new();
    ptk_loaded_driver(root, "mlx5_core", "mlx5_core");
    ptk_driver_ids(root, "mlx5_core", MLX_IDS);
    ptk_loaded_driver(root, "nvme", "nvme");
    ptk_driver_ids(root, "nvme", NVME_IDS);
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    return root;
}

/* ---- the shim is there ------------------------------------------------------------------- */

static void shim_is_loaded(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1 "\n"), 0);
    /* Without the shim the bytes would have landed in the file and nothing would be bound. */
    CHECK_FILE(root, "bus/pci/drivers/mlx5_core/bind", "");
    CHECK_BOUND(root, DEV1, "mlx5_core");
    char *link = ptk_path(root, "bus/pci/drivers/mlx5_core/" DEV1);
    char target[256] = {0};
    CHECK(readlink(link, target, sizeof target - 1) > 0);
    CHECK_STR(target, "../../../../devices/pci0000:00/" DEV1);
    free(link);
    CHECK_LOG(root, "bus/pci/drivers/mlx5_core/bind\t" DEV1 "\\n\tok\n");
    ptk_destroy(root);
}

static void real_sys_is_never_opened_for_writing(void)
{
    /* Does not exist: without the shim this is ENOENT, with it the refusal comes first. */
    int fd = open("/sys/bus/pci/kernel-shim-test-nonexistent", O_WRONLY);
    CHECK(fd < 0 && errno == EACCES);
    if (fd >= 0)
        close(fd);
    fd = open("/sys/bus/pci/../pci/kernel-shim-test-nonexistent", O_RDONLY);
    CHECK(fd < 0 && errno == ENOENT); /* reading stays allowed */
}

/* ---- driver_override --------------------------------------------------------------------- */

static void override_stores_up_to_the_first_newline(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    const char *f = "bus/pci/devices/" DEV1 "/driver_override";
    CHECK_OVERRIDE(root, DEV1, "(null)");

    CHECK_ERR(wr(root, f, "vfio-pci"), 0);
    CHECK_FILE(root, f, "vfio-pci\n");
    CHECK_ERR(wr(root, f, "nvme\n"), 0);
    CHECK_OVERRIDE(root, DEV1, "nvme");
    CHECK_ERR(wr(root, f, "vfio_pci"), 0); /* no -/_ folding */
    CHECK_OVERRIDE(root, DEV1, "vfio_pci");
    CHECK_ERR(wr(root, f, "  \n"), 0); /* no trimming either */
    CHECK_OVERRIDE(root, DEV1, "  ");
    CHECK_ERR(wr(root, f, "a\nb\n"), 0);
    CHECK_OVERRIDE(root, DEV1, "a");
    CHECK_ERR(wr_n(root, f, "b\0c", 3), 0); /* the store sees a C string */
    CHECK_OVERRIDE(root, DEV1, "b");
    CHECK_ERR(wr(root, f, "\n"), 0); /* clears */
    CHECK_FILE(root, f, "(null)\n");
    CHECK_BOUND(root, DEV1, NULL); /* none of this binds */
    ptk_destroy(root);
}

static void override_empty_and_oversized_writes(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    const char *f = "bus/pci/devices/" DEV1 "/driver_override";
    CHECK_ERR(wr(root, f, "nvme"), 0);
    CHECK_ERR(wr(root, f, ""), 0); /* zero-length: returns 0, changes nothing */
    CHECK_OVERRIDE(root, DEV1, "nvme");

    char big[4096];
    memset(big, 'x', sizeof big);
    CHECK_ERR(wr_n(root, f, big, 4095), EINVAL); /* longer than sysfs can show back */
    CHECK_OVERRIDE(root, DEV1, "nvme");
    CHECK_ERR(wr_n(root, f, big, 4094), 0);
    char *o = ptk_override(root, DEV1);
    CHECK(o && strlen(o) == 4094);
    free(o);
    ptk_destroy(root);
}

static void override_never_unbinds(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "vfio-pci\n"), 0);
    CHECK_BOUND(root, DEV1, "mlx5_core");
    CHECK_OVERRIDE(root, DEV1, "vfio-pci");
    /* drivers_probe on a bound device: success, no change, whatever the override says. */
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_BOUND(root, DEV1, "mlx5_core");
    CHECK(!exists(root, "bus/pci/devices/" DEV1 "/vfio-dev"));
    ptk_destroy(root);
}

static void override_through_the_device_directory(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    const char *f = "devices/pci0000:00/" DEV1 "/driver_override";
    CHECK_ERR(wr(root, f, "vfio-pci\n"), 0);
    CHECK_OVERRIDE(root, DEV1, "vfio-pci");
    /* The log names the attribute by its bus path, however it was reached. */
    CHECK_LOG(root, "bus/pci/devices/" DEV1 "/driver_override\tvfio-pci\\n\tok\n");
    /* A fault named by the bus path applies to the same file reached another way. */
    ptk_fault(root, "bus/pci/devices/" DEV1 "/driver_override EIO");
    CHECK_ERR(wr(root, f, "\n"), EIO);
    CHECK_OVERRIDE(root, DEV1, "vfio-pci");
    ptk_destroy(root);
}

/* ---- bind -------------------------------------------------------------------------------- */

static void bind_follows_the_id_table(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    ptk_device(root, DEV2, NVME, NULL);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV2), ENODEV);
    CHECK_BOUND(root, DEV2, NULL);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), 0); /* newline optional */
    CHECK_BOUND(root, DEV1, "mlx5_core");
    CHECK(!exists(root, "bus/pci/devices/" DEV1 "/vfio-dev")); /* not a VFIO driver */
    CHECK_ERR(wr(root, "bus/pci/drivers/nvme/bind", DEV2 "\n"), 0);
    CHECK_BOUND(root, DEV2, "nvme");
    CHECK_FILE(root, "bus/pci/drivers/nvme/bind", "");
    CHECK_LOG(root, "bus/pci/drivers/mlx5_core/bind\t" DEV2 "\tENODEV\n"
                    "bus/pci/drivers/mlx5_core/bind\t" DEV1 "\tok\n"
                    "bus/pci/drivers/nvme/bind\t" DEV2 "\\n\tok\n");
    ptk_destroy(root);
}

static void bind_needs_the_exact_full_name(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    const char *bind = "bus/pci/drivers/mlx5_core/bind";
    CHECK_ERR(wr(root, bind, "0000:09:00.0\n"), ENODEV);
    CHECK_ERR(wr(root, bind, "01:00.0\n"), ENODEV); /* the short form is unknown */
    CHECK_ERR(wr(root, bind, DEV1 "\n\n"), ENODEV); /* only one newline is forgiven */
    CHECK_ERR(wr(root, bind, " " DEV1), ENODEV);
    CHECK_ERR(wr(root, bind, "\n"), ENODEV);
    CHECK_ERR(wr(root, bind, "../../../devices/pci0000:00/" DEV1), ENODEV);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_ERR(wr(root, bind, ""), 0); /* never reaches the kernel */
    CHECK_BOUND(root, DEV1, NULL);
    ptk_destroy(root);
}

static void bind_to_a_bound_device(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), EBUSY);
    /* bind_store() checks the match before device_driver_attach() sees the device is bound. */
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV1), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV1), EBUSY);
    CHECK_BOUND(root, DEV1, "mlx5_core");
    CHECK(!exists(root, "bus/pci/drivers/vfio-pci/" DEV1));
    ptk_destroy(root);
}

static void vfio_pci_binds_only_with_the_exact_override(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    const char *ovr = "bus/pci/devices/" DEV1 "/driver_override";
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV1), ENODEV); /* no ID table */
    CHECK_ERR(wr(root, ovr, "vfio_pci\n"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV1), ENODEV);
    CHECK_ERR(wr(root, ovr, "vfio-pci\n"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV1), 0);
    CHECK_BOUND(root, DEV1, "vfio-pci");
    CHECK(is_dir(root, "devices/pci0000:00/" DEV1 "/vfio-dev/vfio0"));
    ptk_destroy(root);
}

static void an_override_excludes_every_other_driver(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "nvme\n"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), ENODEV); /* IDs match, but */
    CHECK_BOUND(root, DEV1, NULL);
    /* The driver it names binds although its IDs do not match. */
    CHECK_ERR(wr(root, "bus/pci/drivers/nvme/bind", DEV1), 0);
    CHECK_BOUND(root, DEV1, "nvme");
    ptk_destroy(root);
}

/* As on a real kernel (kernel-tests/guest-test.c, kernel_back_onto_vfio_pci_only_through_the_
 * override): with the override cleared, vfio-pci/bind answers ENODEV; with the override
 * `vfio-pci`, drivers_probe binds vfio-pci; with it cleared, drivers_probe gives the device to
 * its host driver. SPEC 3.3's restore order rests on these. */
static void back_onto_vfio_pci_only_through_the_override(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    const char *ovr = "bus/pci/devices/" DEV1 "/driver_override";
    CHECK_ERR(wr(root, ovr, "vfio-pci"), 0); /* on vfio-pci, as a bind leaves it */
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV1), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_BOUND(root, DEV1, "vfio-pci");
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/unbind", DEV1), 0);
    CHECK_ERR(wr(root, ovr, "\n"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV1), ENODEV);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_ERR(wr(root, ovr, "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_BOUND(root, DEV1, "vfio-pci");
    CHECK(is_dir(root, "bus/pci/devices/" DEV1 "/vfio-dev/vfio0"));
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/unbind", DEV1), 0);
    CHECK_ERR(wr(root, ovr, "\n"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_BOUND(root, DEV1, "mlx5_core");
    CHECK_OVERRIDE(root, DEV1, "(null)");
    CHECK(!exists(root, "bus/pci/devices/" DEV1 "/vfio-dev"));
    ptk_destroy(root);
}

/* ---- unbind ------------------------------------------------------------------------------ */

static void unbind_only_through_the_bound_driver(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/unbind", DEV1), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", "0000:09:00.0"), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", "01:00.0\n"), ENODEV);
    CHECK_BOUND(root, DEV1, "mlx5_core");
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV1 "\n"), 0);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK(!exists(root, "bus/pci/devices/" DEV1 "/driver"));
    CHECK(!exists(root, "bus/pci/drivers/mlx5_core/" DEV1));
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV1), ENODEV); /* not bound */
    CHECK_FILE(root, "bus/pci/drivers/mlx5_core/unbind", "");
    ptk_destroy(root);
}

static void unbind_from_vfio_removes_vfio_dev(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_BOUND(root, DEV1, "vfio-pci");
    CHECK(is_dir(root, "bus/pci/devices/" DEV1 "/vfio-dev/vfio0"));
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/unbind", DEV1), 0);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK(!exists(root, "bus/pci/devices/" DEV1 "/vfio-dev"));
    CHECK_OVERRIDE(root, DEV1, "vfio-pci"); /* unbinding leaves the override alone */
    ptk_destroy(root);
}

/* As on a real kernel (checked by kernel-tests/guest-test.c): each device bound to a VFIO
 * driver gets vfio-dev/vfioN with the lowest N no other device holds. */
static void vfio_dev_takes_the_lowest_free_index(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    ptk_device(root, DEV2, MLX, NULL);
    ptk_device(root, DEV3, NVME, "nvme");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV2), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV1), 0);
    CHECK(is_dir(root, "bus/pci/devices/" DEV2 "/vfio-dev/vfio0"));
    CHECK(is_dir(root, "bus/pci/devices/" DEV1 "/vfio-dev/vfio1"));
    CHECK(!exists(root, "bus/pci/devices/" DEV1 "/vfio-dev/vfio0"));
    /* vfio0 freed, then taken again by the next device bound. */
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/unbind", DEV2), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/nvme/unbind", DEV3), 0);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV3 "/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV3), 0);
    CHECK(is_dir(root, "bus/pci/devices/" DEV3 "/vfio-dev/vfio0"));
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV2), 0);
    CHECK(is_dir(root, "bus/pci/devices/" DEV2 "/vfio-dev/vfio2"));
    CHECK(is_dir(root, "bus/pci/devices/" DEV1 "/vfio-dev/vfio1"));
    ptk_destroy(root);
}

/* As on a real kernel (kernel-tests/guest-test.c, kernel_group_node_lives_while_a_member_is_on_
 * vfio): in a tree with dev/vfio/, the group's node appears when the first device of the group
 * binds to a VFIO driver and stays until the last one leaves; with dev/vfio/devices/ each
 * device also gets vfio/devices/vfioN for as long as it is bound. */
static void vfio_nodes_follow_binds(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    ptk_device(root, DEV2, MLX, "mlx5_core");
    ptk_iommu_group(root, 7, DEV1);
    ptk_iommu_group(root, 7, DEV2);
    ptk_mkdirs(root, "dev/vfio/devices");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK(exists(root, "dev/vfio/7"));
    CHECK(exists(root, "dev/vfio/devices/vfio0"));
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV2), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV2), 0);
    CHECK(exists(root, "dev/vfio/devices/vfio1"));
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/unbind", DEV1), 0);
    CHECK(!exists(root, "dev/vfio/devices/vfio0"));
    CHECK(exists(root, "dev/vfio/7")); /* DEV2 is still on vfio-pci */
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/unbind", DEV2), 0);
    CHECK(!exists(root, "dev/vfio/7"));
    CHECK(!exists(root, "dev/vfio/devices/vfio1"));
    /* Without dev/vfio/ (a test that wants no dev tree) nothing is made. */
    ptk_destroy(ptk_path(root, "dev"));
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_BOUND(root, DEV1, "vfio-pci");
    CHECK(!exists(root, "dev"));
    ptk_destroy(root);
}

/* An O_EXCL open of a block device node in the tree never reaches the device the node names
 * (here 259:0, an NVMe namespace's number on a real machine): the shim answers as the block
 * layer would, EBUSY while fault.table marks it held (as many times as the line says), else an
 * O_PATH descriptor of the node; once the line is spent, the disk is free. Opens without O_EXCL
 * and nodes outside the tree are not its business. */
static void exclusive_opens_of_block_nodes_get_the_block_layers_answer(void)
{
    char *root = standard_tree();
    if (ptk_block_node(root, "nvme0n1", 259, 0) < 0) {
        printf("# skipped: cannot make block device nodes here (%s)\n", strerror(errno));
        ptk_destroy(root);
        return;
    }
    char *link = ptk_path(root, "dev/block/259:0");
    char target[64] = "";
    CHECK(readlink(link, target, sizeof(target) - 1) > 0);
    CHECK_STR(target, "../nvme0n1");
    ptk_fault(root, "open-excl:259:0 EBUSY 2");
    for (int i = 0; i < 2; i++) {
        errno = 0;
        CHECK(open(link, O_RDONLY | O_EXCL | O_NONBLOCK | O_CLOEXEC) == -1);
        CHECK_ERR(errno, EBUSY);
    }
    int fd = open(link, O_RDONLY | O_EXCL | O_NONBLOCK | O_CLOEXEC);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fd >= 0 && fstat(fd, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == makedev(259, 0));
    CHECK(fcntl(fd, F_GETFL) & O_PATH); /* never the device itself */
    if (fd >= 0)
        close(fd);
    free(link);
    ptk_destroy(root);
}

/* As on the real kernels with QEMU's SR-IOV NVMe (kernel-tests: each VF in a group of its own,
 * the group gone with the VF): the VFs of a PF in an IOMMU group get the lowest free group
 * numbers, and lose them when they are removed; the groups a test laid out stay. */
static void vfs_get_iommu_groups_of_their_own(void)
{
    char *root = standard_tree();
    ptk_write(root, "bus/pci/drivers/mlx5_core/fake_sriov_configure", "");
    ptk_device(root, DEV1, MLX, "mlx5_core");
    ptk_iommu_group(root, 1, DEV1);
    ptk_mkdirs(root, "kernel/iommu_groups/0/devices");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_totalvfs", "4\n");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_numvfs", "0\n");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_drivers_autoprobe", "0\n");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/sriov_numvfs", "2"), 0);
    CHECK(exists(root, "kernel/iommu_groups/2/devices/0000:01:00.1"));
    CHECK(exists(root, "kernel/iommu_groups/3/devices/0000:01:00.2"));
    char *l = ptk_path(root, "devices/pci0000:00/0000:01:00.2/iommu_group");
    char target[256] = "";
    CHECK(readlink(l, target, sizeof target - 1) > 0);
    CHECK_STR(target, "../../../kernel/iommu_groups/3");
    free(l);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/sriov_numvfs", "0"), 0);
    CHECK(!exists(root, "kernel/iommu_groups/2"));
    CHECK(!exists(root, "kernel/iommu_groups/3"));
    CHECK(is_dir(root, "kernel/iommu_groups/0"));
    CHECK(exists(root, "kernel/iommu_groups/1/devices/" DEV1));
    ptk_destroy(root);
}

/* ---- drivers_probe ----------------------------------------------------------------------- */

static void drivers_probe_unknown_devices(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", "0000:09:00.0\n"), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", "01:00.0"), ENODEV);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_FILE(root, "bus/pci/drivers_probe", "");
    ptk_destroy(root);
}

static void drivers_probe_with_an_override(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    ptk_device(root, DEV2, MLX, NULL);
    /* Only the named driver is tried, IDs or not. */
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "nvme"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1 "\n"), 0);
    CHECK_BOUND(root, DEV1, "nvme");
    /* An override naming no driver: success, and nothing binds (mlx5_core is not tried). */
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "vfio_pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV2 "\n"), 0);
    CHECK_BOUND(root, DEV2, NULL);
    CHECK_FILE(root, "bus/pci/drivers_probe", "");
    ptk_destroy(root);
}

static void drivers_probe_without_an_override(void)
{
    char *root = standard_tree();
    ptk_loaded_driver(root, "aaa", "aaa");
    ptk_driver_ids(root, "aaa", "pci:v000015B3d*");
    ptk_device(root, DEV1, MLX, NULL);
    ptk_device(root, DEV2, E1000E, NULL);
    /* Matching drivers in name order: aaa before mlx5_core. */
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_BOUND(root, DEV1, "aaa");
    /* No driver matches: success all the same. */
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV2), 0);
    CHECK_BOUND(root, DEV2, NULL);
    CHECK_LOG(root, "bus/pci/drivers_probe\t" DEV1 "\tok\n"
                    "bus/pci/drivers_probe\t" DEV2 "\tok\n");
    ptk_destroy(root);
}

/* ---- fault.table ------------------------------------------------------------------------- */

static void probe_fault_fails_bind(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    ptk_fault(root, "probe:mlx5_core ENXIO 1");
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), ENXIO);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_FILE(root, "fault.table", "probe:mlx5_core ENXIO 0\n");
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), 0); /* used up */
    CHECK_BOUND(root, DEV1, "mlx5_core");
    CHECK_LOG(root, "bus/pci/drivers/mlx5_core/bind\t" DEV1 "\tENXIO\n"
                    "bus/pci/drivers/mlx5_core/bind\t" DEV1 "\tok\n");
    ptk_destroy(root);
}

static void probe_fault_with_override_tries_no_other_driver(void)
{
    char *root = standard_tree();
    ptk_loaded_driver(root, "aaa", "aaa");
    ptk_driver_ids(root, "aaa", MLX_IDS);
    ptk_device(root, DEV1, MLX, NULL);
    ptk_fault(root, "probe:mlx5_core EIO");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "mlx5_core"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), EIO); /* unlimited */
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_FILE(root, "fault.table", "probe:mlx5_core EIO\n");
    ptk_destroy(root);
}

static void probe_fault_without_override_moves_on(void)
{
    char *root = standard_tree();
    ptk_loaded_driver(root, "aaa", "aaa");
    ptk_driver_ids(root, "aaa", MLX_IDS);
    ptk_device(root, DEV1, MLX, NULL);
    ptk_device(root, DEV2, MLX, NULL);
    ptk_fault(root, "probe:aaa@" DEV1 " ENODEV");
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_BOUND(root, DEV1, "mlx5_core"); /* aaa refused it, the next one took it */
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV2), 0);
    CHECK_BOUND(root, DEV2, "aaa"); /* the fault named the other device */
    ptk_destroy(root);
}

static void write_faults_change_nothing(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    ptk_device(root, DEV2, MLX, NULL);
    ptk_fault(root, "# comments and blank lines are skipped");
    ptk_fault(root, "");
    ptk_fault(root, "bus/pci/drivers/mlx5_core/unbind EBUSY 1");
    ptk_fault(root, "bus/pci/devices/" DEV2 "/driver_override EPERM 2");
    ptk_fault(root, "bus/pci/drivers_probe ENOMEM 1");
    ptk_fault(root, "bus/pci/drivers/mlx5_core/bind 11 1"); /* a number works too: EAGAIN */
    ptk_fault(root, "bus/pci/drivers/nvme/bind EINVAL 0"); /* spent: never fires */

    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV1), EBUSY);
    CHECK_BOUND(root, DEV1, "mlx5_core");
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV1), 0);
    CHECK_BOUND(root, DEV1, NULL);

    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "nvme"), EPERM);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "nvme"), EPERM);
    CHECK_OVERRIDE(root, DEV2, "(null)");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "nvme"), 0);
    CHECK_OVERRIDE(root, DEV2, "nvme");

    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV2), ENOMEM);
    CHECK_BOUND(root, DEV2, NULL);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV2), 0);
    CHECK_BOUND(root, DEV2, "nvme");

    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), EAGAIN);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_ERR(wr(root, "bus/pci/drivers/nvme/unbind", DEV2), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/nvme/bind", DEV2), 0);

    CHECK_FILE(root, "fault.table",
               "# comments and blank lines are skipped\n"
               "\n"
               "bus/pci/drivers/mlx5_core/unbind EBUSY 0\n"
               "bus/pci/devices/" DEV2 "/driver_override EPERM 0\n"
               "bus/pci/drivers_probe ENOMEM 0\n"
               "bus/pci/drivers/mlx5_core/bind 11 0\n"
               "bus/pci/drivers/nvme/bind EINVAL 0\n");
    CHECK_LOG(root, "bus/pci/drivers/mlx5_core/unbind\t" DEV1 "\tEBUSY\n"
                    "bus/pci/drivers/mlx5_core/unbind\t" DEV1 "\tok\n"
                    "bus/pci/devices/" DEV2 "/driver_override\tnvme\tEPERM\n"
                    "bus/pci/devices/" DEV2 "/driver_override\tnvme\tEPERM\n"
                    "bus/pci/devices/" DEV2 "/driver_override\tnvme\tok\n"
                    "bus/pci/drivers_probe\t" DEV2 "\tENOMEM\n"
                    "bus/pci/drivers_probe\t" DEV2 "\tok\n"
                    "bus/pci/drivers/mlx5_core/bind\t" DEV1 "\tEAGAIN\n"
                    "bus/pci/drivers/nvme/unbind\t" DEV2 "\tok\n"
                    "bus/pci/drivers/nvme/bind\t" DEV2 "\tok\n");
    ptk_destroy(root);
}

static void a_fault_can_skip_the_first_matching_writes(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV2, MLX, NULL);
    /* Let two writes pass, fail the third, then never again. */
    ptk_fault(root, "bus/pci/devices/" DEV2 "/driver_override EIO 1 2");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "nvme"), 0);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "\n"), 0);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "nvme"), EIO);
    CHECK_OVERRIDE(root, DEV2, "(null)");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "nvme"), 0);
    CHECK_OVERRIDE(root, DEV2, "nvme");
    CHECK_FILE(root, "fault.table", "bus/pci/devices/" DEV2 "/driver_override EIO 0\n");
    ptk_destroy(root);
}

static void vanish_after_unbind(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    ptk_device(root, DEV2, MLX, "mlx5_core");
    ptk_iommu_group(root, 7, DEV1);
    ptk_fault(root, "vanish:" DEV1 " after-unbind");

    /* An fd opened before the device goes answers ENODEV afterwards, as sysfs does. */
    char *ovr = ptk_path(root, "bus/pci/devices/" DEV1 "/driver_override");
    int fd = open(ovr, O_WRONLY);
    CHECK(fd >= 0);

    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV1), 0);
    CHECK(!exists(root, "devices/pci0000:00/" DEV1));
    CHECK(!exists(root, "bus/pci/devices/" DEV1));
    CHECK(!exists(root, "bus/pci/drivers/mlx5_core/" DEV1));
    CHECK(!exists(root, "kernel/iommu_groups/7/devices/" DEV1));
    CHECK(is_dir(root, "kernel/iommu_groups/7"));
    CHECK_BOUND(root, DEV2, "mlx5_core"); /* the other one stays */

    CHECK_ERR(write_fd(fd, "nvme", 4), ENODEV);
    close(fd);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV1), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "\n"), OPEN_FAILED + ENOENT);
    free(ovr);
    ptk_destroy(root);
}

/* ---- new_id / remove_id ------------------------------------------------------------------ */

static void new_id_binds_every_eligible_device(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);          /* unbound, no override: binds */
    ptk_device(root, DEV2, MLX, NULL);          /* override names nvme: stays */
    ptk_device(root, DEV3, MLX, "mlx5_core");   /* bound: stays */
    ptk_device(root, "0000:04:00.0", NVME, NULL); /* other ID: stays */
    ptk_device(root, "0000:05:00.0", NVME, NULL); /* override names vfio-pci: binds */
    ptk_device(root, "0000:06:00.0", MLX, NULL);  /* its probe fails: stays, new_id succeeds */
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "nvme"), 0);
    CHECK_ERR(wr(root, "bus/pci/devices/0000:05:00.0/driver_override", "vfio-pci"), 0);
    ptk_fault(root, "probe:vfio-pci@0000:06:00.0 EIO");

    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/new_id", "15b3 101e\n"), 0);
    CHECK_FILE(root, "bus/pci/drivers/vfio-pci/fake_dynids", "15b3 101e\n");
    CHECK_FILE(root, "bus/pci/drivers/vfio-pci/new_id", "");
    CHECK_BOUND(root, DEV1, "vfio-pci");
    CHECK(is_dir(root, "bus/pci/devices/" DEV1 "/vfio-dev/vfio0"));
    CHECK_BOUND(root, DEV2, NULL);
    CHECK_BOUND(root, DEV3, "mlx5_core");
    CHECK_BOUND(root, "0000:04:00.0", NULL);
    CHECK_BOUND(root, "0000:05:00.0", "vfio-pci");
    CHECK_BOUND(root, "0000:06:00.0", NULL);

    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/new_id", "15B3 101E"), EEXIST);
    CHECK_FILE(root, "bus/pci/drivers/vfio-pci/fake_dynids", "15b3 101e\n");
    ptk_destroy(root);
}

static void new_id_refuses_bad_and_known_ids(void)
{
    char *root = standard_tree();
    const char *new_id = "bus/pci/drivers/mlx5_core/new_id";
    CHECK_ERR(wr(root, new_id, "15b3\n"), EINVAL);
    CHECK_ERR(wr(root, new_id, "zz 101e\n"), EINVAL);
    CHECK_ERR(wr(root, new_id, "\n"), EINVAL);
    CHECK_ERR(wr(root, new_id, "15b3 101e\n"), EEXIST); /* its static table has it */
    CHECK_FILE(root, "bus/pci/drivers/mlx5_core/fake_dynids", NULL);
    CHECK_ERR(wr(root, new_id, "15b3 1021\n"), 0);
    CHECK_ERR(wr(root, new_id, "15b3 1021 15b3 0048\n"), EEXIST); /* covered by 15b3 1021 */
    CHECK_FILE(root, "bus/pci/drivers/mlx5_core/fake_dynids", "15b3 1021\n");
    ptk_destroy(root);
}

static void dynamic_ids_bind_and_remove_id_removes_them(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/new_id", "15b3 101e"), 0);
    CHECK_BOUND(root, DEV1, "mlx5_core"); /* bound devices are left alone */
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV1), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV1), 0); /* by the dynamic ID */
    CHECK_BOUND(root, DEV1, "vfio-pci");

    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/remove_id", "15b3\n"), EINVAL);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/remove_id", "15b3 1021\n"), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/remove_id", "15b3 101e\n"), 0);
    CHECK_FILE(root, "bus/pci/drivers/vfio-pci/fake_dynids", "");
    CHECK_FILE(root, "bus/pci/drivers/vfio-pci/remove_id", "");
    CHECK_BOUND(root, DEV1, "vfio-pci"); /* remove_id unbinds nothing */
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/remove_id", "15b3 101e\n"), ENODEV);

    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/unbind", DEV1), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/bind", DEV1), ENODEV); /* the ID is gone */
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_BOUND(root, DEV1, "mlx5_core");
    ptk_destroy(root);
}

static void full_form_dynamic_ids(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);                          /* subsystem 15b3:0048 */
    ptk_device(root, DEV2, "pci:v000015B3d0000101Esv000015B3sd00000049bc02sc00i00", NULL);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/new_id", "15b3 101e 15b3 0049"), 0);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_BOUND(root, DEV2, "vfio-pci");
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/remove_id", "15b3 101e 15b3 0048"), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/remove_id", "15b3 101e"), 0);
    CHECK_FILE(root, "bus/pci/drivers/vfio-pci/fake_dynids", "");
    ptk_destroy(root);
}

/* ---- write.log, pass-through, entry points ----------------------------------------------- */

static void write_log_escapes_values(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    const char *ovr = "bus/pci/devices/" DEV1 "/driver_override";
    CHECK_ERR(wr(root, ovr, "a\tb\\c\x01\xff\n"), 0);
    CHECK_ERR(wr(root, ovr, ""), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/nvme/bind", DEV1), ENODEV);
    CHECK_LOG(root, "bus/pci/devices/" DEV1 "/driver_override\ta\\tb\\\\c\\x01\\xff\\n\tok\n"
                    "bus/pci/devices/" DEV1 "/driver_override\t\tok\n"
                    "bus/pci/drivers/nvme/bind\t" DEV1 "\tENODEV\n");
    ptk_destroy(root);
}

static void other_files_pass_through(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    /* A file under the root that is not one of the kernel's: bytes land as usual. */
    CHECK_ERR(wr(root, "devices/pci0000:00/" DEV1 "/modalias", "hello"), 0);
    char *m = ptk_read(root, "devices/pci0000:00/" DEV1 "/modalias");
    CHECK(m && strncmp(m, "hello", 5) == 0 && strcmp(m + 5, &(MLX "\n")[5]) == 0);
    free(m);
    /* Opened read-only: not tracked, so the write fails like any write to such an fd. */
    char *bind = ptk_path(root, "bus/pci/drivers/mlx5_core/bind");
    int fd = open(bind, O_RDONLY);
    CHECK(fd >= 0);
    CHECK_ERR(write_fd(fd, DEV1, strlen(DEV1)), EBADF);
    close(fd);
    /* A kernel-looking path outside the fake root is an ordinary file. */
    char *other = ptk_new();
    setenv("FAKE_SYSFS_ROOT", root, 1);
    ptk_loaded_driver(other, "mlx5_core", "mlx5_core");
    CHECK_ERR(wr(other, "bus/pci/drivers/mlx5_core/bind", DEV1), 0);
    CHECK_FILE(other, "bus/pci/drivers/mlx5_core/bind", DEV1);
    /* Without FAKE_SYSFS_ROOT nothing is emulated. */
    unsetenv("FAKE_SYSFS_ROOT");
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), 0);
    CHECK_FILE(root, "bus/pci/drivers/mlx5_core/bind", DEV1);
    CHECK_BOUND(root, DEV1, NULL);
    setenv("FAKE_SYSFS_ROOT", root, 1);
    CHECK_LOG(root, "");
    CHECK_LOG(other, "");
    free(bind);
    ptk_destroy(other);
    ptk_destroy(root);
}

static void open_flags_are_those_of_sysfs(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "nvme"), 0);
    /* O_TRUNC truncates nothing (as `echo x > driver_override` shows). */
    char *ovr = ptk_path(root, "bus/pci/devices/" DEV1 "/driver_override");
    int fd = open(ovr, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK_OVERRIDE(root, DEV1, "nvme");
    CHECK_ERR(write_fd(fd, "vfio-pci\n", 9), 0);
    CHECK_OVERRIDE(root, DEV1, "vfio-pci");
    close(fd);
    /* O_RDWR is tracked too, and reads see the new value. */
    fd = open(ovr, O_RDWR);
    CHECK_ERR(write_fd(fd, "\n", 1), 0);
    char buf[32] = {0};
    CHECK(pread(fd, buf, sizeof buf - 1, 0) == 7);
    CHECK_STR(buf, "(null)\n");
    close(fd);
    /* Creating a kernel file that is not there: sysfs directories refuse. */
    char *missing = ptk_path(root, "bus/pci/drivers/nosuch/bind");
    ptk_mkdirs(root, "bus/pci/drivers/nosuch");
    fd = open(missing, O_WRONLY | O_CREAT, 0644);
    CHECK(fd < 0 && errno == EACCES);
    CHECK(!exists(root, "bus/pci/drivers/nosuch/bind"));
    fd = open(missing, O_WRONLY);
    CHECK(fd < 0 && errno == ENOENT);
    free(missing);
    free(ovr);
    ptk_destroy(root);
}

static void every_entry_point_is_emulated(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    ptk_device(root, DEV2, NVME, NULL);
    char *bind = ptk_path(root, "bus/pci/drivers/mlx5_core/bind");
    char *unbind = ptk_path(root, "bus/pci/drivers/mlx5_core/unbind");

    int fd = open64(bind, O_WRONLY | O_CLOEXEC);
    CHECK_ERR(write_fd(fd, DEV1, strlen(DEV1)), 0);
    close(fd);
    CHECK_BOUND(root, DEV1, "mlx5_core");

    fd = openat(AT_FDCWD, unbind, O_WRONLY);
    struct iovec iov[2] = {{(void *)"0000:01", 7}, {(void *)":00.0\n", 6}};
    CHECK(writev(fd, iov, 2) == 13);
    close(fd);
    CHECK_BOUND(root, DEV1, NULL);

    int dirfd = open(root, O_RDONLY | O_DIRECTORY);
    fd = openat64(dirfd, "bus/pci/drivers/mlx5_core/bind", O_WRONLY);
    CHECK(pwrite(fd, DEV1, strlen(DEV1), 42) == (ssize_t)strlen(DEV1));
    close(fd);
    CHECK_BOUND(root, DEV1, "mlx5_core");

    /* A relative path from the working directory. */
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(fchdir(dirfd) == 0);
    fd = open("bus/pci/drivers/../drivers/mlx5_core/unbind", O_WRONLY);
    int copy = dup(fd);
    close(fd);
    CHECK_ERR(write_fd(copy, DEV1, strlen(DEV1)), 0); /* through the duplicate */
    close(copy);
    CHECK(chdir(cwd) == 0);
    CHECK_BOUND(root, DEV1, NULL);
    close(dirfd);

    /* dup2 onto a tracked fd: the new file is not ours any more. */
    fd = open(bind, O_WRONLY);
    char *plain = ptk_path(root, "plain-file");
    int other = open(plain, O_WRONLY | O_CREAT, 0644);
    CHECK(dup2(other, fd) == fd);
    CHECK_ERR(write_fd(fd, "text", 4), 0);
    close(fd);
    close(other);
    CHECK_FILE(root, "plain-file", "text");
    CHECK_FILE(root, "bus/pci/drivers/mlx5_core/bind", "");

    CHECK_LOG(root, "bus/pci/drivers/mlx5_core/bind\t" DEV1 "\tok\n"
                    "bus/pci/drivers/mlx5_core/unbind\t" DEV1 "\\n\tok\n"
                    "bus/pci/drivers/mlx5_core/bind\t" DEV1 "\tok\n"
                    "bus/pci/drivers/mlx5_core/unbind\t" DEV1 "\tok\n");
    free(plain);
    free(bind);
    free(unbind);
    ptk_destroy(root);
}

static void devices_in_other_directories(void)
{
    char *root = standard_tree();
    ptk_device_under(root, "devices/pci0000:40/0000:40:01.0", "0000:41:00.0", MLX, NULL);
    ptk_device_under(root, "devices/pci0001:00", "0001:00:00.0", MLX, NULL);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", "0000:41:00.0"), 0);
    CHECK_BOUND(root, "0000:41:00.0", "mlx5_core");
    char *link = ptk_path(root, "devices/pci0000:40/0000:40:01.0/0000:41:00.0/driver");
    char target[256] = {0};
    CHECK(readlink(link, target, sizeof target - 1) > 0);
    CHECK_STR(target, "../../../../bus/pci/drivers/mlx5_core");
    free(link);
    link = ptk_path(root, "bus/pci/drivers/mlx5_core/0000:41:00.0");
    memset(target, 0, sizeof target);
    CHECK(readlink(link, target, sizeof target - 1) > 0);
    CHECK_STR(target, "../../../../devices/pci0000:40/0000:40:01.0/0000:41:00.0");
    free(link);

    CHECK_ERR(wr(root, "devices/pci0001:00/0001:00:00.0/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", "0001:00:00.0"), 0);
    CHECK_BOUND(root, "0001:00:00.0", "vfio-pci");
    CHECK(is_dir(root, "devices/pci0001:00/0001:00:00.0/vfio-dev/vfio0"));
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", "0000:41:00.0"), 0);
    CHECK_BOUND(root, "0000:41:00.0", NULL);
    ptk_destroy(root);
}

/* ---- the opens the library makes ----------------------------------------------------------- */

/* openat2(dirfd, rel, O_WRONLY, RESOLVE_BENEATH) through syscall(): fd or -1 with errno. */
static int openat2_beneath(int dirfd, const char *rel, int flags)
{
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
}

/* How the library opens a kernel file: openat2 through syscall(), beneath a descriptor of the
 * root. Where openat2 is refused (the harness's seccomp filter; valgrind, which does not know
 * it; a kernel before 5.6) the refusal comes through unchanged. */
static void openat2_through_syscall_is_emulated(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    int dirfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd = openat2_beneath(dirfd, ".", O_PATH);
    int refused = fd < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    CHECK(refused == 0 || refused == EPERM || refused == ENOSYS);
    if (harness_refused_openat2())
        CHECK(refused != 0);
    fd = openat2_beneath(dirfd, "bus/pci/drivers/mlx5_core/bind", O_WRONLY);
    if (refused) {
        CHECK(fd < 0 && errno == refused);
        CHECK_LOG(root, "");
    } else {
        CHECK(fd >= 0);
        CHECK_ERR(write_fd(fd, DEV1, strlen(DEV1)), 0);
        close(fd);
        CHECK_BOUND(root, DEV1, "mlx5_core");
        fd = openat2_beneath(dirfd, "bus/pci/devices/" DEV1 "/driver_override", O_WRONLY);
        CHECK_ERR(write_fd(fd, "vfio-pci\n", 9), 0);
        close(fd);
        CHECK_OVERRIDE(root, DEV1, "vfio-pci");
        CHECK_LOG(root, "bus/pci/drivers/mlx5_core/bind\t" DEV1 "\tok\n"
                        "bus/pci/devices/" DEV1 "/driver_override\tvfio-pci\\n\tok\n");
    }
    /* Beneath the real / as anywhere: the real /sys is refused before the kernel is asked. */
    int slash = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    fd = openat2_beneath(slash, "sys/bus/pci/kernel-shim-test-nonexistent", O_WRONLY);
    CHECK(fd < 0 && errno == EACCES);
    close(slash);
    /* Every other call passes through, arguments and errno intact. */
    CHECK(syscall(SYS_getpid) == getpid());
    char target[64] = {0};
    char *link = ptk_path(root, "bus/pci/devices/" DEV1);
    CHECK(syscall(SYS_readlinkat, AT_FDCWD, link, target, sizeof target - 1) > 0);
    CHECK_STR(target, "../../../devices/pci0000:00/" DEV1);
    CHECK(syscall(SYS_readlinkat, AT_FDCWD, root, target, sizeof target) == -1 && errno == EINVAL);
    free(link);
    close(dirfd);
    ptk_destroy(root);
}

/* How the library's fallback walk opens a kernel file: openat() of one name in a directory it
 * holds by an O_PATH descriptor, never following a link. */
static void openat_in_a_directory_held_open_is_emulated(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    char *dev = ptk_path(root, "devices/pci0000:00/" DEV1);
    int dirfd = open(dev, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd = openat(dirfd, "driver_override", O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    CHECK_ERR(write_fd(fd, "vfio-pci", 8), 0);
    close(fd);
    close(dirfd);
    CHECK_OVERRIDE(root, DEV1, "vfio-pci");
    char *drv = ptk_path(root, "bus/pci/drivers/mlx5_core");
    dirfd = open(drv, O_PATH | O_DIRECTORY | O_CLOEXEC);
    fd = openat(dirfd, "unbind", O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    CHECK_ERR(write_fd(fd, DEV1, strlen(DEV1)), 0);
    close(fd);
    close(dirfd);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_LOG(root, "bus/pci/devices/" DEV1 "/driver_override\tvfio-pci\tok\n"
                    "bus/pci/drivers/mlx5_core/unbind\t" DEV1 "\tok\n");
    free(drv);
    free(dev);
    ptk_destroy(root);
}

/* The kernel acts on the file an open reaches: a kernel file's path under the root that leads
 * out of it through a link reaches an ordinary file, which takes the bytes. */
static void the_file_reached_decides_not_the_path(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    char *other = ptk_new();
    setenv("FAKE_SYSFS_ROOT", root, 1);
    ptk_mkdirs(other, "drv");
    ptk_write(other, "drv/bind", "");
    char *target = ptk_path(other, "drv");
    ptk_symlink(root, "bus/pci/drivers/elsewhere", target);
    CHECK_ERR(wr(root, "bus/pci/drivers/elsewhere/bind", DEV1), 0);
    CHECK_FILE(other, "drv/bind", DEV1);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_LOG(root, "");
    free(target);
    ptk_destroy(other);
    ptk_destroy(root);
}

/* "race:NAME PATH LINK": when NAME is opened for writing, PATH is moved aside and a link to
 * LINK put in its place, just before the open; once. */
static void race_swaps_a_path_for_a_link_at_the_open(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    char *other = ptk_new();
    setenv("FAKE_SYSFS_ROOT", root, 1);
    ptk_mkdirs(other, "drv");
    ptk_write(other, "drv/bind", "");
    char *line = NULL;
    CHECK(asprintf(&line, "race:bus/pci/drivers/mlx5_core/bind bus/pci/drivers/mlx5_core %s/drv",
                   other) > 0);
    ptk_fault(root, "probe:nvme EIO");
    ptk_fault(root, line);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), 0);
    CHECK_FILE(other, "drv/bind", DEV1); /* the open followed the new link */
    CHECK(is_dir(root, "bus/pci/drivers/mlx5_core.raced"));
    CHECK_BOUND(root, DEV1, NULL);
    CHECK_FILE(root, "fault.table", "probe:nvme EIO\n"); /* fired once, other lines kept */
    /* Through the directory moved aside: the kernel file again. */
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core.raced/bind", DEV1), 0);
    CHECK(exists(root, "bus/pci/drivers/mlx5_core.raced/" DEV1));
    free(line);
    ptk_destroy(other);
    ptk_destroy(root);
}

/* ---- threads ----------------------------------------------------------------------------- */

#define THREADS 12

struct job {
    const char *root;
    char bdf[16];
    int err;
};

/* sriov_numvfs_store()'s checks, in its order, and the VFs it makes and removes: VF i at
 * PF + First VF Offset + i * VF Stride, probed unless the PF's autoprobe is off and the VF has
 * no override; removal unbinds them first. */
static void sriov_numvfs_creates_and_removes_vfs(void)
{
    char *root = ptk_new();
    ptk_loaded_driver(root, "mlx5_core", "mlx5_core");
    ptk_driver_ids(root, "mlx5_core", "pci:v000015B3d0000101*");
    ptk_device(root, DEV1, MLX, "mlx5_core");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_totalvfs", "8\n");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_numvfs", "0\n");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_drivers_autoprobe", "1\n");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/fake_sriov_offset", "2\n");
    const char *numvfs = "bus/pci/devices/" DEV1 "/sriov_numvfs";
    const char *autoprobe = "bus/pci/devices/" DEV1 "/sriov_drivers_autoprobe";

    CHECK_ERR(wr(root, numvfs, "x"), EINVAL);
    CHECK_ERR(wr(root, numvfs, "65536"), EINVAL);
    CHECK_ERR(wr(root, numvfs, "9"), ERANGE);
    CHECK_ERR(wr(root, numvfs, "0"), 0); /* the current count, even without sriov_configure */
    CHECK_ERR(wr(root, numvfs, "2"), ENOENT);
    ptk_write(root, "bus/pci/drivers/mlx5_core/fake_sriov_configure", "");

    CHECK_ERR(wr(root, autoprobe, "maybe"), EINVAL);
    CHECK_ERR(wr(root, autoprobe, "0\n"), 0);
    CHECK_ERR(wr(root, numvfs, "2\n"), 0);
    char *n = ptk_read(root, "devices/pci0000:00/" DEV1 "/sriov_numvfs");
    CHECK_STR(n, "2\n");
    free(n);
    /* offset 2, stride 1; device ID + 1 (101F), which mlx5_core's table also matches */
    char *m = ptk_read(root, "bus/pci/devices/0000:01:00.2/modalias");
    CHECK_STR(m, "pci:v000015B3d0000101Fsv000015B3sd00000048bc02sc00i00\n");
    free(m);
    CHECK(ptk_is_bound_to(root, "0000:01:00.2", NULL));
    CHECK(ptk_is_bound_to(root, "0000:01:00.3", NULL));
    char *o = ptk_override(root, "0000:01:00.3");
    CHECK_STR(o, "(null)");
    free(o);
    char *l = ptk_path(root, "devices/pci0000:00/" DEV1 "/virtfn1");
    char target[256] = "";
    CHECK(readlink(l, target, sizeof target - 1) > 0);
    CHECK_STR(target, "../0000:01:00.3");
    free(l);
    m = ptk_read(root, "bus/pci/devices/0000:01:00.3/physfn/sriov_totalvfs");
    CHECK_STR(m, "8\n");
    free(m);

    /* autoprobe off: no probe without an override; with one, bind works */
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", "0000:01:00.2"), 0);
    CHECK(ptk_is_bound_to(root, "0000:01:00.2", NULL));
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", "0000:01:00.2"), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/devices/0000:01:00.2/driver_override", "mlx5_core"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", "0000:01:00.2"), 0);
    CHECK(ptk_is_bound_to(root, "0000:01:00.2", "mlx5_core"));
    CHECK_ERR(wr(root, autoprobe, "y"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", "0000:01:00.3"), 0);
    CHECK(ptk_is_bound_to(root, "0000:01:00.3", "mlx5_core"));

    CHECK_ERR(wr(root, numvfs, "3"), EBUSY);
    CHECK_ERR(wr(root, numvfs, "0"), 0);
    CHECK(ptk_read(root, "bus/pci/devices/0000:01:00.2/modalias") == NULL);
    CHECK(ptk_read(root, "bus/pci/drivers/mlx5_core/0000:01:00.3/modalias") == NULL);
    l = ptk_path(root, "devices/pci0000:00/" DEV1 "/virtfn0");
    CHECK(access(l, F_OK) < 0 && errno == ENOENT);
    free(l);
    CHECK(ptk_is_bound_to(root, DEV1, "mlx5_core"));

    /* with autoprobe on, creation probes the new VFs */
    CHECK_ERR(wr(root, numvfs, "1"), 0);
    CHECK(ptk_is_bound_to(root, "0000:01:00.2", "mlx5_core"));
    char *log = ptk_write_log(root);
    CHECK_CONTAINS(log, "bus/pci/devices/" DEV1 "/sriov_numvfs\t9\tERANGE\n");
    CHECK_CONTAINS(log, "bus/pci/devices/" DEV1 "/sriov_drivers_autoprobe\ty\tok\n");
    free(log);
    ptk_destroy(root);
}

static void *bind_one(void *arg)
{
    struct job *j = arg;
    char rel[64];
    snprintf(rel, sizeof rel, "bus/pci/devices/%s/driver_override", j->bdf);
    j->err = wr(j->root, rel, "vfio-pci\n");
    if (!j->err)
        j->err = wr(j->root, "bus/pci/drivers/mlx5_core/unbind", j->bdf);
    if (!j->err)
        j->err = wr(j->root, "bus/pci/drivers_probe", j->bdf);
    return NULL;
}

static void concurrent_writers(void)
{
    char *root = standard_tree();
    struct job jobs[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i].root = root;
        snprintf(jobs[i].bdf, sizeof jobs[i].bdf, "0000:%02x:00.0", i + 0x10);
        ptk_device(root, jobs[i].bdf, MLX, "mlx5_core");
    }
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, bind_one, &jobs[i]) == 0);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK_ERR(jobs[i].err, 0);
        CHECK_BOUND(root, jobs[i].bdf, "vfio-pci");
        char rel[64];
        snprintf(rel, sizeof rel, "bus/pci/drivers/mlx5_core/%s", jobs[i].bdf);
        CHECK(!exists(root, rel));
    }
    char *log = ptk_write_log(root);
    int lines = 0, ok = 0;
    for (const char *p = log; (p = strchr(p, '\n')); p++)
        lines++;
    for (const char *p = log; (p = strstr(p, "\tok\n")); p++)
        ok++;
    CHECK(lines == 3 * THREADS);
    CHECK(ok == 3 * THREADS);
    free(log);
    ptk_destroy(root);
}


/* ---- PTK_KILL_AFTER_WRITE, PTK_REMOVE_AFTER_WRITE, remove and rescan ---------------------- */

static int lines_of(const char *text)
{
    int n = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        n++;
    return n;
}

static int killed(int status)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static int exited(int status, int code)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

/* DEV1 from mlx5_core to vfio-pci, as the library does it: three writes. */
static void move_dev1(void *root)
{
    wr(root, "bus/pci/devices/" DEV1 "/driver_override", "vfio-pci\n");
    wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV1);
    wr(root, "bus/pci/drivers_probe", DEV1);
}

static void killed_after_the_nth_write(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV2 "/driver_override", "x"), OPEN_FAILED + ENOENT);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV2), ENODEV); /* counted in this process only */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setenv("PTK_KILL_AFTER_WRITE", "2", 1);
        move_dev1(root);
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(killed(status));
    /* The second write took effect and is logged; the third never happened. */
    CHECK_LOG(root, "bus/pci/drivers_probe\t" DEV2 "\tENODEV\n"
                    "bus/pci/devices/" DEV1 "/driver_override\tvfio-pci\\n\tok\n"
                    "bus/pci/drivers/mlx5_core/unbind\t" DEV1 "\tok\n");
    CHECK_OVERRIDE(root, DEV1, "vfio-pci");
    CHECK_BOUND(root, DEV1, NULL);
    ptk_destroy(root);
}

/* A failed write counts as well: it is a line of write.log. */
static void a_failed_write_counts(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    ptk_fault(root, "bus/pci/drivers/mlx5_core/unbind EBUSY 1");
    int status = ptk_run_killed_after(2, move_dev1, root);
    CHECK(killed(status));
    char *log = ptk_write_log(root);
    CHECK_CONTAINS(log, "unbind\t" DEV1 "\tEBUSY\n");
    CHECK(lines_of(log) == 2);
    free(log);
    CHECK_BOUND(root, DEV1, "mlx5_core");
    ptk_destroy(root);
}

/* Each write of the move, in turn, is the last before the caller dies; with n past the last,
 * the child returns. */
static void killed_after_each_write_in_turn(void)
{
    static const char *const after[] = {
        "bus/pci/devices/" DEV1 "/driver_override\tvfio-pci\\n\tok\n",
        "bus/pci/drivers/mlx5_core/unbind\t" DEV1 "\tok\n",
        "bus/pci/drivers_probe\t" DEV1 "\tok\n",
    };
    unsigned n;
    for (n = 1; n < 10; n++) {
        char *root = standard_tree();
        ptk_device(root, DEV1, MLX, "mlx5_core");
        int status = ptk_run_killed_after(n, move_dev1, root);
        char *log = ptk_write_log(root);
        if (n <= 3) {
            CHECK(killed(status));
            CHECK(lines_of(log) == (int)n);
            CHECK_CONTAINS(log, after[n - 1]);
        } else {
            CHECK(exited(status, 0));
            CHECK(lines_of(log) == 3);
        }
        CHECK(n < 3 ? ptk_is_bound_to(root, DEV1, n == 1 ? "mlx5_core" : NULL)
                    : ptk_is_bound_to(root, DEV1, "vfio-pci"));
        free(log);
        ptk_destroy(root);
        if (exited(status, 0))
            break;
    }
    CHECK(n == 4);
}

/* What the child's function reports by its exit status reaches the caller. */
static void exit_status_from_the_child(void *arg)
{
    (void)arg;
    exit(7);
}

static void bad_knob(void *arg)
{
    (void)arg;
    setenv("PTK_KILL_AFTER_WRITE", "2x", 1);
    wr(getenv("FAKE_SYSFS_ROOT"), "bus/pci/drivers_probe", DEV1);
    _exit(0);
}

static void knob_values(void)
{
    char *root = standard_tree();
    CHECK(exited(ptk_run_killed_after(1, exit_status_from_the_child, NULL), 7));
    /* A value that is not a count ends the process as a setup failure does. */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY); /* its complaint is expected */
        dup2(fd, 2);
        bad_knob(NULL);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(exited(status, 99));
    ptk_destroy(root);
}

/* Writes on one fd opened beforehand: at the kill, the other threads wait for the shim's lock
 * holding nothing the shim allocated, which valgrind would report lost in the killed child. */
static void *write_overrides(void *arg)
{
    struct job *j = arg;
    char rel[64];
    snprintf(rel, sizeof rel, "bus/pci/devices/%s/driver_override", j->bdf);
    char *p = ptk_path(j->root, rel);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    free(p);
    for (int i = 0; i < 50; i++)
        write_fd(fd, i % 2 ? "vfio-pci" : "nvme", i % 2 ? 8 : 4);
    close(fd);
    return NULL;
}

static void threads_of(void *arg)
{
    struct job *jobs = arg;
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, write_overrides, &jobs[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
}

/* Four threads writing: the process dies after exactly the N-th write, whoever makes it. */
static void killed_among_threads(void)
{
    char *root = standard_tree();
    struct job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].root = root;
        snprintf(jobs[i].bdf, sizeof jobs[i].bdf, "0000:%02x:00.0", i + 0x10);
        ptk_device(root, jobs[i].bdf, MLX, NULL);
    }
    CHECK(killed(ptk_run_killed_after(77, threads_of, jobs)));
    char *log = ptk_write_log(root);
    CHECK(lines_of(log) == 77);
    free(log);
    ptk_destroy(root);
}

static void removed_after_the_nth_write(void)
{
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, "mlx5_core");
    ptk_device(root, DEV2, MLX, "mlx5_core");
    ptk_iommu_group(root, 7, DEV1);
    ptk_mkdirs(root, "dev/vfio/devices");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "vfio-pci"), 0);
    char *ovr = ptk_path(root, "bus/pci/devices/" DEV1 "/driver_override");
    int fd = open(ovr, O_WRONLY);
    CHECK(fd >= 0);

    /* The count starts when the variable is set: the write above is not one of the two. */
    setenv("PTK_REMOVE_AFTER_WRITE", "2", 1);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/unbind", DEV1), 0);
    CHECK(is_dir(root, "devices/pci0000:00/" DEV1));
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0); /* the 2nd: took effect, then gone */
    unsetenv("PTK_REMOVE_AFTER_WRITE");
    CHECK(!exists(root, "devices/pci0000:00/" DEV1));
    CHECK(!exists(root, "bus/pci/devices/" DEV1));
    CHECK(!exists(root, "bus/pci/drivers/vfio-pci/" DEV1));
    CHECK(!exists(root, "kernel/iommu_groups/7/devices/" DEV1));
    CHECK(is_dir(root, "kernel/iommu_groups/7"));
    CHECK(!exists(root, "dev/vfio/7"));
    CHECK(!exists(root, "dev/vfio/devices/vfio0"));
    CHECK(is_dir(root, "fake_removed/" DEV1));
    CHECK_BOUND(root, DEV2, "mlx5_core");

    CHECK_ERR(write_fd(fd, "nvme", 4), ENODEV);
    close(fd);
    free(ovr);
    CHECK_ERR(wr(root, "bus/pci/drivers/vfio-pci/unbind", DEV1), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/drivers/mlx5_core/bind", DEV1), ENODEV);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "\n"), OPEN_FAILED + ENOENT);
    char *log = ptk_write_log(root);
    CHECK_CONTAINS(log, "bus/pci/drivers_probe\t" DEV1 "\tok\n"
                        "bus/pci/devices/" DEV1 "/driver_override\tnvme\tENODEV\n");
    CHECK(!strstr(log, "remove")); /* a removal is no write of the process */
    free(log);

    /* Unset, and set again: nothing more is removed, then the count starts again. */
    for (int i = 0; i < 3; i++)
        CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV2), 0);
    CHECK(is_dir(root, "devices/pci0000:00/" DEV2));
    setenv("PTK_REMOVE_AFTER_WRITE", "1:" DEV2, 1); /* the write concerns DEV1, BDF says DEV2 */
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), ENODEV);
    CHECK(!exists(root, "bus/pci/devices/" DEV2));
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), ENODEV);
    unsetenv("PTK_REMOVE_AFTER_WRITE");
    ptk_destroy(root);
}

/* The device a write concerns: the file's, or the one written to bind, unbind, drivers_probe. */
static void the_device_a_write_concerns(void)
{
    static const char *const writes[][2] = {
        {"bus/pci/devices/" DEV1 "/driver_override", "nvme\n"},
        {"devices/pci0000:00/" DEV1 "/driver_override", "nvme\n"},
        {"bus/pci/drivers/mlx5_core/unbind", DEV1 "\n"},
        {"bus/pci/drivers/nvme/bind", DEV1},
        {"bus/pci/drivers_probe", DEV1},
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        char *root = standard_tree();
        ptk_device(root, DEV1, MLX, "mlx5_core");
        ptk_device(root, DEV2, MLX, "mlx5_core");
        setenv("PTK_REMOVE_AFTER_WRITE", "1", 1);
        wr(root, writes[i][0], writes[i][1]);
        unsetenv("PTK_REMOVE_AFTER_WRITE");
        if (exists(root, "bus/pci/devices/" DEV1))
            printf("#   %s: %s is still there\n", writes[i][0], DEV1);
        CHECK(!exists(root, "bus/pci/devices/" DEV1));
        CHECK(!exists(root, "bus/pci/drivers/mlx5_core/" DEV1));
        CHECK_BOUND(root, DEV2, "mlx5_core");
        ptk_destroy(root);
    }
}

/* A PF's removal takes its VFs; a rescan brings back the PF alone, probed by its host driver. */
static void a_removed_pf_takes_its_vfs(void)
{
    char *root = standard_tree();
    ptk_write(root, "bus/pci/drivers/mlx5_core/fake_sriov_configure", "");
    ptk_device(root, DEV1, MLX, "mlx5_core");
    ptk_iommu_group(root, 1, DEV1);
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_totalvfs", "4\n");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_numvfs", "0\n");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_drivers_autoprobe", "0\n");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/sriov_numvfs", "2"), 0);
    CHECK_ERR(wr(root, "bus/pci/devices/0000:01:00.1/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", "0000:01:00.1"), 0);
    CHECK_BOUND(root, "0000:01:00.1", "vfio-pci");

    ptk_remove(root, DEV1);
    CHECK(!exists(root, "bus/pci/devices/" DEV1));
    CHECK(!exists(root, "bus/pci/devices/0000:01:00.1"));
    CHECK(!exists(root, "devices/pci0000:00/0000:01:00.2"));
    CHECK(!exists(root, "bus/pci/drivers/vfio-pci/0000:01:00.1"));
    CHECK(!exists(root, "kernel/iommu_groups/0")); /* the VFs' groups went with them */
    CHECK(!exists(root, "kernel/iommu_groups/2"));
    CHECK(!exists(root, "fake_removed/0000:01:00.1")); /* VFs are gone for good */
    char *log = ptk_write_log(root);
    CHECK_CONTAINS(log, "bus/pci/devices/" DEV1 "/remove\t1\\n\tok\n");
    free(log);

    ptk_rescan(root);
    CHECK_BOUND(root, DEV1, "mlx5_core");
    CHECK(exists(root, "kernel/iommu_groups/1/devices/" DEV1));
    CHECK_FILE(root, "bus/pci/devices/" DEV1 "/sriov_numvfs", "0\n");
    CHECK_FILE(root, "bus/pci/devices/" DEV1 "/sriov_drivers_autoprobe", "1\n");
    CHECK(!exists(root, "bus/pci/devices/0000:01:00.1"));
    CHECK(!exists(root, "fake_removed/" DEV1));
    ptk_destroy(root);
}

/* A rescan: the device back where it was, its override forgotten, probed by the driver its IDs
 * match; a bridge's removal takes the devices behind it, and the rescan brings them all. */
static void rescan_brings_removed_devices_back(void)
{
    char *root = standard_tree();
    const char *bridge = "0000:00:1c.0";
    ptk_device(root, bridge, "pci:v00008086d0000A110sv00000000sd00000000bc06sc04i00", NULL);
    ptk_device_under(root, "devices/pci0000:00/0000:00:1c.0", DEV3, NVME, NULL);
    ptk_device(root, DEV1, MLX, NULL);
    ptk_iommu_group(root, 5, DEV1);
    ptk_mkdirs(root, "dev/vfio");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV1), 0);
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV3 "/driver_override", "vfio-pci"), 0);
    CHECK_ERR(wr(root, "bus/pci/drivers_probe", DEV3), 0);
    CHECK(exists(root, "dev/vfio/5"));
    char *ovr = ptk_path(root, "bus/pci/devices/" DEV1 "/driver_override");
    int fd = open(ovr, O_WRONLY);
    CHECK(fd >= 0);
    free(ovr);

    ptk_remove(root, DEV1);
    ptk_remove(root, bridge);
    CHECK(!exists(root, "bus/pci/devices/" DEV1));
    CHECK(!exists(root, "bus/pci/devices/" DEV3));
    CHECK(!exists(root, "bus/pci/devices/0000:00:1c.0"));
    CHECK(!exists(root, "bus/pci/drivers/vfio-pci/" DEV3));
    CHECK(!exists(root, "dev/vfio/5"));
    CHECK_ERR(wr(root, "bus/pci/rescan", "0"), 0); /* 0 does nothing */
    CHECK_ERR(wr(root, "bus/pci/rescan", "x"), EINVAL);
    CHECK(!exists(root, "bus/pci/devices/" DEV1));

    ptk_rescan(root);
    CHECK_BOUND(root, DEV1, "mlx5_core"); /* override forgotten: its host driver probed it */
    CHECK_OVERRIDE(root, DEV1, "(null)");
    CHECK(exists(root, "kernel/iommu_groups/5/devices/" DEV1));
    CHECK(!exists(root, "dev/vfio/5"));
    CHECK_BOUND(root, DEV3, "nvme");
    CHECK(is_dir(root, "devices/pci0000:00/0000:00:1c.0/" DEV3));
    CHECK_BOUND(root, bridge, NULL);
    CHECK(!exists(root, "fake_removed/" DEV1));
    CHECK(!exists(root, "fake_removed/" DEV3));
    /* An fd of the removed device stays dead; the new device's files work. */
    CHECK_ERR(write_fd(fd, "nvme", 4), ENODEV);
    close(fd);
    CHECK_OVERRIDE(root, DEV1, "(null)");
    CHECK_ERR(wr(root, "bus/pci/devices/" DEV1 "/driver_override", "nvme"), 0);
    CHECK_OVERRIDE(root, DEV1, "nvme");
    /* and can be removed again */
    ptk_remove(root, DEV1);
    CHECK(!exists(root, "bus/pci/devices/" DEV1));
    ptk_destroy(root);
}

/* ---- writes made in a forked child of a multithreaded process ------------------------------ */

/* libpcibind makes a write that may wait for a VMM in a child it forks (unbind from a VFIO
 * driver, sriov_numvfs = 0; Sysfs::write_within), from a process whose other threads go on,
 * so the shim's emulation of a write runs in such children. There only the forking thread is
 * left, and a lock another thread held at the fork is held for good: the emulation must take
 * no lock of another library's, malloc()'s above all (GCC 12's AddressSanitizer resets none of
 * its allocator's in the child). Each write below is made in such a child while a thread of
 * the parent allocates and frees without pause; the child must answer, with the kernel's
 * answer and effects, and, where the allocator says so (AddressSanitizer's malloc and free
 * hooks), having allocated and freed nothing. */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCATIONS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COUNT_ALLOCATIONS 1
#endif
#endif

#ifdef COUNT_ALLOCATIONS
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
#endif

/* Set only in a child, which has one thread: the parent's threads never count. */
static volatile sig_atomic_t counting;
static volatile unsigned long allocations;

#ifdef COUNT_ALLOCATIONS
static void count_malloc(const volatile void *p, size_t n)
{
    (void)p;
    (void)n;
    if (counting)
        allocations++;
}

static void count_free(const volatile void *p)
{
    (void)p;
    if (counting)
        allocations++;
}
#endif

static atomic_int churning;

static void *churn(void *arg)
{
    (void)arg;
    void *slots[256] = {0};
    unsigned seed = 1;
    while (atomic_load(&churning)) {
        unsigned i = rand_r(&seed) % 256;
        free(slots[i]);
        slots[i] = malloc((size_t)(rand_r(&seed) % 5000) + 1);
    }
    for (int i = 0; i < 256; i++)
        free(slots[i]);
    return NULL;
}

#define NO_ANSWER 999

/* Writes `value` to ROOT/rel, opened here, in a child forked for that write alone, as
 * libpcibind does; the errno (0: done), or NO_ANSWER when the child did not answer within 30 s
 * (then killed). With `release`, the test lets go of what the write waits for: the child must
 * not have answered 200 ms after the fork, then ROOT/release is removed. */
static int child_write(const char *root, const char *rel, const char *value, const char *release)
{
    char *p = ptk_path(root, rel);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    free(p);
    if (fd < 0)
        return OPEN_FAILED + errno;
    int answer[2];
    if (pipe2(answer, O_CLOEXEC) != 0) {
        close(fd);
        return OPEN_FAILED + errno;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls from here on, as in libpcibind's child. */
        counting = 1;
        ssize_t n = write(fd, value, strlen(value));
        counting = 0;
        unsigned long report[2] = {n < 0 ? (unsigned long)errno : 0, allocations};
        if (n >= 0 && n != (ssize_t)strlen(value))
            report[0] = (unsigned long)-1; /* a short write */
        ssize_t told = write(answer[1], report, sizeof report);
        _exit(told == (ssize_t)sizeof report ? 0 : 1);
    }
    close(fd);
    close(answer[1]);
    if (pid < 0) {
        close(answer[0]);
        return OPEN_FAILED + errno;
    }
    struct pollfd pfd = {answer[0], POLLIN, 0};
    if (release) {
        CHECK(poll(&pfd, 1, 200) == 0); /* still waiting */
        char *r = ptk_path(root, release);
        CHECK(unlink(r) == 0);
        free(r);
    }
    unsigned long report[2];
    int err = NO_ANSWER;
    if (poll(&pfd, 1, 30000) == 1 && read(answer[0], report, sizeof report) == sizeof report) {
        err = (int)report[0];
        if (report[1]) {
            printf("#   writing %.*s to %s in a forked child: %lu allocations and frees\n",
                   (int)strcspn(value, "\n"), value, rel, report[1]);
            harness_failed_now = 1;
        }
    } else {
        printf("#   writing %.*s to %s in a forked child: no answer in 30 s\n",
               (int)strcspn(value, "\n"), value, rel);
        kill(pid, SIGKILL);
    }
    waitpid(pid, NULL, 0);
    close(answer[0]);
    return err;
}

static void writes_in_a_forked_child_of_threads(void)
{
#ifdef COUNT_ALLOCATIONS
    static int hooked;
    if (!hooked)
        CHECK(__sanitizer_install_malloc_and_free_hooks(count_malloc, count_free) != 0);
    hooked = 1;
#else
    printf("# the children's allocations are counted only with AddressSanitizer's hooks\n");
#endif
    char *root = standard_tree();
    ptk_device(root, DEV1, MLX, NULL);
    ptk_device(root, DEV2, NVME, "nvme");
    ptk_iommu_group(root, 7, DEV1);
    ptk_mkdirs(root, "dev/vfio/devices");
    ptk_write(root, "bus/pci/drivers/mlx5_core/fake_sriov_configure", "");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_totalvfs", "2\n");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_numvfs", "0\n");
    ptk_write(root, "devices/pci0000:00/" DEV1 "/sriov_drivers_autoprobe", "1\n");
    const char *vf_held = "devices/pci0000:00/0000:01:00.2/fake_vmm_holds";
    const char *dev1_held = "devices/pci0000:00/" DEV1 "/fake_vmm_holds";
    const char *unbind = "bus/pci/drivers/vfio-pci/unbind";
    /* Under valgrind, which runs one thread at a time with an allocator of its own, the
     * churning thread adds nothing, and a block it held only in a register at a fork would be
     * in the child's leak report. */
    int churn_here = !RUNNING_ON_VALGRIND;
    pthread_t thread;
    atomic_store(&churning, churn_here);
    if (churn_here)
        CHECK(pthread_create(&thread, NULL, churn, NULL) == 0);

    /* Onto vfio-pci, off it while a VMM holds it, back, and a fault in the way. */
    CHECK_ERR(child_write(root, "bus/pci/devices/" DEV1 "/driver_override", "vfio-pci", NULL), 0);
    CHECK_ERR(child_write(root, "bus/pci/drivers_probe", DEV1, NULL), 0);
    CHECK(exists(root, "dev/vfio/7") && exists(root, "dev/vfio/devices/vfio0"));
    ptk_write(root, dev1_held, "");
    CHECK_ERR(child_write(root, unbind, DEV1 "\n", dev1_held), 0);
    CHECK_BOUND(root, DEV1, NULL);
    CHECK(!exists(root, "dev/vfio/7") && !exists(root, "bus/pci/devices/" DEV1 "/vfio-dev"));
    CHECK_ERR(child_write(root, "bus/pci/drivers/vfio-pci/bind", DEV1, NULL), 0);
    ptk_fault(root, "bus/pci/drivers/vfio-pci/unbind EBUSY 1");
    CHECK_ERR(child_write(root, unbind, DEV1, NULL), EBUSY);
    CHECK_FILE(root, "fault.table", "bus/pci/drivers/vfio-pci/unbind EBUSY 0\n");
    CHECK_ERR(child_write(root, unbind, DEV1, NULL), 0);

    /* IDs added and removed; SR-IOV: VFs made and removed, one of them held by a VMM. */
    CHECK_ERR(child_write(root, "bus/pci/devices/" DEV1 "/driver_override", "\n", NULL), 0);
    CHECK_ERR(child_write(root, "bus/pci/drivers/nvme/new_id", "15b3 101e", NULL), 0);
    CHECK_BOUND(root, DEV1, "nvme");
    CHECK_ERR(child_write(root, "bus/pci/drivers/nvme/remove_id", "15b3 101e", NULL), 0);
    CHECK_ERR(child_write(root, "bus/pci/drivers/nvme/unbind", DEV1, NULL), 0);
    CHECK_ERR(child_write(root, "bus/pci/drivers/mlx5_core/bind", DEV1, NULL), 0);
    CHECK_ERR(child_write(root, "bus/pci/devices/" DEV1 "/sriov_drivers_autoprobe", "0", NULL), 0);
    CHECK_ERR(child_write(root, "bus/pci/devices/" DEV1 "/sriov_numvfs", "2", NULL), 0);
    CHECK(exists(root, "bus/pci/devices/0000:01:00.2"));
    ptk_write(root, vf_held, "");
    CHECK_ERR(child_write(root, "bus/pci/devices/" DEV1 "/sriov_numvfs", "0", vf_held), 0);
    CHECK(!exists(root, "bus/pci/devices/0000:01:00.2"));

    /* Removal (with a fault making the device vanish as it goes) and rescan. */
    ptk_fault(root, "vanish:" DEV2 " after-unbind");
    CHECK_ERR(child_write(root, "bus/pci/drivers/nvme/unbind", DEV2, NULL), 0);
    CHECK(!exists(root, "bus/pci/devices/" DEV2));
    ptk_write(root, "devices/pci0000:00/" DEV1 "/remove", "");
    CHECK_ERR(child_write(root, "bus/pci/devices/" DEV1 "/remove", "1", NULL), 0);
    CHECK(!exists(root, "bus/pci/devices/" DEV1) && exists(root, "fake_removed/" DEV1));
    CHECK_ERR(child_write(root, "bus/pci/rescan", "1", NULL), 0);
    CHECK_BOUND(root, DEV1, "mlx5_core");

    atomic_store(&churning, 0);
    if (churn_here)
        pthread_join(thread, NULL);
    char *log = ptk_write_log(root);
    CHECK_CONTAINS(log, "bus/pci/drivers/vfio-pci/unbind\t" DEV1 "\\n\tok\n");
    CHECK_CONTAINS(log, "bus/pci/drivers/vfio-pci/unbind\t" DEV1 "\tEBUSY\n");
    CHECK_CONTAINS(log, "bus/pci/rescan\t1\tok\n");
    free(log);
    ptk_destroy(root);
}

RUN_TESTS(TEST_CASE(shim_is_loaded),
          TEST_CASE(exclusive_opens_of_block_nodes_get_the_block_layers_answer),
          TEST_CASE(real_sys_is_never_opened_for_writing),
          TEST_CASE(override_stores_up_to_the_first_newline),
          TEST_CASE(override_empty_and_oversized_writes),
          TEST_CASE(override_never_unbinds),
          TEST_CASE(override_through_the_device_directory),
          TEST_CASE(bind_follows_the_id_table),
          TEST_CASE(bind_needs_the_exact_full_name),
          TEST_CASE(bind_to_a_bound_device),
          TEST_CASE(vfio_pci_binds_only_with_the_exact_override),
          TEST_CASE(an_override_excludes_every_other_driver),
          TEST_CASE(back_onto_vfio_pci_only_through_the_override),
          TEST_CASE(unbind_only_through_the_bound_driver),
          TEST_CASE(unbind_from_vfio_removes_vfio_dev),
          TEST_CASE(vfio_dev_takes_the_lowest_free_index), TEST_CASE(vfio_nodes_follow_binds),
          TEST_CASE(vfs_get_iommu_groups_of_their_own),
          TEST_CASE(drivers_probe_unknown_devices),
          TEST_CASE(drivers_probe_with_an_override),
          TEST_CASE(drivers_probe_without_an_override),
          TEST_CASE(probe_fault_fails_bind),
          TEST_CASE(probe_fault_with_override_tries_no_other_driver),
          TEST_CASE(probe_fault_without_override_moves_on),
          TEST_CASE(write_faults_change_nothing), TEST_CASE(a_fault_can_skip_the_first_matching_writes),
          TEST_CASE(vanish_after_unbind),
          TEST_CASE(new_id_binds_every_eligible_device),
          TEST_CASE(new_id_refuses_bad_and_known_ids),
          TEST_CASE(dynamic_ids_bind_and_remove_id_removes_them),
          TEST_CASE(full_form_dynamic_ids),
          TEST_CASE(write_log_escapes_values),
          TEST_CASE(other_files_pass_through),
          TEST_CASE(open_flags_are_those_of_sysfs),
          TEST_CASE(every_entry_point_is_emulated),
          TEST_CASE(devices_in_other_directories),
          TEST_CASE(openat2_through_syscall_is_emulated),
          TEST_CASE(openat_in_a_directory_held_open_is_emulated),
          TEST_CASE(the_file_reached_decides_not_the_path),
          TEST_CASE(race_swaps_a_path_for_a_link_at_the_open),
          TEST_CASE(sriov_numvfs_creates_and_removes_vfs),
          TEST_CASE(concurrent_writers),
          TEST_CASE(killed_after_the_nth_write),
          TEST_CASE(a_failed_write_counts),
          TEST_CASE(killed_after_each_write_in_turn),
          TEST_CASE(knob_values),
          TEST_CASE(killed_among_threads),
          TEST_CASE(removed_after_the_nth_write),
          TEST_CASE(the_device_a_write_concerns),
          TEST_CASE(a_removed_pf_takes_its_vfs),
          TEST_CASE(rescan_brings_removed_devices_back),
          TEST_CASE(writes_in_a_forked_child_of_threads))
