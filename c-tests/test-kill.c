/* Every transaction cut short after each of its writes (SPEC 3.12, 3.13), with the test kit's
 * knobs: PTK_KILL_AFTER_WRITE kills the caller (SIGKILL, in a forked child) right after its
 * n-th kernel write, PTK_REMOVE_AFTER_WRITE hot-removes the device that write concerned. For
 * bind, reattach (to the host and named), unbind, a group bind and reattach, and an SR-IOV count
 * change, and for every n up to the transaction's number of writes:
 * - killed, then pcibind_recover(): every device exactly where it started, no record left;
 * - killed, then the same call again: it rolls back first and ends where the call should;
 * - the device removed after the n-th write: PCIBIND_ERR_NO_DEVICE (never a false
 *   PCIBIND_ERR_RESTORE), the other devices of the unit where they started, no record and no
 *   lock left; rescanned, the device is moved at once.
 * A bind whose module load probes the device (a host module taking an unbound VF) is cut right
 * after that probe too: the start was recorded before the load. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "testctx.h"

#define NIC "0000:02:00.0"
#define PORT "0000:00:1c.0"
#define GPU "0000:01:00.0"
#define AUDIO "0000:01:00.1"
#define PF "0000:06:00.0"
#define VF0 "0000:06:00.1"
#define VF1 "0000:06:00.2"
#define MLXVF "0000:07:00.1"

static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
static const char *const PORT_ID = "pci:v00008086d0000A110sv00008086sd00007270bc06sc04i00";
static const char *const GPU_ID = "pci:v000010DEd00002204sv00001462sd00003880bc03sc00i00";
static const char *const AUDIO_ID = "pci:v000010DEd00001AEFsv00001462sd00003880bc04sc03i00";
static const char *const PF_ID = "pci:v00008086d000010FBsv00008086sd0000000Cbc02sc00i00";
static const char *const VF_ID = "pci:v00008086d000010EDsv00008086sd0000000Cbc02sc00i00";
static const char *const MLX_VF_ID = "pci:v000015B3d0000101Esv000015B3sd00000001bc02sc00i00";

static const char *const DEVICES[] = {NIC, PORT, GPU, AUDIO, PF, VF0, VF1, MLXVF};

static char *root;
static pcibind_ctx *ctx;

/* One tree for every scenario: the NIC on e1000e; a GPU on nouveau and its audio function on
 * snd_hda_intel in one IOMMU group with their root port; an SR-IOV PF on ixgbe with no VFs. */
static void setup(void)
{
    root = ptk_new();
    warnings[0] = '\0';
    ptk_mkdirs(root, "lib-modules");
    ptk_write(root, "lib-modules/modules.alias",
              "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n"
              "alias pci:v000010DEd*sv*sd*bc03sc*i* nouveau\n"
              "alias pci:v*d*sv*sd*bc04sc03i* snd_hda_intel\n"
              "alias pci:v00008086d000010FBsv*sd*bc*sc*i* ixgbe\n"
              "alias pci:v00008086d000010EDsv*sd*bc*sc*i* ixgbevf\n"
              "alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n"
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n");
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_builtin_driver(root, "pcieport", "pcieportdrv");
    ptk_loaded_driver(root, "e1000e", "e1000e");
    ptk_driver_ids(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
    ptk_loaded_driver(root, "nouveau", "nouveau");
    ptk_driver_ids(root, "nouveau", "pci:v000010DEd*sv*sd*bc03sc*i*");
    ptk_loaded_driver(root, "snd_hda_intel", "snd_hda_intel");
    ptk_driver_ids(root, "snd_hda_intel", "pci:v*d*sv*sd*bc04sc03i*");
    ptk_loaded_driver(root, "ixgbe", "ixgbe");
    ptk_driver_ids(root, "ixgbe", "pci:v00008086d000010FBsv*sd*bc*sc*i*");
    ptk_write(root, "bus/pci/drivers/ixgbe/fake_sriov_configure", "");
    ptk_loaded_driver(root, "ixgbevf", "ixgbevf");
    ptk_driver_ids(root, "ixgbevf", "pci:v00008086d000010EDsv*sd*bc*sc*i*");
    ptk_device(root, NIC, E1000E, "e1000e");
    ptk_device(root, PORT, PORT_ID, "pcieport");
    ptk_device(root, GPU, GPU_ID, "nouveau");
    ptk_device(root, AUDIO, AUDIO_ID, "snd_hda_intel");
    ptk_iommu_group(root, 1, PORT);
    ptk_iommu_group(root, 1, GPU);
    ptk_iommu_group(root, 1, AUDIO);
    ptk_device(root, PF, PF_ID, "ixgbe");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_totalvfs", "8\n");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_numvfs", "0\n");
    ptk_write(root, "devices/pci0000:00/" PF "/sriov_drivers_autoprobe", "1\n");
    ptk_write(root, "devices/pci0000:00/" PF "/fake_vf_modalias", VF_ID);
    /* A ConnectX VF, unbound: mlx5_core is registered, its variant mlx5_vfio_pci is not. */
    ptk_loaded_driver(root, "mlx5_core", "mlx5_core");
    ptk_driver_ids(root, "mlx5_core", "pci:v000015B3d0000101Esv*sd*bc*sc*i*");
    ptk_device(root, MLXVF, MLX_VF_ID, NULL);
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

/* Where every device is: "BDF DRIVER OVERRIDE" a line ("gone" for a device not there), and the
 * PF's VF count and autoprobe. */
static char *snapshot(void)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    for (size_t i = 0; i < sizeof(DEVICES) / sizeof(DEVICES[0]); i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "bus/pci/devices/%s/modalias", DEVICES[i]);
        char *there = ptk_read(root, rel);
        if (!there) {
            fprintf(f, "%s gone\n", DEVICES[i]);
            continue;
        }
        free(there);
        snprintf(rel, sizeof(rel), "bus/pci/devices/%s/driver", DEVICES[i]);
        char *link = ptk_path(root, rel);
        char target[4096] = "-";
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        free(link);
        const char *driver = "-";
        if (n > 0) {
            target[n] = '\0';
            driver = strrchr(target, '/') + 1;
        }
        char *override = ptk_override(root, DEVICES[i]);
        fprintf(f, "%s %s %s\n", DEVICES[i], driver, override ? override : "?");
        free(override);
    }
    char *numvfs = ptk_read(root, "devices/pci0000:00/" PF "/sriov_numvfs");
    char *autoprobe = ptk_read(root, "devices/pci0000:00/" PF "/sriov_drivers_autoprobe");
    fprintf(f, "numvfs %s autoprobe %s", numvfs ? numvfs : "?\n", autoprobe ? autoprobe : "?\n");
    free(numvfs);
    free(autoprobe);
    fclose(f);
    return out;
}

/* Whether some lock file holds a record ("" when none). */
static char *records(void)
{
    char *dir = ptk_path(root, "locks");
    DIR *d = opendir(dir);
    char *found = strdup("");
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char rel[300];
        snprintf(rel, sizeof(rel), "locks/%s", e->d_name);
        char *text = ptk_read(root, rel);
        if (text && *text) {
            free(found);
            found = strdup(e->d_name);
        }
        free(text);
    }
    if (d)
        closedir(d);
    free(dir);
    return found;
}

static size_t writes_logged(void)
{
    char *log = ptk_write_log(root);
    size_t n = 0;
    for (char *p = log; p && *p; p++)
        n += *p == '\n';
    free(log);
    return n;
}

/* A transaction: how its start is reached, and the call. */
struct scenario {
    const char *name;
    void (*prepare)(void);
    int (*call)(void);
    int hot_removal; /* also cut by a removal after each write */
};

static void nothing(void)
{
}

static void nic_on_vfio(void)
{
    CHECK_RC(pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL), PCIBIND_OK);
}

static void group_on_vfio(void)
{
    CHECK_RC(pcibind_bind_group(ctx, GPU, 0, NULL), PCIBIND_OK);
}

static int bind_nic(void)
{
    return pcibind_bind(ctx, NIC, "vfio-pci", 0, NULL);
}

static int reattach_nic(void)
{
    return pcibind_reattach(ctx, NIC, NULL, 0, NULL);
}

static int reattach_nic_named(void)
{
    return pcibind_reattach(ctx, NIC, "e1000e", 0, NULL);
}

static int unbind_nic(void)
{
    return pcibind_unbind(ctx, NIC, 0);
}

static int bind_group(void)
{
    return pcibind_bind_group(ctx, GPU, 0, NULL);
}

static int reattach_group(void)
{
    return pcibind_reattach_group(ctx, GPU, 0, NULL);
}

static int two_vfs(void)
{
    return pcibind_sriov_set_numvfs(ctx, PF, 2, 0, NULL);
}

/* The caller's module loader: loading mlx5_vfio_pci brings its dependency's driver onto the
 * unbound VF (one write: the kernel's probe of it), then registers the variant. */
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
    CHECK(fd >= 0 && write(fd, MLXVF, strlen(MLXVF)) == (ssize_t)strlen(MLXVF));
    if (fd >= 0)
        close(fd);
    free(bind);
    ptk_register_driver(root, "mlx5_vfio_pci", "mlx5_vfio_pci", 1, NULL);
    return 0;
}

static void a_loader_that_probes(void)
{
    CHECK_RC(pcibind_ctx_set_module_loader(ctx, probing_loader, NULL), PCIBIND_OK);
}

static int bind_vf_to_its_variant(void)
{
    return pcibind_bind(ctx, MLXVF, NULL, 0, NULL);
}

static const struct scenario SCENARIOS[] = {
    {"bind", nothing, bind_nic, 1},
    {"reattach", nic_on_vfio, reattach_nic, 1},
    {"named reattach", nic_on_vfio, reattach_nic_named, 1},
    {"unbind", nothing, unbind_nic, 1},
    {"group bind", nothing, bind_group, 1},
    {"group reattach", group_on_vfio, reattach_group, 1},
    {"SR-IOV count", nothing, two_vfs, 0},
    {"bind with a load that probes", a_loader_that_probes, bind_vf_to_its_variant, 1},
};

static void child(void *arg)
{
    const struct scenario *s = arg;
    int rc = s->call();
    if (rc != 0)
        fprintf(stderr, "child: %s\n", pcibind_last_error_message());
    exit(rc == 0 ? 0 : 1);
}

/* The scenario's start, then the state the call reaches and the number of writes it makes. */
static void learn(const struct scenario *s, char **start, char **done, size_t *writes)
{
    setup();
    s->prepare();
    ptk_write(root, "write.log", "");
    *start = snapshot();
    CHECK_RC(s->call(), PCIBIND_OK);
    *done = snapshot();
    *writes = writes_logged();
    teardown();
}

/* Prepared, then the call's caller killed after its n-th write (in a child). */
static int killed_at(const struct scenario *s, unsigned n)
{
    setup();
    s->prepare();
    int st = ptk_run_killed_after(n, child, (void *)s);
    return st;
}

static void killed_after_each_write(void)
{
    for (size_t i = 0; i < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]); i++) {
        const struct scenario *s = &SCENARIOS[i];
        char *start, *done;
        size_t writes;
        learn(s, &start, &done, &writes);
        CHECK(writes > 0 && strcmp(start, done) != 0);
        for (unsigned n = 1; n <= writes; n++) {
            int failed_before = harness_failed_now;
            harness_failed_now = 0;
            /* Then pcibind_recover(): exactly the start. */
            int st = killed_at(s, n);
            CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
            char *rec = records();
            CHECK(*rec != '\0');
            free(rec);
            char **recovered = NULL;
            CHECK_RC(pcibind_recover(ctx, NULL, 0, &recovered), PCIBIND_OK);
            CHECK(recovered && recovered[0]);
            pcibind_strv_free(recovered);
            char *now = snapshot();
            CHECK_STR(now, start);
            free(now);
            rec = records();
            CHECK_STR(rec, "");
            free(rec);
            teardown();
            /* Then the same call again: it rolls back first, and ends as the call should. */
            st = killed_at(s, n);
            CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
            CHECK_RC(s->call(), PCIBIND_OK);
            CHECK_CONTAINS(warnings, "was interrupted");
            now = snapshot();
            CHECK_STR(now, done);
            free(now);
            rec = records();
            CHECK_STR(rec, "");
            free(rec);
            teardown();
            if (harness_failed_now)
                printf("#   ^ %s, killed after write %u of %zu\n", s->name, n, writes);
            harness_failed_now |= failed_before;
        }
        /* One more than it makes: the child finishes. */
        int st = killed_at(s, (unsigned)writes + 1);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        teardown();
        printf("# %s: killed after each of its %zu writes\n", s->name, writes);
        free(start);
        free(done);
    }
}

/* The line of `bdf` in a snapshot. */
static char *line_of(const char *snap, const char *bdf)
{
    const char *p = strstr(snap, bdf);
    return p ? strndup(p, strcspn(p, "\n")) : strdup("?");
}

static void removed_after_each_write(void)
{
    for (size_t i = 0; i < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]); i++) {
        const struct scenario *s = &SCENARIOS[i];
        if (!s->hot_removal)
            continue;
        char *start, *done;
        size_t writes;
        learn(s, &start, &done, &writes);
        for (unsigned n = 1; n <= writes; n++) {
            int failed_before = harness_failed_now;
            harness_failed_now = 0;
            setup();
            s->prepare();
            char knob[16];
            snprintf(knob, sizeof(knob), "%u", n);
            setenv("PTK_REMOVE_AFTER_WRITE", knob, 1);
            int rc = s->call();
            unsetenv("PTK_REMOVE_AFTER_WRITE");
            /* Removed after the last write, with no read after it (a named reattach ends by
             * clearing the override), the call has done all it had to: success is the truth. */
            if (!(rc == PCIBIND_OK && n == writes)) {
                CHECK(rc == PCIBIND_ERR_NO_DEVICE);
                CHECK_CONTAINS(pcibind_last_error_message(), "disappeared during the operation");
            }
            /* Every device still there is where it started. */
            char *now = snapshot();
            int gone = 0;
            for (size_t d = 0; d < sizeof(DEVICES) / sizeof(DEVICES[0]); d++) {
                char *was = line_of(start, DEVICES[d]), *is = line_of(now, DEVICES[d]);
                if (strstr(is, " gone") && !strstr(was, " gone"))
                    gone++;
                else
                    CHECK_STR(is, was);
                free(was);
                free(is);
            }
            CHECK(gone == 1);
            free(now);
            char *rec = records();
            CHECK_STR(rec, "");
            free(rec);
            /* Plugged in again, it moves at once: no lock is left held. */
            ptk_rescan(root);
            CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 0), PCIBIND_OK);
            s->prepare();
            CHECK_RC(s->call(), PCIBIND_OK);
            teardown();
            if (harness_failed_now)
                printf("#   ^ %s, device removed after write %u of %zu\n", s->name, n, writes);
            harness_failed_now |= failed_before;
        }
        printf("# %s: a device removed after each of its %zu writes\n", s->name, writes);
        free(start);
        free(done);
    }
}

RUN_TESTS(TEST_CASE(killed_after_each_write), TEST_CASE(removed_after_each_write))
