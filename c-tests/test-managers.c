/* What a manager needs (SPEC 3.14), through the C API with the kernel shim preloaded: each
 * safety check skipped by its own flag and by no other (PCIBIND_BIND_FORCE by all three), a
 * VFIO target required, a variant or nothing, the in-use question answered alone with its
 * kinds, the start of a bind reported from the locked transaction (a concurrent reattach
 * cannot make it lie), a caller's module loader (and a load that probes the device, undone
 * with the transaction), Xen's pciback as a stub, mediated devices, library messages that
 * name no API identifier (a manager shows them to its users), and the plans of unbind and
 * reattach, and who loads in a plan. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <syslog.h>
#include <unistd.h>

#include "testctx.h"

#define NIC "0000:00:19.0"
#define GPU "0000:00:02.0"
#define MLX "0000:03:00.0"

static const char *const E1000E_ID = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
static const char *const VGA_ID = "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00";
static const char *const MLX_ID = "pci:v000015B3d0000101Esv000015B3sd00000001bc02sc00i00";

static char *root;
static pcibind_ctx *ctx;

static void setup(void)
{
    root = ptk_new();
    warnings[0] = '\0';
    e1000e_and_vfio_pci(root);
    /* Its alias tables, and those of the GPU's and the ConnectX VF's drivers. */
    ptk_write(root, "lib-modules/modules.alias",
              "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n"
              "alias pci:v00001234d00001111sv*sd*bc03sc*i* bochs\n"
              "alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n"
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n");
    ptk_loaded_driver(root, "bochs", "bochs-drm");
    ptk_driver_ids(root, "bochs-drm", "pci:v00001234d00001111sv*sd*bc03sc*i*");
    ptk_loaded_driver(root, "mlx5_core", "mlx5_core");
    ptk_driver_ids(root, "mlx5_core", "pci:v000015B3d0000101Esv*sd*bc*sc*i*");
    ptk_device(root, NIC, E1000E_ID, "e1000e");
    ptk_device(root, GPU, VGA_ID, "bochs-drm");
    ptk_device(root, MLX, MLX_ID, "mlx5_core");
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

/* The last error names no API identifier: a manager shows it to its users as it is. */
static void expect_plain_message(void)
{
    const char *m = pcibind_last_error_message();
    if (strstr(m, "PCIBIND_") || strstr(m, "pcibind_")) {
        printf("#   the message names an API identifier: %s\n", m);
        harness_failed_now = 1;
    }
}

static void expect_nothing_written(void)
{
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
}

/* The GPU drives the console: the firmware's boot framebuffer lies in its BAR. */
static void gpu_drives_the_console(void)
{
    ptk_write(root, "devices/pci0000:00/" GPU "/class", "0x030000\n");
    ptk_write(root, "devices/pci0000:00/" GPU "/resource",
              "0x00000000fd000000 0x00000000fdffffff 0x0000000000042208\n");
    ptk_write(root, "proc/iomem",
              "c0000000-febfffff : PCI Bus 0000:00\n"
              "  fd000000-fdffffff : " GPU "\n"
              "    fd000000-fd2fffff : BOOTFB\n"
              "      fd000000-fd2fffff : simpledrm\n");
}

/* A bind refused with `rc`, nothing written, the message plain. */
static void expect_refused(const char *bdf, const char *name, unsigned flags, int rc)
{
    ptk_write(root, "write.log", "");
    CHECK_RC(pcibind_bind(ctx, bdf, name, flags, NULL), rc);
    expect_plain_message();
    expect_nothing_written();
}

/* Each flag skips its own check and no other; FORCE skips all three. */
static void each_check_is_skipped_by_its_own_flag(void)
{
    setup();
    const unsigned in_use = PCIBIND_BIND_ALLOW_IN_USE, unclaimed = PCIBIND_BIND_ALLOW_UNCLAIMED,
                   sriov = PCIBIND_BIND_ALLOW_SRIOV;
    /* In use: the NIC carries the host's traffic. */
    nic_carries_the_hosts_traffic_in(root, NIC);
    expect_refused(NIC, "vfio-pci", 0, PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "network interface eth0");
    expect_refused(NIC, "vfio-pci", unclaimed | sriov, PCIBIND_ERR_IN_USE);
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", in_use, NULL), PCIBIND_OK);
    expect_bound_in(root, NIC, "vfio-pci");
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    /* Back off vfio-pci, nothing is asked of the host's use (SPEC 3.3: the host uses a device
     * through its host driver), though this fake tree still shows eth0 with a route. */
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    expect_bound_in(root, NIC, "e1000e");
    nic_carries_the_hosts_traffic_in(root, NIC);
    ptk_write(root, "write.log", "");
    CHECK_RC(pcibind_unbind(ctx, NIC, unclaimed | sriov), PCIBIND_ERR_IN_USE);
    expect_nothing_written();
    CHECK_RC(pcibind_unbind(ctx, NIC, in_use), PCIBIND_OK);
    expect_bound_in(root, NIC, NULL);
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    ptk_write(root, "proc/net/route", "");

    /* Unclaimed: bochs-drm's aliases do not match the NIC. */
    expect_refused(NIC, "bochs-drm", 0, PCIBIND_ERR_NOT_CLAIMED);
    CHECK_CONTAINS(pcibind_last_error_message(), "does not claim " NIC);
    expect_refused(NIC, "bochs-drm", in_use | sriov, PCIBIND_ERR_NOT_CLAIMED);
    /* Skipped, the bind goes ahead: driver_override makes the kernel probe the driver whatever
     * its ID table says (and this probe accepts). */
    CHECK_RC(pcibind_bind(ctx, NIC, "bochs-drm", unclaimed, NULL), PCIBIND_OK);
    expect_bound_in(root, NIC, "bochs-drm");
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    expect_bound_in(root, NIC, "e1000e");
    CHECK_RC(pcibind_bind(ctx, NIC, "bochs-drm", PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    expect_bound_in(root, NIC, "bochs-drm");
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);

    /* SR-IOV: a PF with VFs enabled never goes to a VFIO driver. */
    ptk_write(root, "devices/pci0000:00/" MLX "/sriov_numvfs", "4\n");
    expect_refused(MLX, "vfio-pci", 0, PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "SR-IOV PF with 4 VFs enabled");
    expect_refused(MLX, "vfio-pci", in_use | unclaimed, PCIBIND_ERR_IN_USE);
    CHECK_RC(pcibind_bind(ctx, MLX, "vfio-pci", sriov, NULL), PCIBIND_OK);
    expect_bound_in(root, MLX, "vfio-pci");
    CHECK_RC(pcibind_reattach(ctx, MLX, NULL, 0, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_bind(ctx, MLX, "vfio-pci", PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    expect_bound_in(root, MLX, "vfio-pci");

    /* Unknown bits are still refused, on every call that takes check flags. */
    CHECK_RC(pcibind_bind(ctx, NIC, NULL, 256, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_unbind(ctx, NIC, PCIBIND_BIND_REQUIRE_VFIO), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, PCIBIND_BIND_DRY_RUN, NULL),
             PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_bind_group(ctx, NIC, PCIBIND_BIND_REQUIRE_VFIO, NULL),
             PCIBIND_ERR_INVALID_ARG);
    teardown();
}

/* The console GPU allowed, the NIC still refused: a manager's single-GPU passthrough. */
static void console_gpu_allowed_while_the_nic_is_refused(void)
{
    setup();
    gpu_drives_the_console();
    nic_carries_the_hosts_traffic_in(root, NIC);
    unsigned kinds = 99;
    char *reason = NULL;
    CHECK_RC(pcibind_in_use(ctx, GPU, &kinds, &reason), PCIBIND_OK);
    CHECK(kinds == PCIBIND_IN_USE_DISPLAY);
    CHECK_CONTAINS(reason, "boot framebuffer");
    pcibind_string_free(reason);
    CHECK_RC(pcibind_in_use(ctx, NIC, &kinds, NULL), PCIBIND_OK);
    CHECK(kinds == PCIBIND_IN_USE_NETWORK);
    /* The user chose to give the console GPU away: that and nothing else is allowed. */
    if (kinds & PCIBIND_IN_USE_NETWORK)
        expect_refused(NIC, NULL, 0, PCIBIND_ERR_IN_USE);
    CHECK_RC(pcibind_bind(ctx, GPU, NULL, PCIBIND_BIND_ALLOW_IN_USE, NULL), PCIBIND_OK);
    expect_bound_in(root, GPU, "vfio-pci");
    expect_bound_in(root, NIC, "e1000e");
    /* On vfio-pci the GPU is no host's: in use only if a VMM held it, and it goes back to its
     * host driver with no flag (which takes the console over from the firmware's). */
    CHECK_RC(pcibind_in_use(ctx, GPU, &kinds, NULL), PCIBIND_OK);
    CHECK(kinds == 0);
    CHECK_RC(pcibind_reattach(ctx, GPU, NULL, 0, NULL), PCIBIND_OK);
    expect_bound_in(root, GPU, "bochs-drm");
    teardown();
}

/* pcibind_in_use(): each kind, 0 with no reason when not in use, arguments checked. */
static void in_use_answers_with_its_kinds(void)
{
    setup();
    unsigned kinds = 99;
    char *reason = (char *)1;
    CHECK_RC(pcibind_in_use(ctx, NIC, &kinds, &reason), PCIBIND_OK);
    CHECK(kinds == 0);
    CHECK(reason == NULL);
    /* Mediated devices on it: `other`. */
    ptk_mkdirs(root, "devices/pci0000:00/" GPU "/mdev_supported_types/i915-GVTg_V5_4/devices");
    ptk_symlink(root,
                "devices/pci0000:00/" GPU
                "/mdev_supported_types/i915-GVTg_V5_4/devices/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001",
                "../../../83b8f4f2-509f-382f-3c1e-e6bfe0fa1001");
    CHECK_RC(pcibind_in_use(ctx, GPU, &kinds, &reason), PCIBIND_OK);
    CHECK(kinds == PCIBIND_IN_USE_OTHER);
    CHECK_CONTAINS(reason, "1 mediated device(s) (83b8f4f2-509f-382f-3c1e-e6bfe0fa1001)");
    pcibind_string_free(reason);
    expect_refused(GPU, "vfio-pci", 0, PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), "mediated device");
    /* Types with no instance are no use. */
    char *link = ptk_path(root, "devices/pci0000:00/" GPU "/mdev_supported_types/i915-GVTg_V5_4/"
                                "devices/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001");
    CHECK(unlink(link) == 0);
    free(link);
    CHECK_RC(pcibind_in_use(ctx, GPU, &kinds, NULL), PCIBIND_OK);
    CHECK(kinds == 0);
    /* Several kinds at once: the NIC with traffic and a framebuffer below it. */
    nic_carries_the_hosts_traffic_in(root, NIC);
    ptk_mkdirs(root, "devices/pci0000:00/" NIC "/graphics/fb0");
    CHECK_RC(pcibind_in_use(ctx, NIC, &kinds, &reason), PCIBIND_OK);
    CHECK(kinds == (PCIBIND_IN_USE_NETWORK | PCIBIND_IN_USE_DISPLAY));
    CHECK_CONTAINS(reason, "network interface eth0");
    CHECK_CONTAINS(reason, "framebuffer fb0");
    pcibind_string_free(reason);
    /* A VMM holding a device on vfio-pci. */
    ptk_mkdirs(root, "dev/vfio");
    ptk_iommu_group(root, 5, MLX);
    CHECK_RC(pcibind_bind(ctx, MLX, "vfio-pci", 0, NULL), PCIBIND_OK);
    char *node = ptk_path(root, "dev/vfio/5");
    ptk_mkdirs(root, "proc/4242/fd");
    ptk_write(root, "proc/4242/comm", "qemu-system-x86\n");
    ptk_symlink(root, "proc/4242/fd/12", node);
    free(node);
    CHECK_RC(pcibind_in_use(ctx, MLX, &kinds, &reason), PCIBIND_OK);
    CHECK(kinds == PCIBIND_IN_USE_VMM);
    CHECK_CONTAINS(reason, "held by a VMM: process 4242 (qemu-system-x86)");
    pcibind_string_free(reason);
    /* Arguments. */
    reason = (char *)1;
    CHECK_RC(pcibind_in_use(ctx, NIC, NULL, &reason), PCIBIND_ERR_INVALID_ARG);
    CHECK(reason == NULL);
    CHECK_RC(pcibind_in_use(ctx, "0000:09:00.0", &kinds, NULL), PCIBIND_ERR_NO_DEVICE);
    CHECK(kinds == 0);
    CHECK_RC(pcibind_in_use(ctx, "x", &kinds, NULL), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_RC(pcibind_in_use(NULL, NIC, &kinds, NULL), PCIBIND_ERR_INVALID_ARG);
    teardown();
}

/* REQUIRE_VFIO: a named host driver is refused, forced or not; a VFIO one is fine. */
static void a_vfio_driver_can_be_required(void)
{
    setup();
    unsigned require = PCIBIND_BIND_REQUIRE_VFIO;
    CHECK_RC(pcibind_reattach(ctx, NIC, NULL, 0, NULL), PCIBIND_OK);
    expect_refused(MLX, "mlx5_core", require, PCIBIND_ERR_NOT_CLAIMED);
    CHECK_CONTAINS(pcibind_last_error_message(), "not a VFIO driver");
    expect_refused(MLX, "mlx5_core", require | PCIBIND_BIND_FORCE, PCIBIND_ERR_NOT_CLAIMED);
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio_pci", require, NULL), PCIBIND_OK);
    expect_bound_in(root, NIC, "vfio-pci");
    char *plan = NULL;
    CHECK_RC(pcibind_bind_plan(ctx, MLX, "e1000e", require, &plan), PCIBIND_ERR_NOT_CLAIMED);
    CHECK(plan == NULL);
    teardown();
}

/* STRICT_VARIANT: the variant or nothing; without it, vfio-pci with a warning. */
static void a_variant_or_nothing(void)
{
    setup();
    ptk_modprobe_table(root, "mlx5_vfio_pci !modprobe: ERROR: could not insert 'mlx5_vfio_pci': "
                             "Key was rejected by service");
    char *driver = NULL;
    expect_refused(MLX, NULL, PCIBIND_BIND_STRICT_VARIANT, PCIBIND_ERR_MODULE_LOAD);
    CHECK_CONTAINS(pcibind_last_error_message(), "mlx5_vfio_pci");
    CHECK_CONTAINS(pcibind_last_error_message(), "Key was rejected");
    expect_bound_in(root, MLX, "mlx5_core");
    CHECK_RC(pcibind_bind(ctx, MLX, NULL, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "vfio-pci");
    CHECK_CONTAINS(warnings, "falling back to vfio-pci");
    pcibind_string_free(driver);
    CHECK_RC(pcibind_reattach(ctx, MLX, NULL, 0, NULL), PCIBIND_OK);
    /* A module that is not there at all is the same failure when strict. */
    teardown();
    setup();
    expect_refused(MLX, NULL, PCIBIND_BIND_STRICT_VARIANT, PCIBIND_ERR_MODULE_LOAD);
    CHECK_CONTAINS(pcibind_last_error_message(), "VFIO variant driver is required");
    /* Loadable, it is bound; a device whose best driver is vfio-pci itself is bound to it. */
    ptk_modprobe_table(root, "mlx5_vfio_pci mlx5_vfio_pci vfio");
    CHECK_RC(pcibind_bind(ctx, MLX, NULL, PCIBIND_BIND_STRICT_VARIANT, &driver), PCIBIND_OK);
    CHECK_STR(driver, "mlx5_vfio_pci");
    pcibind_string_free(driver);
    CHECK_RC(pcibind_bind(ctx, NIC, NULL, PCIBIND_BIND_STRICT_VARIANT, &driver), PCIBIND_OK);
    CHECK_STR(driver, "vfio-pci");
    pcibind_string_free(driver);
    teardown();
}

/* pcibind_bind_start(): the start and whether it moved, for each way a device can start. */
static void bind_start_reports_the_start(void)
{
    setup();
    char *driver = NULL, *start = NULL, *over = NULL;
    int moved = -1;
    CHECK_RC(pcibind_bind_start(ctx, NIC, NULL, 0, &driver, &start, &over, &moved), PCIBIND_OK);
    CHECK_STR(driver, "vfio-pci");
    CHECK_STR(start, "e1000e");
    CHECK(over == NULL);
    CHECK(moved == 1);
    pcibind_string_free(driver);
    pcibind_string_free(start);
    /* Already there: nothing moved, the start is where it is. */
    CHECK_RC(pcibind_bind_start(ctx, NIC, "vfio-pci", 0, &driver, &start, &over, &moved),
             PCIBIND_OK);
    CHECK_STR(start, "vfio-pci");
    CHECK_STR(over, "vfio-pci");
    CHECK(moved == 0);
    pcibind_string_free(driver);
    pcibind_string_free(start);
    pcibind_string_free(over);
    /* Unbound with the no-driver override. */
    CHECK_RC(pcibind_unbind(ctx, NIC, 0), PCIBIND_OK);
    CHECK_RC(pcibind_bind_start(ctx, NIC, "vfio-pci", 0, NULL, &start, &over, &moved),
             PCIBIND_OK);
    CHECK(start == NULL);
    CHECK_STR(over, "none");
    CHECK(moved == 1);
    pcibind_string_free(over);
    /* Every out may be NULL. */
    CHECK_RC(pcibind_reattach(ctx, NIC, "e1000e", 0, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_bind_start(ctx, NIC, NULL, 0, NULL, NULL, NULL, NULL), PCIBIND_OK);
    /* The start given back exactly: the host driver, its override cleared. */
    CHECK_RC(pcibind_reattach(ctx, NIC, "e1000e", 0, NULL), PCIBIND_OK);
    expect_bound_in(root, NIC, "e1000e");
    expect_override_in(root, NIC, "(null)");
    /* A failure leaves every out empty. */
    driver = start = over = (char *)1;
    moved = 7;
    CHECK_RC(pcibind_bind_start(ctx, NIC, "bochs-drm", 0, &driver, &start, &over, &moved),
             PCIBIND_ERR_NOT_CLAIMED);
    CHECK(driver == NULL && start == NULL && over == NULL && moved == 0);
    /* A dry run: the start as it is, nothing moved, nothing written. */
    ptk_write(root, "write.log", "");
    CHECK_RC(pcibind_bind_start(ctx, NIC, NULL, PCIBIND_BIND_DRY_RUN, &driver, &start, &over,
                                &moved),
             PCIBIND_OK);
    CHECK_STR(driver, "vfio-pci");
    CHECK_STR(start, "e1000e");
    CHECK(moved == 0);
    expect_nothing_written();
    pcibind_string_free(driver);
    pcibind_string_free(start);
    teardown();
}

/* The start comes from the locked transaction: while another thread moves the device back and
 * forth, every answer is consistent (started on vfio-pci <=> nothing moved), which a read
 * before the bind cannot promise. */
static atomic_int stop;

static void *flapper(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        if (pcibind_reattach(ctx, NIC, NULL, 0, NULL) != PCIBIND_OK ||
            pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL) != PCIBIND_OK) {
            printf("#   the flapping thread failed: %s\n", pcibind_last_error_message());
            harness_failed_now = 1;
            break;
        }
    }
    return NULL;
}

static void the_start_cannot_be_made_to_lie(void)
{
    setup();
    pthread_t t;
    atomic_store(&stop, 0);
    CHECK(pthread_create(&t, NULL, flapper, NULL) == 0);
    int on_vfio = 0, on_host = 0;
    for (int i = 0; i < 200 && !harness_failed_now; i++) {
        char *start = NULL;
        int moved = -1;
        CHECK_RC(pcibind_bind_start(ctx, NIC, "vfio-pci", 0, NULL, &start, NULL, &moved),
                 PCIBIND_OK);
        int started_on_vfio = start && strcmp(start, "vfio-pci") == 0;
        if (started_on_vfio == moved) {
            printf("#   start %s but moved %d\n", start ? start : "(none)", moved);
            harness_failed_now = 1;
        }
        on_vfio += started_on_vfio;
        on_host += !started_on_vfio;
        pcibind_string_free(start);
        usleep(500); /* let the other thread in */
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("# %d starts on vfio-pci, %d on the host driver\n", on_vfio, on_host);
    teardown();
}

/* A caller's module loader instead of modprobe. */
struct loader_state {
    char asked[256];
    const char *refuse;
    int calls;
};

static int loader(void *userdata, const char *module, char **error_out)
{
    struct loader_state *s = userdata;
    s->calls++;
    size_t len = strlen(s->asked);
    snprintf(s->asked + len, sizeof(s->asked) - len, "%s\n", module);
    if (s->refuse && strcmp(module, s->refuse) == 0) {
        if (asprintf(error_out, "module %s is administratively prohibited", module) < 0)
            *error_out = NULL;
        return -1;
    }
    if (strcmp(module, "typo_vfio_pci") == 0) {
        if (asprintf(error_out, "no module %s", module) < 0)
            *error_out = NULL;
        return -ENOENT;
    }
    if (strcmp(module, "mlx5_vfio_pci") == 0)
        ptk_register_driver(root, "mlx5_vfio_pci", "mlx5_vfio_pci", 1, NULL);
    else if (strcmp(module, "silent") == 0)
        return 3;
    return 0;
}

static void the_caller_loads_modules(void)
{
    setup();
    struct loader_state s = {.asked = "", .refuse = "mlx5_vfio_pci"};
    CHECK_RC(pcibind_ctx_set_module_loader(ctx, loader, &s), PCIBIND_OK);
    /* Refused by the caller's policy: the caller's words, nothing written, modprobe never run. */
    expect_refused(MLX, NULL, PCIBIND_BIND_STRICT_VARIANT, PCIBIND_ERR_MODULE_LOAD);
    CHECK_CONTAINS(pcibind_last_error_message(), "administratively prohibited");
    CHECK_STR(s.asked, "mlx5_vfio_pci\n");
    char *log = ptk_modprobe_log(root);
    CHECK_STR(log, "");
    free(log);
    /* Loaded by the caller: bound to the variant. */
    s.refuse = NULL;
    char *driver = NULL;
    CHECK_RC(pcibind_bind(ctx, MLX, NULL, PCIBIND_BIND_STRICT_VARIANT, &driver), PCIBIND_OK);
    CHECK_STR(driver, "mlx5_vfio_pci");
    pcibind_string_free(driver);
    /* -ENOENT: no module has that name, as modprobe's "not found": no such driver. */
    CHECK_RC(pcibind_resolve_driver(ctx, "typo_vfio_pci", 0, &driver), PCIBIND_ERR_NO_DRIVER);
    CHECK_CONTAINS(pcibind_last_error_message(), "no module typo_vfio_pci");
    /* A loader that fails saying nothing still gets a message. */
    CHECK_RC(pcibind_resolve_driver(ctx, "silent", 0, &driver), PCIBIND_ERR_MODULE_LOAD);
    CHECK_CONTAINS(pcibind_last_error_message(), "returned 3");
    /* NULL restores modprobe. */
    CHECK_RC(pcibind_ctx_set_module_loader(ctx, NULL, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, getenv("FAKE_MODPROBE")), PCIBIND_OK);
    int calls = s.calls;
    CHECK_RC(pcibind_resolve_driver(ctx, "silent", 0, &driver), PCIBIND_ERR_NO_DRIVER);
    CHECK(s.calls == calls);
    CHECK_RC(pcibind_ctx_set_module_loader(NULL, loader, &s), PCIBIND_ERR_INVALID_ARG);
    teardown();
}

/* A load that probes the device: mlx5_vfio_pci needs mlx5_core, whose driver takes an
 * unbound ConnectX VF as it registers (the kernel's driver_attach), here a write of the VF to
 * mlx5_core's bind file. `refuse`: the loader then says the variant failed to load. */
#define VF "0000:03:00.1"
static int probing_refuses;

static int probing_loader(void *userdata, const char *module, char **error_out)
{
    (void)userdata;
    if (strcmp(module, "mlx5_vfio_pci") != 0) {
        if (asprintf(error_out, "no module %s", module) < 0)
            *error_out = NULL;
        return -ENOENT;
    }
    char *bind = ptk_path(root, "bus/pci/drivers/mlx5_core/bind");
    int fd = open(bind, O_WRONLY);
    CHECK(fd >= 0 && write(fd, VF, strlen(VF)) == (ssize_t)strlen(VF));
    if (fd >= 0)
        close(fd);
    free(bind);
    if (probing_refuses) {
        if (asprintf(error_out, "mlx5_vfio_pci: Key was rejected by service") < 0)
            *error_out = NULL;
        return -1;
    }
    ptk_register_driver(root, "mlx5_vfio_pci", "mlx5_vfio_pci", 1, NULL);
    return 0;
}

static void a_load_that_probes_the_device_is_undone_with_the_transaction(void)
{
    setup();
    ptk_device(root, VF, MLX_ID, NULL);
    CHECK_RC(pcibind_ctx_set_module_loader(ctx, probing_loader, NULL), PCIBIND_OK);
    /* The variant's probe fails after the load put the VF on mlx5_core: the VF goes back to
     * where it started, unbound with no override, not to where the load left it. */
    ptk_fault(root, "probe:mlx5_vfio_pci ENODEV 1");
    probing_refuses = 0;
    char *driver = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_bind(ctx, VF, NULL, 0, &driver), PCIBIND_ERR_BIND);
    CHECK(driver == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "the kernel did not bind mlx5_vfio_pci");
    CHECK_CONTAINS(pcibind_last_error_message(),
                   "restored (bound to no driver, driver_override unset)");
    expect_bound_in(root, VF, NULL);
    char *over = ptk_override(root, VF);
    CHECK_STR(over, "(null)");
    free(over);
    char *rec = ptk_read(root, "locks/" VF ".lock");
    CHECK(rec == NULL || *rec == '\0');
    free(rec);
    /* The module stays loaded (other devices may use it); the next bind needs no load. */
    CHECK_RC(pcibind_bind(ctx, VF, NULL, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "mlx5_vfio_pci");
    pcibind_string_free(driver);
    teardown();

    /* Stopped at the checkpoint: the strict variant failed to load after its load probed the
     * VF. The error is the loader's, as without the probe; the VF is unbound again. */
    setup();
    ptk_device(root, VF, MLX_ID, NULL);
    CHECK_RC(pcibind_ctx_set_module_loader(ctx, probing_loader, NULL), PCIBIND_OK);
    probing_refuses = 1;
    CHECK_RC(pcibind_bind(ctx, VF, NULL, PCIBIND_BIND_STRICT_VARIANT, &driver),
             PCIBIND_ERR_MODULE_LOAD);
    CHECK(driver == NULL);
    CHECK_STR(pcibind_last_error_message(), "loading module 'mlx5_vfio_pci' failed: the module "
                                            "loader refused it: mlx5_vfio_pci: Key was rejected "
                                            "by service");
    CHECK_CONTAINS(warnings, "moved by the module load, was restored");
    expect_bound_in(root, VF, NULL);
    /* bind_start's start is the one read before the load, whatever the load did. */
    probing_refuses = 0;
    char *start = NULL, *start_override = (char *)(uintptr_t)0x1;
    int moved = -1;
    CHECK_RC(pcibind_bind_start(ctx, VF, NULL, 0, &driver, &start, &start_override, &moved),
             PCIBIND_OK);
    CHECK_STR(driver, "mlx5_vfio_pci");
    CHECK(start == NULL && start_override == NULL && moved == 1);
    pcibind_string_free(driver);
    teardown();
}

/* The plan's load line is the rendering of the load step: the configured program, or the
 * caller's loader, for a target's module and for a host module. */
static void plans_say_who_loads(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias",
              "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n"
              "alias pci:v00001234d00001111sv*sd*bc03sc*i* bochs\n"
              "alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core\n"
              "alias pci:v00008086d000010FBsv*sd*bc*sc*i* ixgbe\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n"
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n");
    ptk_device(root, "0000:05:00.0", "pci:v00008086d000010FBsv00008086sd0000000Cbc02sc00i00",
               "vfio-pci");
    ptk_write(root, "write.log", "");
    char *plan = NULL, *line = NULL;
    CHECK_RC(pcibind_bind_plan(ctx, MLX, NULL, 0, &plan), PCIBIND_OK);
    CHECK(asprintf(&line,
                   "run %s -b mlx5_vfio_pci; its PCI driver is known once it is loaded (should "
                   "it fail to load: vfio-pci instead)\nsafety checks passed",
                   getenv("FAKE_MODPROBE")) > 0);
    CHECK_CONTAINS(plan, line);
    CHECK_CONTAINS(plan, "a restore unloads no module: other devices may already use "
                         "mlx5_vfio_pci");
    free(line);
    pcibind_string_free(plan);
    CHECK_RC(pcibind_reattach_plan(ctx, "0000:05:00.0", NULL, 0, &plan), PCIBIND_OK);
    CHECK(asprintf(&line, "load host module ixgbe: run %s -b ixgbe\n",
                   getenv("FAKE_MODPROBE")) > 0);
    CHECK_CONTAINS(plan, line);
    free(line);
    pcibind_string_free(plan);

    struct loader_state s = {.asked = ""};
    CHECK_RC(pcibind_ctx_set_module_loader(ctx, loader, &s), PCIBIND_OK);
    CHECK_RC(pcibind_bind_plan(ctx, MLX, NULL, PCIBIND_BIND_STRICT_VARIANT, &plan), PCIBIND_OK);
    CHECK_CONTAINS(plan, "ask the caller's module loader for mlx5_vfio_pci; its PCI driver is "
                         "known once it is loaded (should it fail to load: an error, no "
                         "fallback)");
    pcibind_string_free(plan);
    CHECK_RC(pcibind_reattach_plan(ctx, "0000:05:00.0", NULL, 0, &plan), PCIBIND_OK);
    CHECK_CONTAINS(plan, "load host module ixgbe: ask the caller's module loader for ixgbe\n");
    pcibind_string_free(plan);
    /* Plans load nothing. */
    CHECK(s.calls == 0);
    char *log = ptk_modprobe_log(root);
    CHECK_STR(log, "");
    free(log);
    expect_nothing_written();
    teardown();
}

/* Xen's pciback holds a device for guests, as pci-stub does for nobody: a reattach with no
 * name reprobes it to its host driver, and it blocks no IOMMU group. */
static void pciback_is_a_stub(void)
{
    setup();
    ptk_loaded_driver(root, "xen_pciback", "pciback");
    ptk_device(root, "0000:00:1f.3", "pci:v00008086d0000A348sv00008086sd00007270bc04sc03i00",
               "pciback");
    ptk_iommu_group(root, 9, "0000:00:1f.3");
    ptk_iommu_group(root, 9, NIC);
    int viable = -1;
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_iommu_group_viable(ctx, NIC, 0, &viable, NULL), PCIBIND_OK);
    CHECK(viable == 1);
    ptk_device(root, "0000:00:1a.0", E1000E_ID, "pciback");
    ptk_write(root, "write.log", "");
    char *driver = NULL;
    CHECK_RC(pcibind_reattach(ctx, "0000:00:1a.0", NULL, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "e1000e");
    pcibind_string_free(driver);
    teardown();
}

/* The plans of unbind and reattach come from the library (issue 22): the steps the real call
 * runs, its checks, nothing written; "nothing to do" when there is nothing. */
static void unbind_and_reattach_have_plans(void)
{
    setup();
    char *plan = NULL;
    ptk_write(root, "write.log", "");
    CHECK_RC(pcibind_unbind_plan(ctx, NIC, 0, &plan), PCIBIND_OK);
    CHECK_CONTAINS(plan, "write 'none' to ");
    CHECK_CONTAINS(plan, "drivers/e1000e/unbind");
    CHECK_CONTAINS(plan, "on failure, restore " NIC " to bound to e1000e");
    pcibind_string_free(plan);
    CHECK_RC(pcibind_reattach_plan(ctx, NIC, "vfio-pci", 0, &plan), PCIBIND_OK);
    CHECK_CONTAINS(plan, "write 'vfio-pci' to ");
    pcibind_string_free(plan);
    expect_nothing_written();
    /* The checks refuse as the real calls would. */
    nic_carries_the_hosts_traffic_in(root, NIC);
    CHECK_RC(pcibind_unbind_plan(ctx, NIC, 0, &plan), PCIBIND_ERR_IN_USE);
    CHECK(plan == NULL);
    CHECK_RC(pcibind_reattach_plan(ctx, NIC, "vfio-pci", 0, &plan), PCIBIND_ERR_IN_USE);
    CHECK_RC(pcibind_unbind_plan(ctx, NIC, PCIBIND_BIND_ALLOW_IN_USE, &plan), PCIBIND_OK);
    pcibind_string_free(plan);
    /* Nothing to do: said so. */
    CHECK_RC(pcibind_reattach_plan(ctx, NIC, NULL, 0, &plan), PCIBIND_OK);
    CHECK_CONTAINS(plan, "nothing to do");
    pcibind_string_free(plan);
    CHECK_RC(pcibind_unbind(ctx, NIC, PCIBIND_BIND_ALLOW_IN_USE), PCIBIND_OK);
    CHECK_RC(pcibind_unbind_plan(ctx, NIC, 0, &plan), PCIBIND_OK);
    CHECK_CONTAINS(plan, "unbound and kept so; nothing to do");
    pcibind_string_free(plan);
    CHECK_RC(pcibind_unbind_plan(ctx, NIC, 0, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_unbind_plan(ctx, NIC, PCIBIND_BIND_DRY_RUN, &plan), PCIBIND_ERR_INVALID_ARG);
    expect_bound_in(root, NIC, NULL);
    teardown();
}

RUN_TESTS(TEST_CASE(each_check_is_skipped_by_its_own_flag), TEST_CASE(unbind_and_reattach_have_plans),
          TEST_CASE(console_gpu_allowed_while_the_nic_is_refused),
          TEST_CASE(in_use_answers_with_its_kinds), TEST_CASE(a_vfio_driver_can_be_required),
          TEST_CASE(a_variant_or_nothing), TEST_CASE(bind_start_reports_the_start),
          TEST_CASE(the_start_cannot_be_made_to_lie), TEST_CASE(the_caller_loads_modules),
          TEST_CASE(pciback_is_a_stub),
          TEST_CASE(a_load_that_probes_the_device_is_undone_with_the_transaction),
          TEST_CASE(plans_say_who_loads))
