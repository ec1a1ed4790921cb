/*
 * test-mgrpci.c: the manager's glue (mgrpci.c) on fake hosts made with the libpcibind test
 * kit, the kernel shim preloaded (meson.build sets LD_PRELOAD and FAKE_MODPROBE).
 *
 * Usage: test-mgrpci SCENARIO; meson runs each scenario as a test of its own. Each builds a
 * host in a temp dir, starts the manager on it as a daemon would (one context, its records
 * in the tree's state/), does what a user would, and checks the kernel's view (the tree's
 * links and driver_override, the shim's write.log, the fake modprobe's log) and the
 * manager's (its records, its error class and message). A failure says what was expected,
 * what was found, and prints the manager's log of the scenario (MGR_TEST_VERBOSE=1 prints it
 * for a scenario that passes too).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <pcibind-testkit.h>
#include <pcibind.h>

#include "mgrpci.h"

/* ------------------------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------------------------ */

static const char *scenario = "";
static int failed;
static int skipped; /* the scenario met a known library limit and says so */

#define EXPECT(cond, ...)                                                                       \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: [%s] expected %s: ", __FILE__, __LINE__, scenario, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            failed = 1;                                                                         \
        }                                                                                       \
    } while (0)

/* The manager's log of the scenario, printed when it fails. */
static char logText[65536];
static pthread_mutex_t logLock = PTHREAD_MUTEX_INITIALIZER;

static void captureLog(void *opaque, mgrLogPriority priority, const char *line)
{
    (void)opaque;
    pthread_mutex_lock(&logLock);
    size_t len = strlen(logText);
    snprintf(logText + len, sizeof(logText) - len, "%s: %s\n", mgrLogPriorityName(priority), line);
    pthread_mutex_unlock(&logLock);
}

static bool logHas(const char *text)
{
    pthread_mutex_lock(&logLock);
    bool found = strstr(logText, text) != NULL;
    pthread_mutex_unlock(&logLock);
    return found;
}

/* ------------------------------------------------------------------------------------------
 * A fake host, and the manager started on it
 * ------------------------------------------------------------------------------------------ */

#define NIC "0000:01:00.0"
#define NIC2 "0000:02:00.0"
#define NIC_MODALIAS "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00"
#define VF "0000:03:00.2"
#define VF_MODALIAS "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00"
#define GPU "0000:00:02.0"
#define GPU_MODALIAS "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00"

static char *root;
static mgrPCIContext *mgr;
static char *sysfsPath, *procPath, *devPath, *modulesPath, *locksPath, *statePath;

/* What depmod would have written for the drivers these hosts have: the claim checks and the
 * choice of a VFIO variant read it. */
static const char MODULES_ALIAS[] =
    "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n"
    "alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core\n"
    "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n"
    "alias pci:v00001234d00001111sv*sd*bc03sc00i* bochs\n"
    "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n";

static void hostNew(void)
{
    root = ptk_new();
    ptk_mkdirs(root, "lib-modules");
    ptk_write(root, "lib-modules/modules.alias", MODULES_ALIAS);
    ptk_mkdirs(root, "proc/net");
    ptk_mkdirs(root, "proc/self");
    ptk_mkdirs(root, "dev");
    sysfsPath = strdup(root);
    procPath = ptk_path(root, "proc");
    devPath = ptk_path(root, "dev");
    modulesPath = ptk_path(root, "lib-modules");
    locksPath = ptk_path(root, "locks");
    statePath = ptk_path(root, "state");
    logText[0] = '\0';
    mgrLogSetOutput(captureLog, NULL);
    mgrLogSetLevel(MGR_LOG_DEBUG);
}

/* The daemon's start: its configuration pointed at the fake host, the test kit's modprobe as
 * the program it loads modules with, and `deny` as its module deny list. */
static unsigned int modprobeTimeoutMs; /* 0: the manager's default */

static void managerStart(const char *const *deny)
{
    mgrPCIDaemonConfig config = {
        .sysfsRoot = sysfsPath,
        .procRoot = procPath,
        .devRoot = devPath,
        .modulesDir = modulesPath,
        .lockDir = locksPath,
        .stateDir = statePath,
        .modprobe = getenv("FAKE_MODPROBE"),
        .moduleDeny = deny,
        .modprobeTimeoutMs = modprobeTimeoutMs,
    };
    if (!config.modprobe) {
        fprintf(stderr, "FAKE_MODPROBE is not set: run the test through meson test\n");
        exit(99);
    }
    mgr = mgrPCIContextNew(&config);
    if (!mgr) {
        fprintf(stderr, "[%s] cannot start the manager: %s\n", scenario, mgrGetLastErrorMessage());
        exit(99);
    }
}

static void managerStop(void)
{
    mgrPCIContextFree(mgr);
    mgr = NULL;
}

static void hostDestroy(void)
{
    managerStop();
    ptk_destroy(root);
    root = NULL;
    free(sysfsPath);
    free(procPath);
    free(devPath);
    free(modulesPath);
    free(locksPath);
    free(statePath);
}

/* e1000e loaded with its ID table (once); the NIC at `bdf` on it. */
static void hostNic(const char *bdf)
{
    char *driver = ptk_path(root, "bus/pci/drivers/e1000e");
    bool loaded = access(driver, F_OK) == 0;
    free(driver);
    if (!loaded) {
        ptk_loaded_driver(root, "e1000e", "e1000e");
        ptk_driver_ids(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
    }
    ptk_device(root, bdf, NIC_MODALIAS, "e1000e");
}

static void deviceOverride(const char *bdf, const char *value)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/driver_override", bdf);
    ptk_write(root, rel, value);
}

/* ------------------------------------------------------------------------------------------
 * What the kernel and the manager hold
 * ------------------------------------------------------------------------------------------ */

/* The driver the device is on, as its link says ("no driver" when unbound). */
static char *driverOf(const char *bdf)
{
    char rel[128], link[PATH_MAX];
    snprintf(rel, sizeof(rel), "bus/pci/devices/%s/driver", bdf);
    char *path = ptk_path(root, rel);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    free(path);
    if (n < 0)
        return strdup("no driver");
    link[n] = '\0';
    return strdup(strrchr(link, '/') ? strrchr(link, '/') + 1 : link);
}

/* The device is on `driver` (NULL: none) with `override` ("(null)": none). */
static void expectDevice(const char *when, const char *bdf, const char *driver,
                         const char *override)
{
    char *actual = driverOf(bdf);
    EXPECT(ptk_is_bound_to(root, bdf, driver), "%s: %s on %s; it is on %s", when, bdf,
           driver ? driver : "no driver", actual);
    free(actual);
    char *value = ptk_override(root, bdf);
    EXPECT(value && strcmp(value, override) == 0, "%s: %s with driver_override %s; it has %s",
           when, bdf, override, value ? value : "no driver_override file");
    free(value);
}

static char *recordOf(const char *bdf)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "state/%s.state", bdf);
    return ptk_read(root, rel);
}

/* The device's record holds the line `line` ("start_driver=e1000e"). */
static void expectRecord(const char *when, const char *bdf, const char *line)
{
    char *text = recordOf(bdf);
    char want[256];
    snprintf(want, sizeof(want), "\n%s\n", line);
    EXPECT(text && strstr(text, want), "%s: the record of %s holds \"%s\"; it holds:\n%s", when,
           bdf, line, text ? text : "(no record)");
    free(text);
}

static void expectNoRecord(const char *when, const char *bdf)
{
    char *text = recordOf(bdf);
    EXPECT(!text, "%s: no record of %s; there is one:\n%s", when, bdf, text);
    free(text);
}

static void expectNoWrites(const char *when)
{
    char *writes = ptk_write_log(root);
    EXPECT(strcmp(writes, "") == 0, "%s: nothing written to the kernel; write.log holds:\n%s",
           when, writes);
    free(writes);
}

static void forgetWrites(void)
{
    ptk_write(root, "write.log", "");
}

static void expectModprobeRuns(const char *when, const char *expected)
{
    char *runs = ptk_modprobe_log(root);
    bool ok = expected ? strstr(runs, expected) != NULL : strcmp(runs, "") == 0;
    EXPECT(ok, "%s: modprobe %s%s; its log holds:\n%s", when, expected ? "ran " : "never ran",
           expected ? expected : "", runs);
    free(runs);
}

static void expectSuccess(const char *what, int rc)
{
    EXPECT(rc == 0, "%s succeeds; it failed (%s): %s", what,
           mgrErrorClassName(mgrGetLastErrorClass()), mgrGetLastErrorMessage());
}

static void expectFailure(const char *what, int rc, mgrErrorClass cls, const char *text)
{
    EXPECT(rc == -1, "%s fails; it succeeded", what);
    EXPECT(mgrGetLastErrorClass() == cls, "%s fails with class \"%s\"; the class is \"%s\" (%s)",
           what, mgrErrorClassName(cls), mgrErrorClassName(mgrGetLastErrorClass()),
           mgrGetLastErrorMessage());
    EXPECT(strstr(mgrGetLastErrorMessage(), text), "%s: the manager's error says \"%s\"; it says: %s",
           what, text, mgrGetLastErrorMessage());
}

static const mgrPCIHostdevConfig DEFAULTS = {0};

/* ------------------------------------------------------------------------------------------
 * 1. A NIC that started on its host driver
 * ------------------------------------------------------------------------------------------ */

static void test_host_driver(void)
{
    hostNew();
    hostNic(NIC);
    ptk_modprobe_table(root, "vfio_pci vfio-pci vfio"); /* not loaded: the manager loads it */
    managerStart(NULL);

    expectSuccess("detaching the NIC", mgrPCIDetach(mgr, NIC, &DEFAULTS));
    expectDevice("after the detach", NIC, "vfio-pci", "vfio-pci");
    expectModprobeRuns("the manager's loader", "[-b] [vfio_pci]\n");
    EXPECT(logHas("debug: loaded kernel module 'vfio_pci' with "),
           "the manager's own loader ran modprobe, not libpcibind; the log:\n%s", logText);
    expectRecord("after the detach", NIC, "driver=vfio-pci");
    expectRecord("after the detach", NIC, "start_driver=e1000e");
    expectRecord("after the detach", NIC, "start_override=");
    expectRecord("after the detach", NIC, "moved=1");

    expectSuccess("reattaching the NIC", mgrPCIReattach(mgr, NIC));
    expectDevice("after the reattach", NIC, "e1000e", "(null)");
    expectNoRecord("after the reattach", NIC);
    hostDestroy();
}

/* ------------------------------------------------------------------------------------------
 * 2. A device already on vfio-pci before the manager came: nothing moves either way
 * ------------------------------------------------------------------------------------------ */

static void test_vfio_pci_start(void)
{
    hostNew();
    ptk_loaded_driver(root, "e1000e", "e1000e");
    ptk_driver_ids(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_device(root, NIC, NIC_MODALIAS, "vfio-pci");
    deviceOverride(NIC, "vfio-pci\n");
    managerStart(NULL);

    mgrPCIHostdevConfig config = {.model = "vfio-pci", .requireVfio = true};
    expectSuccess("detaching the NIC already on vfio-pci", mgrPCIDetach(mgr, NIC, &config));
    expectNoWrites("detaching a device on vfio-pci");
    expectRecord("after the detach", NIC, "moved=0");
    expectRecord("after the detach", NIC, "start_driver=vfio-pci");
    expectRecord("after the detach", NIC, "start_override=vfio-pci");

    expectSuccess("reattaching it", mgrPCIReattach(mgr, NIC));
    expectNoWrites("reattaching a device the detach did not move");
    expectDevice("after the reattach", NIC, "vfio-pci", "vfio-pci");
    expectNoRecord("after the reattach", NIC);
    EXPECT(logHas("its detach moved nothing; leaving it on vfio-pci"),
           "the manager says why it left the device; its log:\n%s", logText);
    hostDestroy();
}

/* A device on no driver at the start: reattach hands it to whichever host driver takes it. */
static void test_unbound_start(void)
{
    hostNew();
    ptk_loaded_driver(root, "e1000e", "e1000e");
    ptk_driver_ids(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_device(root, NIC, NIC_MODALIAS, NULL);
    managerStart(NULL);

    expectSuccess("detaching the unbound NIC", mgrPCIDetach(mgr, NIC, &DEFAULTS));
    expectDevice("after the detach", NIC, "vfio-pci", "vfio-pci");
    expectRecord("after the detach", NIC, "start_driver=");
    expectRecord("after the detach", NIC, "moved=1");

    expectSuccess("reattaching it", mgrPCIReattach(mgr, NIC));
    expectDevice("after the reattach", NIC, "e1000e", "(null)");
    expectNoRecord("after the reattach", NIC);
    hostDestroy();
}

/* ------------------------------------------------------------------------------------------
 * 3. VFIO variants: a VF already on mlx5_vfio_pci, one on mlx5_core detached to the variant,
 *    and a variant that cannot be loaded with and without strict_variant
 * ------------------------------------------------------------------------------------------ */

static void test_variant_start(void)
{
    hostNew();
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_vfio_driver(root, "mlx5_vfio_pci", "mlx5_vfio_pci");
    ptk_device(root, VF, VF_MODALIAS, "mlx5_vfio_pci");
    deviceOverride(VF, "mlx5_vfio_pci\n");
    managerStart(NULL);

    /* model NULL: the variant modules.alias names for the device, and only that. */
    mgrPCIHostdevConfig config = {.strictVariant = true};
    expectSuccess("detaching the VF on its variant", mgrPCIDetach(mgr, VF, &config));
    expectNoWrites("detaching a VF already on its variant");
    expectDevice("after the detach", VF, "mlx5_vfio_pci", "mlx5_vfio_pci");
    expectRecord("after the detach", VF, "driver=mlx5_vfio_pci");
    expectRecord("after the detach", VF, "moved=0");

    expectSuccess("reattaching it", mgrPCIReattach(mgr, VF));
    expectNoWrites("reattaching a VF the detach did not move");
    expectDevice("after the reattach", VF, "mlx5_vfio_pci", "mlx5_vfio_pci");
    expectNoRecord("after the reattach", VF);
    hostDestroy();
}

static void test_variant_from_host_driver(void)
{
    hostNew();
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_loaded_driver(root, "mlx5_core", "mlx5_core");
    ptk_driver_ids(root, "mlx5_core", "pci:v000015B3d0000101Esv*sd*bc*sc*i*");
    ptk_modprobe_table(root, "mlx5_vfio_pci mlx5_vfio_pci vfio");
    ptk_device(root, VF, VF_MODALIAS, "mlx5_core");
    managerStart(NULL);

    mgrPCIHostdevConfig config = {.strictVariant = true};
    expectSuccess("detaching the VF to its variant", mgrPCIDetach(mgr, VF, &config));
    expectModprobeRuns("the manager's loader", "[-b] [mlx5_vfio_pci]\n");
    expectDevice("after the detach", VF, "mlx5_vfio_pci", "mlx5_vfio_pci");
    expectRecord("after the detach", VF, "start_driver=mlx5_core");
    expectRecord("after the detach", VF, "moved=1");

    expectSuccess("reattaching it", mgrPCIReattach(mgr, VF));
    expectDevice("after the reattach", VF, "mlx5_core", "(null)");
    expectNoRecord("after the reattach", VF);
    hostDestroy();
}

static void test_strict_variant(void)
{
    hostNew();
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_loaded_driver(root, "mlx5_core", "mlx5_core");
    ptk_driver_ids(root, "mlx5_core", "pci:v000015B3d0000101Esv*sd*bc*sc*i*");
    ptk_modprobe_table(root, "mlx5_vfio_pci !modprobe: ERROR: could not insert 'mlx5_vfio_pci': "
                             "Key was rejected by service");
    ptk_device(root, VF, VF_MODALIAS, "mlx5_core");
    managerStart(NULL);

    /* Migration needs the variant: without it, nothing moves. */
    mgrPCIHostdevConfig strict = {.strictVariant = true};
    expectFailure("detaching the VF, strictly to its variant", mgrPCIDetach(mgr, VF, &strict),
                  MGR_ERR_OPERATION_FAILED, "Key was rejected by service");
    EXPECT(strstr(pcibind_last_error_message(), "Key was rejected by service"),
           "libpcibind's message carries the loader's text; it says: %s",
           pcibind_last_error_message());
    expectDevice("after the refused detach", VF, "mlx5_core", "(null)");
    expectNoWrites("a detach whose variant could not be loaded");
    expectNoRecord("after the refused detach", VF);

    /* Without strict_variant the library falls back to vfio-pci, saying so. */
    expectSuccess("detaching the VF to the best VFIO driver there is",
                  mgrPCIDetach(mgr, VF, &DEFAULTS));
    expectDevice("after the detach", VF, "vfio-pci", "vfio-pci");
    expectRecord("after the detach", VF, "driver=vfio-pci");
    EXPECT(logHas("warning: libpcibind: "),
           "the fallback from the variant is logged as a warning; the log:\n%s", logText);

    expectSuccess("reattaching it", mgrPCIReattach(mgr, VF));
    expectDevice("after the reattach", VF, "mlx5_core", "(null)");
    hostDestroy();
}

/* ------------------------------------------------------------------------------------------
 * 4. The daemon restarts between detach and reattach: the record alone says where to go
 * ------------------------------------------------------------------------------------------ */

static void test_restart(void)
{
    hostNew();
    hostNic(NIC);
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    managerStart(NULL);
    expectSuccess("detaching the NIC", mgrPCIDetach(mgr, NIC, &DEFAULTS));
    expectDevice("after the detach", NIC, "vfio-pci", "vfio-pci");

    /* The daemon goes away (its context with it) and a new one starts on the same host. */
    managerStop();
    expectRecord("across the restart", NIC, "start_driver=e1000e");
    managerStart(NULL);

    expectSuccess("reattaching the NIC after the restart", mgrPCIReattach(mgr, NIC));
    expectDevice("after the reattach", NIC, "e1000e", "(null)");
    expectNoRecord("after the reattach", NIC);

    /* Once given back, a second reattach is refused: the device is no longer ours. */
    forgetWrites();
    expectFailure("reattaching it again", mgrPCIReattach(mgr, NIC), MGR_ERR_OPERATION_INVALID,
                  "was not detached by this manager");
    expectNoWrites("a refused reattach");
    hostDestroy();
}

/* ------------------------------------------------------------------------------------------
 * 5. The user allows the console GPU to go (single-GPU passthrough), not the host's uplink
 * ------------------------------------------------------------------------------------------ */

/* The console GPU on bochs-drm: the firmware's boot framebuffer lies in its BAR (proc/iomem),
 * so the host draws its console there. */
static void hostConsoleGpu(void)
{
    ptk_loaded_driver(root, "bochs", "bochs-drm");
    ptk_driver_ids(root, "bochs-drm", "pci:v00001234d00001111sv*sd*bc03sc00i*");
    ptk_device(root, GPU, GPU_MODALIAS, "bochs-drm");
    ptk_write(root, "devices/pci0000:00/" GPU "/class", "0x030000\n");
    ptk_write(root, "devices/pci0000:00/" GPU "/resource",
              "0x00000000fd000000 0x00000000fdffffff 0x0000000000042208\n"
              "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
              "0x00000000febf0000 0x00000000febf0fff 0x0000000000040200\n");
    ptk_write(root, "proc/iomem",
              "00000000-00000fff : Reserved\n"
              "c0000000-febfffff : PCI Bus 0000:00\n"
              "  fd000000-fdffffff : " GPU "\n"
              "    fd000000-fd2fffff : BOOTFB\n"
              "      fd000000-fd2fffff : simpledrm\n");
}

static void test_console_gpu_and_host_nic(void)
{
    hostNew();
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    hostConsoleGpu();
    /* The host's uplink: eth0 up, with the route to 10.0.2.0/24. */
    hostNic(NIC);
    ptk_mkdirs(root, "devices/pci0000:00/" NIC "/net/eth0");
    ptk_write(root, "devices/pci0000:00/" NIC "/net/eth0/flags", "0x1003\n");
    ptk_write(root, "proc/net/route",
              "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
              "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
    managerStart(NULL);

    /* What the manager would show before trying. */
    unsigned int kinds = 0;
    char *reason = NULL;
    expectSuccess("asking whether the host uses the GPU", mgrPCIHostUse(mgr, GPU, &kinds, &reason));
    EXPECT(kinds & PCIBIND_IN_USE_DISPLAY, "the GPU is in use as a display; kinds are 0x%x", kinds);
    EXPECT(reason && strstr(reason, "boot framebuffer"),
           "the reason names the boot framebuffer; it is: %s", reason ? reason : "(none)");
    free(reason);
    reason = NULL;
    expectSuccess("asking whether the host uses the NIC", mgrPCIHostUse(mgr, NIC, &kinds, &reason));
    EXPECT(kinds & PCIBIND_IN_USE_NETWORK, "the NIC is in use for the network; kinds are 0x%x", kinds);
    EXPECT(reason && strstr(reason, "eth0"), "the reason names eth0; it is: %s",
           reason ? reason : "(none)");
    free(reason);

    /* The default configuration refuses the console GPU... */
    expectFailure("detaching the console GPU by default", mgrPCIDetach(mgr, GPU, &DEFAULTS),
                  MGR_ERR_OPERATION_INVALID, "boot framebuffer");
    expectDevice("after the refused detach", GPU, "bochs-drm", "(null)");
    expectNoWrites("a refused detach of the GPU");

    /* ... which the user's allow_in_use lets go. */
    mgrPCIHostdevConfig allowInUse = {.allowInUse = true};
    expectSuccess("detaching the console GPU with allow_in_use", mgrPCIDetach(mgr, GPU, &allowInUse));
    expectDevice("after the detach", GPU, "vfio-pci", "vfio-pci");
    expectRecord("after the detach", GPU, "start_driver=bochs-drm");

    /* The uplink stays refused when the user waived the other checks but not this one. */
    forgetWrites();
    mgrPCIHostdevConfig otherChecks = {.allowUnclaimed = true, .allowSriov = true};
    expectFailure("detaching the host's uplink", mgrPCIDetach(mgr, NIC, &otherChecks),
                  MGR_ERR_OPERATION_INVALID, "eth0");
    expectDevice("after the refused detach", NIC, "e1000e", "(null)");
    expectNoWrites("a refused detach of the uplink");
    expectNoRecord("after the refused detach", NIC);
    hostDestroy();
}

/* When the guest is done, the console GPU goes back to its host driver: a device on vfio-pci
 * is used by no one on the host (only a VMM could hold it, and none does), so nothing is in
 * the way. */
static void test_console_gpu_given_back(void)
{
    hostNew();
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    hostConsoleGpu();
    managerStart(NULL);
    mgrPCIHostdevConfig allowInUse = {.allowInUse = true};
    expectSuccess("detaching the console GPU with allow_in_use", mgrPCIDetach(mgr, GPU, &allowInUse));
    expectDevice("after the detach", GPU, "vfio-pci", "vfio-pci");

    int rc = mgrPCIReattach(mgr, GPU);
    expectSuccess("giving the GPU back", rc);
    expectDevice("after the reattach", GPU, "bochs-drm", "(null)");
    expectNoRecord("after the reattach", GPU);
    hostDestroy();
}

/* ------------------------------------------------------------------------------------------
 * 6. The manager's module policy refuses a module: libpcibind fails with its words
 * ------------------------------------------------------------------------------------------ */

static void test_module_deny_list(void)
{
    hostNew();
    hostNic(NIC);
    ptk_modprobe_table(root, "vfio_pci vfio-pci vfio");
    /* Spelled as a driver: the policy compares module names as modprobe does. */
    static const char *const deny[] = {"nouveau", "vfio-pci", NULL};
    managerStart(deny);

    mgrPCIHostdevConfig config = {.model = "vfio-pci"};
    int rc = mgrPCIDetach(mgr, NIC, &config);
    EXPECT(strstr(pcibind_last_error_message(), "administratively prohibited"),
           "libpcibind's message carries the manager's text; it says: %s",
           pcibind_last_error_message());
    expectFailure("detaching with vfio_pci on the deny list", rc, MGR_ERR_OPERATION_FAILED,
                  "loading kernel module 'vfio_pci' is administratively prohibited");
    EXPECT(mgrPCIErrorClass(PCIBIND_ERR_MODULE_LOAD) == MGR_ERR_OPERATION_FAILED,
           "PCIBIND_ERR_MODULE_LOAD is an operation that failed");
    expectModprobeRuns("a denied module", NULL);
    expectDevice("after the refused detach", NIC, "e1000e", "(null)");
    expectNoWrites("a detach whose module was refused");
    expectNoRecord("after the refused detach", NIC);
    hostDestroy();
}

/* A modprobe that hangs: the manager's loader bounds it (libpcibind does not time a caller's
 * loader), kills it and what it started, and the detach fails with nothing moved. */
static bool processRunningNow(long pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *state = strrchr(stat, ')');
    return state && state[1] == ' ' && state[2] != 'Z' && state[2] != 'X';
}

/* A SIGKILL takes effect asynchronously, and only modprobe itself is reaped by the loader: its
 * helper may still be on its way out for a moment, longer on a loaded machine. */
static bool processRunning(long pid)
{
    for (int i = 0; i < 300; i++) {
        if (!processRunningNow(pid))
            return false;
        usleep(10 * 1000);
    }
    return true;
}

static void test_module_loader_timeout(void)
{
    hostNew();
    hostNic(NIC);
    ptk_modprobe_table(root, "vfio_pci sleep=30");
    modprobeTimeoutMs = 500;
    managerStart(NULL);
    modprobeTimeoutMs = 0;

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    mgrPCIHostdevConfig config = {.model = "vfio-pci"};
    int rc = mgrPCIDetach(mgr, NIC, &config);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (double)(end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
    expectFailure("detaching while modprobe hangs", rc, MGR_ERR_OPERATION_FAILED,
                  "did not finish within 500 ms and was killed: fake-modprobe: vfio_pci: hanging");
    EXPECT(seconds < 5, "the detach returns soon after the loader's limit; it took %.1f s", seconds);
    char *pids = ptk_read(root, "modprobe.pids");
    for (char *p = pids, *next = NULL; p && *p; p = next) {
        long pid = strtol(p, &next, 10);
        if (next == p)
            break;
        EXPECT(!processRunning(pid), "modprobe and its helper were killed; %ld still runs", pid);
    }
    free(pids);
    expectDevice("after the failed detach", NIC, "e1000e", "(null)");
    expectNoWrites("a detach whose module load timed out");
    expectNoRecord("after the failed detach", NIC);
    managerStop();

    /* A modprobe that loads the module, then exits leaving something it started holding its
     * output (an install command that starts a daemon): its exit status is the answer, at
     * once, not the end of its output. */
    ptk_write(root, "modprobe.table", "vfio_pci vfio-pci vfio\n");
    char *fake = getenv("FAKE_MODPROBE");
    char *script = NULL, *wrapper = ptk_path(root, "modprobe-and-a-daemon");
    if (asprintf(&script,
                 "#!/bin/sh\n"
                 "'%s' \"$@\" || exit\n"
                 "sleep 30 >&2 &\n"
                 "echo $! > '%s/daemon.pid'\n",
                 fake, root) < 0)
        exit(99);
    ptk_write(root, "modprobe-and-a-daemon", script);
    free(script);
    EXPECT(chmod(wrapper, 0755) == 0, "the test makes its modprobe executable: %s", strerror(errno));
    setenv("FAKE_MODPROBE", wrapper, 1);
    modprobeTimeoutMs = 5000;
    managerStart(NULL);
    modprobeTimeoutMs = 0;
    setenv("FAKE_MODPROBE", fake, 1);
    rc = mgrPCIDetach(mgr, NIC, &config);
    /* Success itself says the loader did not wait for the daemon: it would have hit its 5 s
     * limit and killed it all. */
    expectSuccess("detaching with a modprobe that leaves a daemon behind", rc);
    expectDevice("after the detach", NIC, "vfio-pci", "vfio-pci");
    char *daemon = ptk_read(root, "daemon.pid");
    if (daemon)
        kill((pid_t)atol(daemon), SIGKILL);
    free(daemon);
    free(wrapper);
    hostDestroy();
}

/* ------------------------------------------------------------------------------------------
 * The pieces on their own: the error table, the flags, the log bridge, the records, threads
 * ------------------------------------------------------------------------------------------ */

static void test_error_table(void)
{
    /* Every code the library has a text for has a row: a new code fails this test until the
     * table says how the manager reports it. */
    const char *unknown = pcibind_strerror(-1000);
    int codes = 0;
    for (int code = -1; code >= -100; code--) {
        if (strcmp(pcibind_strerror(code), unknown) == 0)
            continue;
        codes++;
        EXPECT(mgrPCIErrorClassKnown(code), "a row for libpcibind's code %d (%s)", code,
               pcibind_strerror(code));
    }
    EXPECT(codes >= 13, "libpcibind has at least 13 error codes; it has %d", codes);
    EXPECT(mgrPCIErrorClass(PCIBIND_OK) == MGR_ERR_OK, "success is no error");
    EXPECT(mgrPCIErrorClass(-1000) == MGR_ERR_INTERNAL_ERROR, "an unknown code is internal");

    static const struct {
        int code;
        mgrErrorClass cls;
    } expected[] = {
        {PCIBIND_ERR_INVALID_ARG, MGR_ERR_INVALID_ARG},
        {PCIBIND_ERR_INVALID_ADDRESS, MGR_ERR_INVALID_ARG},
        {PCIBIND_ERR_NO_DEVICE, MGR_ERR_NO_DEVICE},
        {PCIBIND_ERR_NO_DRIVER, MGR_ERR_CONFIG_UNSUPPORTED},
        {PCIBIND_ERR_MODULE_LOAD, MGR_ERR_OPERATION_FAILED},
        {PCIBIND_ERR_BIND, MGR_ERR_OPERATION_FAILED},
        {PCIBIND_ERR_RESTORE, MGR_ERR_OPERATION_FAILED},
        {PCIBIND_ERR_IN_USE, MGR_ERR_OPERATION_INVALID},
        {PCIBIND_ERR_IO, MGR_ERR_SYSTEM_ERROR},
        {PCIBIND_ERR_BUSY, MGR_ERR_OPERATION_TIMEOUT},
        {PCIBIND_ERR_INTERNAL, MGR_ERR_INTERNAL_ERROR},
        {PCIBIND_ERR_NOT_CLAIMED, MGR_ERR_CONFIG_UNSUPPORTED},
        {PCIBIND_ERR_UNSUPPORTED, MGR_ERR_OPERATION_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
        EXPECT(mgrPCIErrorClass(expected[i].code) == expected[i].cls,
               "%s is \"%s\"; it is \"%s\"", pcibind_strerror(expected[i].code),
               mgrErrorClassName(expected[i].cls),
               mgrErrorClassName(mgrPCIErrorClass(expected[i].code)));

    /* And as a call meets them. */
    hostNew();
    hostNic(NIC);
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    managerStart(NULL);
    expectFailure("detaching a device that does not exist",
                  mgrPCIDetach(mgr, "0000:09:00.0", &DEFAULTS), MGR_ERR_NO_DEVICE, "0000:09:00.0");
    mgrPCIHostdevConfig hostDriver = {.model = "e1000e", .requireVfio = true};
    expectFailure("detaching to a host driver where VFIO is required",
                  mgrPCIDetach(mgr, NIC, &hostDriver), MGR_ERR_CONFIG_UNSUPPORTED, "e1000e");
    mgrPCIHostdevConfig bogus = {.model = "../vfio-pci"};
    expectFailure("detaching to a malformed driver name", mgrPCIDetach(mgr, NIC, &bogus),
                  MGR_ERR_INVALID_ARG, "");
    expectFailure("a malformed address", mgrPCIDetach(mgr, "01:00", &DEFAULTS),
                  MGR_ERR_INVALID_ARG, "is not a PCI address");
    expectDevice("after every refusal", NIC, "e1000e", "(null)");
    expectNoWrites("refused detaches");
    hostDestroy();
}

static void test_check_flags(void)
{
    static const struct {
        mgrPCIHostdevConfig config;
        unsigned int flags;
        const char *what;
    } cases[] = {
        {{0}, 0, "nothing waived"},
        {{.allowInUse = true}, PCIBIND_BIND_ALLOW_IN_USE, "allow_in_use"},
        {{.allowUnclaimed = true}, PCIBIND_BIND_ALLOW_UNCLAIMED, "allow_unclaimed"},
        {{.allowSriov = true}, PCIBIND_BIND_ALLOW_SRIOV, "allow_sriov"},
        {{.requireVfio = true}, PCIBIND_BIND_REQUIRE_VFIO, "require_vfio"},
        {{.strictVariant = true}, PCIBIND_BIND_STRICT_VARIANT, "strict_variant"},
        {{.model = "vfio-pci", .allowInUse = true, .allowUnclaimed = true, .allowSriov = true},
         PCIBIND_BIND_ALLOW_IN_USE | PCIBIND_BIND_ALLOW_UNCLAIMED | PCIBIND_BIND_ALLOW_SRIOV,
         "every check waived, one by one"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned int flags = mgrPCIHostdevBindFlags(&cases[i].config);
        EXPECT(flags == cases[i].flags, "%s gives flags 0x%x; they are 0x%x", cases[i].what,
               cases[i].flags, flags);
        EXPECT(!(flags & (PCIBIND_BIND_FORCE | PCIBIND_BIND_DRY_RUN)),
               "%s: never FORCE or DRY_RUN; flags 0x%x", cases[i].what, flags);
    }
}

static void test_log_bridge(void)
{
    static const mgrLogPriority expected[8] = {
        MGR_LOG_ERROR, MGR_LOG_ERROR, MGR_LOG_ERROR, MGR_LOG_ERROR, /* EMERG .. ERR */
        MGR_LOG_WARN,                                               /* WARNING */
        MGR_LOG_INFO,  MGR_LOG_INFO,                                /* NOTICE, INFO */
        MGR_LOG_DEBUG,                                              /* DEBUG */
    };
    for (int priority = LOG_EMERG; priority <= LOG_DEBUG; priority++)
        EXPECT(mgrLogPriorityFromSyslog(priority) == expected[priority],
               "syslog priority %d is the manager's %s; it is %s", priority,
               mgrLogPriorityName(expected[priority]),
               mgrLogPriorityName(mgrLogPriorityFromSyslog(priority)));
    EXPECT(mgrLogSyslogThreshold(MGR_LOG_WARN) == LOG_WARNING, "warn reaches LOG_WARNING");
    EXPECT(mgrLogSyslogThreshold(MGR_LOG_DEBUG) == LOG_DEBUG, "debug reaches LOG_DEBUG");

    /* A host without module tables: the library warns and goes on with vfio-pci. At the
     * manager's level "warning" that warning arrives, and none of the library's debug lines. */
    hostNew();
    hostNic(NIC);
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    free(modulesPath);
    modulesPath = ptk_path(root, "no-modules-here");
    mgrLogSetLevel(MGR_LOG_WARN);
    managerStart(NULL);
    expectSuccess("detaching the NIC without module tables", mgrPCIDetach(mgr, NIC, &DEFAULTS));
    expectDevice("after the detach", NIC, "vfio-pci", "vfio-pci");
    EXPECT(logHas("warning: libpcibind: ") && logHas("modules.alias"),
           "the library's warning about modules.alias reaches the manager's log as a warning; "
           "the log:\n%s", logText);
    EXPECT(!logHas("debug: "), "no debug line at level warning; the log:\n%s", logText);

    /* At level debug the library's details come through too. */
    managerStop();
    logText[0] = '\0';
    mgrLogSetLevel(MGR_LOG_DEBUG);
    managerStart(NULL);
    expectSuccess("reattaching the NIC", mgrPCIReattach(mgr, NIC));
    EXPECT(logHas("debug: libpcibind: ") || logHas("info: libpcibind: "),
           "the library's details reach the manager's log at level debug; the log:\n%s", logText);
    hostDestroy();
}

static void test_records(void)
{
    hostNew();
    hostNic(NIC);
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    managerStart(NULL);

    /* Never detached: nothing to give back. */
    expectFailure("reattaching a device the manager never detached", mgrPCIReattach(mgr, NIC),
                  MGR_ERR_OPERATION_INVALID, "was not detached by this manager");

    /* A second detach keeps the first start: the device's true one. */
    expectSuccess("detaching the NIC (short address)", mgrPCIDetach(mgr, "01:00.0", &DEFAULTS));
    expectSuccess("detaching it again", mgrPCIDetach(mgr, NIC, &DEFAULTS));
    expectRecord("after the second detach", NIC, "start_driver=e1000e");
    expectRecord("after the second detach", NIC, "moved=1");

    /* Only the record itself is in the state directory: no temp file left behind. */
    char listing[512] = "";
    DIR *dir = opendir(statePath);
    for (struct dirent *entry; dir && (entry = readdir(dir));) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
            size_t len = strlen(listing);
            snprintf(listing + len, sizeof(listing) - len, "%s\n", entry->d_name);
        }
    }
    if (dir)
        closedir(dir);
    EXPECT(strcmp(listing, NIC ".state\n") == 0,
           "the state directory holds only %s.state; it holds:\n%s", NIC, listing);

    /* A record that is not ours stops the manager before it touches the device. */
    ptk_write(root, "state/" NIC ".state", "version=1\naddress=" NIC "\nmoved=maybe\n");
    forgetWrites();
    expectFailure("reattaching with a damaged record", mgrPCIReattach(mgr, NIC),
                  MGR_ERR_INTERNAL_ERROR, "is not one this manager wrote");
    expectNoWrites("a reattach refused for its record");
    expectDevice("after the refused reattach", NIC, "vfio-pci", "vfio-pci");

    /* A record that cannot be written (the state directory is gone): an unrecorded device
     * could never be given back, so the detach undoes its move. */
    char *record = ptk_path(root, "state/" NIC ".state");
    EXPECT(unlink(record) == 0 && rmdir(statePath) == 0, "the test removes %s: %s", statePath,
           strerror(errno));
    free(record);
    hostNic(NIC2);
    expectFailure("detaching when its record cannot be written", mgrPCIDetach(mgr, NIC2, &DEFAULTS),
                  MGR_ERR_SYSTEM_ERROR, "cannot create a temp file for the record");
    expectDevice("after the undone detach", NIC2, "e1000e", "(null)");
    hostDestroy();
}

/* Many threads, one context: two threads per NIC detach it at once, then one per NIC
 * reattaches it. Every record names the host driver as the start. */
#define THREAD_NICS 4

struct job {
    char bdf[16];
    int rc;
    mgrErrorClass cls;
    char message[256];
};

static void *detachJob(void *arg)
{
    struct job *job = arg;
    job->rc = mgrPCIDetach(mgr, job->bdf, &DEFAULTS);
    job->cls = mgrGetLastErrorClass();
    snprintf(job->message, sizeof(job->message), "%s", mgrGetLastErrorMessage());
    return NULL;
}

static void *reattachJob(void *arg)
{
    struct job *job = arg;
    job->rc = mgrPCIReattach(mgr, job->bdf);
    job->cls = mgrGetLastErrorClass();
    snprintf(job->message, sizeof(job->message), "%s", mgrGetLastErrorMessage());
    return NULL;
}

static void runJobs(struct job *jobs, size_t n, void *(*fn)(void *))
{
    pthread_t threads[2 * THREAD_NICS];
    for (size_t i = 0; i < n; i++)
        if (pthread_create(&threads[i], NULL, fn, &jobs[i]) != 0) {
            fprintf(stderr, "cannot start a thread\n");
            exit(99);
        }
    for (size_t i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
}

static void test_threads(void)
{
    hostNew();
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    struct job detach[2 * THREAD_NICS], reattach[THREAD_NICS];
    memset(detach, 0, sizeof(detach));
    memset(reattach, 0, sizeof(reattach));
    for (int i = 0; i < THREAD_NICS; i++) {
        snprintf(reattach[i].bdf, sizeof(reattach[i].bdf), "0000:%02x:00.0", i + 1);
        hostNic(reattach[i].bdf);
        memcpy(detach[2 * i].bdf, reattach[i].bdf, sizeof(reattach[i].bdf));
        memcpy(detach[2 * i + 1].bdf, reattach[i].bdf, sizeof(reattach[i].bdf));
    }
    managerStart(NULL);

    runJobs(detach, 2 * THREAD_NICS, detachJob);
    for (int i = 0; i < 2 * THREAD_NICS; i++)
        EXPECT(detach[i].rc == 0, "detaching %s from a thread succeeds; it failed (%s): %s",
               detach[i].bdf, mgrErrorClassName(detach[i].cls), detach[i].message);
    for (int i = 0; i < THREAD_NICS; i++) {
        expectDevice("after the detaches", reattach[i].bdf, "vfio-pci", "vfio-pci");
        expectRecord("after two detaches at once", reattach[i].bdf, "start_driver=e1000e");
        expectRecord("after two detaches at once", reattach[i].bdf, "moved=1");
    }

    runJobs(reattach, THREAD_NICS, reattachJob);
    for (int i = 0; i < THREAD_NICS; i++) {
        EXPECT(reattach[i].rc == 0, "reattaching %s from a thread succeeds; it failed (%s): %s",
               reattach[i].bdf, mgrErrorClassName(reattach[i].cls), reattach[i].message);
        expectDevice("after the reattaches", reattach[i].bdf, "e1000e", "(null)");
        expectNoRecord("after the reattaches", reattach[i].bdf);
    }
    hostDestroy();
}

/* ------------------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    void (*run)(void);
} scenarios[] = {
    {"host-driver", test_host_driver},
    {"vfio-pci-start", test_vfio_pci_start},
    {"unbound-start", test_unbound_start},
    {"variant-start", test_variant_start},
    {"variant-from-host-driver", test_variant_from_host_driver},
    {"strict-variant", test_strict_variant},
    {"restart", test_restart},
    {"console-gpu-and-host-nic", test_console_gpu_and_host_nic},
    {"console-gpu-given-back", test_console_gpu_given_back},
    {"module-deny-list", test_module_deny_list},
    {"module-loader-timeout", test_module_loader_timeout},
    {"error-table", test_error_table},
    {"check-flags", test_check_flags},
    {"log-bridge", test_log_bridge},
    {"records", test_records},
    {"threads", test_threads},
};

int main(int argc, char **argv)
{
    size_t count = sizeof(scenarios) / sizeof(scenarios[0]);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < count; i++)
            puts(scenarios[i].name);
        return 0;
    }
    int ran = 0;
    for (size_t i = 0; i < count; i++) {
        if (argc > 1 && strcmp(argv[1], scenarios[i].name) != 0)
            continue;
        scenario = scenarios[i].name;
        int before = failed, skippedBefore = skipped;
        failed = skipped = 0;
        scenarios[i].run();
        printf("%s %s\n", failed ? "FAIL" : skipped ? "skip" : "ok", scenario);
        skipped |= skippedBefore;
        if ((failed || getenv("MGR_TEST_VERBOSE")) && logText[0])
            fprintf(stderr, "[%s] the manager's log:\n%s", scenario, logText);
        failed |= before;
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "no scenario named %s (--list lists them)\n", argc > 1 ? argv[1] : "");
        return 99;
    }
    /* 77: meson's (and automake's) "skipped", for a single scenario that says why. */
    return failed ? 1 : skipped && ran == 1 ? 77 : 0;
}
