/* Two callers racing on the first load of one module (SPEC 3.1 step 3): /sys/module/MOD appears
 * when a load starts and the module's PCI driver a moment later, during its init. The fake
 * modprobe's slow mode does the same with a second between the two (pcibind-testkit.h). The second
 * caller arrives while the first load is in flight and must still end with the driver: never
 * PCIBIND_ERR_NO_DRIVER, never a silent fallback from the variant to vfio-pci. Threads of one
 * context and two processes; the kernel shim is preloaded for the binds. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "testctx.h"

static char *root;
static pcibind_ctx *ctx;

static const char *const VF1 = "0000:3b:00.2";
static const char *const VF2 = "0000:3b:00.3";
static const char *const MLX5_VF = "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00";


/* Two ConnectX VFs on mlx5_core, vfio-pci loaded, tables naming the mlx5_vfio_pci variant, and
 * a modprobe that loads that variant slowly. */
static void setup(void)
{
    root = ptk_new();
    warnings[0] = '\0';
    ptk_mkdirs(root, "lib-modules");
    ptk_write(root, "lib-modules/modules.alias",
              "alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core\n"
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n");
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_loaded_driver(root, "mlx5_core", "mlx5_core");
    ptk_driver_ids(root, "mlx5_core", "pci:v000015B3d0000101Esv*sd*bc*sc*i*");
    ptk_device(root, VF1, MLX5_VF, "mlx5_core");
    ptk_device(root, VF2, MLX5_VF, "mlx5_core");
    ptk_modprobe_table(root, "mlx5_vfio_pci mlx5_vfio_pci vfio slow");
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

/* Returns once the variant's load has started (its initstate reads "coming"). */
static void wait_for_load_in_flight(void)
{
    int coming = 0;
    for (int i = 0; i < 5000 && !coming; i++) {
        char *state = ptk_read(root, "module/mlx5_vfio_pci/initstate");
        coming = state && strcmp(state, "coming\n") == 0;
        free(state);
        if (!coming)
            usleep(1000);
    }
    CHECK(coming);
    /* Still in flight: the driver comes a second after the directory. */
    char *driver = ptk_path(root, "bus/pci/drivers/mlx5_vfio_pci");
    struct stat st;
    CHECK(stat(driver, &st) < 0);
    free(driver);
}

static int modprobe_runs(void)
{
    char *log = ptk_modprobe_log(root);
    int runs = 0;
    for (char *p = log; (p = strstr(p, "[-b] [mlx5_vfio_pci]")); p++)
        runs++;
    free(log);
    return runs;
}

static void expect_bound(const char *bdf, const char *driver)
{
    if (!ptk_is_bound_to(root, bdf, driver)) {
        printf("#   %s is not bound to %s\n", bdf, driver);
        harness_failed_now = 1;
    }
}

struct job {
    const char *bdf; /* NULL: resolve the variant's name instead of binding */
    int rc;
    char *driver;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    if (j->bdf)
        j->rc = pcibind_bind(ctx, j->bdf, NULL, 0, &j->driver);
    else
        j->rc = pcibind_resolve_driver(ctx, "mlx5_vfio_pci", 0, &j->driver);
    return NULL;
}

/* Runs the two jobs on two threads, the second once the first's load is in flight. */
static void race_two_threads(struct job *first, struct job *second)
{
    pthread_t threads[2];
    pthread_create(&threads[0], NULL, run_job, first);
    wait_for_load_in_flight();
    pthread_create(&threads[1], NULL, run_job, second);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
}

static void two_threads_resolve_a_module_whose_first_load_is_in_flight(void)
{
    setup();
    struct job jobs[2] = {{NULL, -100, NULL}, {NULL, -100, NULL}};
    race_two_threads(&jobs[0], &jobs[1]);
    for (int i = 0; i < 2; i++) {
        CHECK_RC(jobs[i].rc, PCIBIND_OK);
        CHECK_STR(jobs[i].driver, "mlx5_vfio_pci");
        pcibind_string_free(jobs[i].driver);
    }
    /* The second ran modprobe too, which waited for the load in flight. */
    CHECK(modprobe_runs() == 2);
    CHECK_STR(warnings, "");
    teardown();
}

static void two_threads_bind_two_vfs_to_their_variant_while_it_loads(void)
{
    setup();
    struct job jobs[2] = {{VF1, -100, NULL}, {VF2, -100, NULL}};
    race_two_threads(&jobs[0], &jobs[1]);
    for (int i = 0; i < 2; i++) {
        CHECK_RC(jobs[i].rc, PCIBIND_OK);
        CHECK_STR(jobs[i].driver, "mlx5_vfio_pci");
        pcibind_string_free(jobs[i].driver);
    }
    expect_bound(VF1, "mlx5_vfio_pci");
    expect_bound(VF2, "mlx5_vfio_pci");
    CHECK(modprobe_runs() == 2);
    /* No "falling back to vfio-pci". */
    CHECK_STR(warnings, "");
    teardown();
}

/* A child process binding `bdf` with no name: exits 0 when it ended on the variant. */
static pid_t bind_in_child(const char *bdf)
{
    pid_t pid = fork();
    if (pid == 0) {
        char *driver = NULL;
        int rc = pcibind_bind(ctx, bdf, NULL, 0, &driver);
        if (rc != PCIBIND_OK || !driver || strcmp(driver, "mlx5_vfio_pci") != 0) {
            printf("#   child for %s: %d, %s (%s)\n", bdf, rc, driver ? driver : "(NULL)",
                   pcibind_last_error_message());
            _exit(1);
        }
        _exit(strstr(warnings, "falling back") ? 1 : 0);
    }
    return pid;
}

static void two_processes_bind_two_vfs_to_their_variant_while_it_loads(void)
{
    setup();
    pid_t pids[2];
    pids[0] = bind_in_child(VF1);
    wait_for_load_in_flight();
    pids[1] = bind_in_child(VF2);
    for (int i = 0; i < 2; i++) {
        int status = -1;
        waitpid(pids[i], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    expect_bound(VF1, "mlx5_vfio_pci");
    expect_bound(VF2, "mlx5_vfio_pci");
    CHECK(modprobe_runs() == 2);
    teardown();
}

static void without_modprobe_a_load_in_flight_is_waited_for(void)
{
    setup();
    /* Another process loads the variant; this context may not load modules itself. */
    pid_t loader = fork();
    if (loader == 0) {
        execl(getenv("FAKE_MODPROBE"), getenv("FAKE_MODPROBE"), "-b", "mlx5_vfio_pci", (char *)NULL);
        _exit(127);
    }
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, NULL), PCIBIND_OK);
    wait_for_load_in_flight();
    char *driver = NULL;
    CHECK_RC(pcibind_bind(ctx, VF1, NULL, 0, &driver), PCIBIND_OK);
    CHECK_STR(driver, "mlx5_vfio_pci");
    pcibind_string_free(driver);
    expect_bound(VF1, "mlx5_vfio_pci");
    int status = -1;
    waitpid(loader, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(modprobe_runs() == 1);
    CHECK_STR(warnings, "");
    teardown();
}

RUN_TESTS(TEST_CASE(two_threads_resolve_a_module_whose_first_load_is_in_flight),
          TEST_CASE(two_threads_bind_two_vfs_to_their_variant_while_it_loads),
          TEST_CASE(two_processes_bind_two_vfs_to_their_variant_while_it_loads),
          TEST_CASE(without_modprobe_a_load_in_flight_is_waited_for))
