/* IOMMU-group transactions (SPEC 3.8) through the C API, with the kernel shim preloaded: a
 * GPU and its HDMI audio function behind a PCIe root port, in one IOMMU group (or, linked by a
 * consumer:pci: device link, in two), moved to vfio-pci and back as one transaction. */
#define _GNU_SOURCE
#include <stdint.h>
#include <syslog.h>
#include <unistd.h>

#include "testctx.h"

#define PORT "0000:00:1c.0"
#define GPU "0000:01:00.0"
#define AUDIO "0000:01:00.1"
#define LPC "0000:00:1f.0"

static const char *const PORT_ID = "pci:v00008086d0000A110sv00008086sd00007270bc06sc04i00";
static const char *const GPU_ID = "pci:v000010DEd00002204sv00001462sd00003880bc03sc00i00";
static const char *const AUDIO_ID = "pci:v000010DEd00001AEFsv00001462sd00003880bc04sc03i00";
static const char *const LPC_ID = "pci:v00008086d0000A143sv00008086sd00007270bc06sc01i00";

static char *root;
static pcibind_ctx *ctx;

/* The port, the GPU on nouveau and its audio function on snd_hda_intel; the audio function in
 * `audio_group` (1: the GPU's group). Alias tables: vfio-pci's catch-all and the host drivers'. */
static void setup(int audio_group)
{
    root = ptk_new();
    warnings[0] = '\0';
    ptk_mkdirs(root, "lib-modules");
    ptk_write(root, "lib-modules/modules.alias",
              "alias pci:v000010DEd*sv*sd*bc03sc*i* nouveau\n"
              "alias pci:v*d*sv*sd*bc04sc03i* snd_hda_intel\n"
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n");
    ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    ptk_builtin_driver(root, "pcieport", "pcieportdrv");
    ptk_loaded_driver(root, "nouveau", "nouveau");
    ptk_driver_ids(root, "nouveau", "pci:v000010DEd*sv*sd*bc03sc*i*");
    ptk_loaded_driver(root, "snd_hda_intel", "snd_hda_intel");
    ptk_driver_ids(root, "snd_hda_intel", "pci:v*d*sv*sd*bc04sc03i*");
    ptk_device(root, PORT, PORT_ID, "pcieport");
    ptk_device(root, GPU, GPU_ID, "nouveau");
    ptk_device(root, AUDIO, AUDIO_ID, "snd_hda_intel");
    ptk_iommu_group(root, 1, PORT);
    ptk_iommu_group(root, 1, GPU);
    ptk_iommu_group(root, audio_group, AUDIO);
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

static void expect_strv(char **v, const char *a, const char *b)
{
    CHECK(v != NULL);
    if (!v)
        return;
    CHECK_STR(v[0], a);
    if (v[0])
        CHECK_STR(v[1], b);
    if (v[0] && v[1])
        CHECK(v[2] == NULL);
}

static void expect_override(const char *bdf, const char *expected)
{
    char *o = ptk_override(root, bdf);
    CHECK_STR(o, expected);
    free(o);
}

static void expect_at_home(void)
{
    CHECK(ptk_is_bound_to(root, PORT, "pcieport"));
    CHECK(ptk_is_bound_to(root, GPU, "nouveau"));
    CHECK(ptk_is_bound_to(root, AUDIO, "snd_hda_intel"));
    expect_override(GPU, "(null)");
    expect_override(AUDIO, "(null)");
}

static int viable(void)
{
    int v = -1;
    CHECK_RC(pcibind_iommu_group_viable(ctx, GPU, 0, &v, NULL), PCIBIND_OK);
    return v;
}

static void group_moves_to_vfio_and_back(void)
{
    setup(1);
    CHECK(viable() == 0);
    char **moved = NULL;
    CHECK_RC(pcibind_bind_group(ctx, AUDIO, 0, &moved), PCIBIND_OK);
    expect_strv(moved, GPU, AUDIO);
    pcibind_strv_free(moved);
    CHECK(ptk_is_bound_to(root, GPU, "vfio-pci"));
    CHECK(ptk_is_bound_to(root, AUDIO, "vfio-pci"));
    CHECK(ptk_is_bound_to(root, PORT, "pcieport")); /* bridges never move */
    CHECK(viable() == 1);

    /* Again: nothing to move. */
    CHECK_RC(pcibind_bind_group(ctx, GPU, 0, &moved), PCIBIND_OK);
    CHECK(moved != NULL && moved[0] == NULL);
    pcibind_strv_free(moved);

    CHECK_RC(pcibind_reattach_group(ctx, GPU, 0, &moved), PCIBIND_OK);
    expect_strv(moved, GPU, AUDIO);
    pcibind_strv_free(moved);
    expect_at_home();
    teardown();
}

static void a_failing_member_restores_all_in_reverse(void)
{
    setup(1);
    ptk_fault(root, "probe:vfio-pci@" AUDIO " ENODEV");
    char **moved = (char **)(uintptr_t)0x1;
    CHECK_RC(pcibind_bind_group(ctx, GPU, 0, &moved), PCIBIND_ERR_BIND);
    CHECK(moved == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), GPU " the device was restored");
    CHECK_CONTAINS(pcibind_last_error_message(), AUDIO " the device was restored");
    expect_at_home();
    /* The audio function (failed last) was restored before the GPU (moved first). */
    char *log = ptk_write_log(root);
    char *audio_back = strstr(log, AUDIO "/driver_override\tsnd_hda_intel");
    char *gpu_back = strstr(log, GPU "/driver_override\tnouveau");
    CHECK(audio_back && gpu_back && audio_back < gpu_back);
    free(log);
    teardown();
}

static void a_member_in_use_refuses_the_unit_with_nothing_written(void)
{
    setup(1);
    ptk_mkdirs(root, "devices/pci0000:00/" GPU "/graphics/fb0");
    CHECK_RC(pcibind_bind_group(ctx, AUDIO, 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), GPU);
    CHECK_CONTAINS(pcibind_last_error_message(), "fb0");
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
    /* Forced, the unit moves. */
    CHECK_RC(pcibind_bind_group(ctx, AUDIO, PCIBIND_BIND_FORCE, NULL), PCIBIND_OK);
    CHECK(ptk_is_bound_to(root, GPU, "vfio-pci"));
    teardown();
}

static void a_host_bridge_refuses_the_unit_even_forced(void)
{
    setup(1);
    ptk_loaded_driver(root, "lpc_ich", "lpc_ich");
    ptk_device(root, LPC, LPC_ID, "lpc_ich");
    ptk_iommu_group(root, 1, LPC);
    CHECK_RC(pcibind_bind_group(ctx, GPU, 0, NULL), PCIBIND_ERR_IN_USE);
    CHECK_CONTAINS(pcibind_last_error_message(), LPC);
    CHECK_CONTAINS(pcibind_last_error_message(), "lpc_ich");
    CHECK_RC(pcibind_bind_group(ctx, GPU, PCIBIND_BIND_FORCE, NULL), PCIBIND_ERR_IN_USE);
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
    teardown();
}

static void companions_are_found_through_device_links(void)
{
    setup(2); /* the audio function in a group of its own */
    ptk_symlink(root, "devices/pci0000:00/" GPU "/consumer:pci:" AUDIO,
                "../../virtual/devlink/pci:" GPU "--pci:" AUDIO);
    char **moved = NULL;
    CHECK_RC(pcibind_bind_group(ctx, GPU, 0, &moved), PCIBIND_OK);
    expect_strv(moved, GPU, AUDIO);
    pcibind_strv_free(moved);
    CHECK(ptk_is_bound_to(root, AUDIO, "vfio-pci"));
    /* Consumer direction only: from the audio function, only its own group moves. */
    CHECK_RC(pcibind_reattach_group(ctx, AUDIO, 0, &moved), PCIBIND_OK);
    CHECK(moved && moved[0] && !strcmp(moved[0], AUDIO) && !moved[1]);
    pcibind_strv_free(moved);
    CHECK(ptk_is_bound_to(root, GPU, "vfio-pci"));
    teardown();
}

static char plan[16384];
static void capture_plan(void *userdata, int priority, const char *message)
{
    (void)userdata;
    if (priority == LOG_NOTICE) {
        size_t len = strlen(plan);
        snprintf(plan + len, sizeof(plan) - len, "%s\n", message);
    }
}

static void dry_run_plans_every_member_and_writes_nothing(void)
{
    setup(1);
    plan[0] = '\0';
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, capture_plan, NULL, LOG_NOTICE), PCIBIND_OK);
    char **moved = NULL;
    CHECK_RC(pcibind_bind_group(ctx, GPU, PCIBIND_BIND_DRY_RUN, &moved), PCIBIND_OK);
    expect_strv(moved, GPU, AUDIO);
    pcibind_strv_free(moved);
    CHECK_CONTAINS(plan, "nouveau/unbind");
    CHECK_CONTAINS(plan, "snd_hda_intel/unbind");
    CHECK_CONTAINS(plan, "restored in reverse order");
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
    expect_at_home();
    teardown();
}

/* The plans as strings (0.3): the same lines the dry run logs, the refusals of the real call,
 * nothing written, and the reattach plan of a group on vfio-pci. */
static void group_plans_are_returned_as_strings(void)
{
    setup(1);
    char *p = (char *)1;
    CHECK_RC(pcibind_bind_group_plan(ctx, GPU, 0, &p), PCIBIND_OK);
    CHECK(p != NULL);
    if (p) {
        CHECK_CONTAINS(p, "nouveau/unbind");
        CHECK_CONTAINS(p, "snd_hda_intel/unbind");
        CHECK_CONTAINS(p, "restored in reverse order");
        CHECK(p[strlen(p) - 1] != '\n');
    }
    pcibind_string_free(p);
    /* The dry run logs exactly these lines. */
    plan[0] = '\0';
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, capture_plan, NULL, LOG_NOTICE), PCIBIND_OK);
    CHECK_RC(pcibind_bind_group_plan(ctx, GPU, PCIBIND_BIND_DRY_RUN, &p), PCIBIND_OK);
    CHECK_RC(pcibind_bind_group(ctx, GPU, PCIBIND_BIND_DRY_RUN, NULL), PCIBIND_OK);
    if (p) {
        char logged[16384];
        int n = 0;
        for (const char *line = plan; *line;) {
            const char *end = strchr(line, '\n');
            CHECK(strncmp(line, "dry run: ", 9) == 0);
            n += snprintf(logged + n, sizeof(logged) - n, "%s%.*s", n ? "\n" : "",
                          (int)(end - line - 9), line + 9);
            line = end + 1;
        }
        CHECK_STR(logged, p);
    }
    pcibind_string_free(p);
    char *log = ptk_write_log(root);
    CHECK_STR(log, "");
    free(log);
    /* Refused as the real call would be, with *plan_out NULL. */
    ptk_mkdirs(root, "devices/pci0000:00/" GPU "/graphics/fb0");
    p = (char *)1;
    CHECK_RC(pcibind_bind_group_plan(ctx, AUDIO, 0, &p), PCIBIND_ERR_IN_USE);
    CHECK(p == NULL);
    CHECK_RC(pcibind_bind_group_plan(ctx, GPU, 256, &p), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_bind_group_plan(ctx, GPU, 0, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_reattach_group_plan(ctx, "x", 0, &p), PCIBIND_ERR_INVALID_ADDRESS);
    char *fb = ptk_path(root, "devices/pci0000:00/" GPU "/graphics/fb0");
    CHECK(rmdir(fb) == 0);
    free(fb);
    /* On vfio-pci, the reattach plan gives both back to the host. */
    CHECK_RC(pcibind_bind_group(ctx, GPU, 0, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_reattach_group_plan(ctx, GPU, 0, &p), PCIBIND_OK);
    if (p) {
        CHECK_CONTAINS(p, GPU);
        CHECK_CONTAINS(p, AUDIO);
        CHECK_CONTAINS(p, "vfio-pci/unbind");
    }
    pcibind_string_free(p);
    CHECK(ptk_is_bound_to(root, GPU, "vfio-pci"));
    CHECK(ptk_is_bound_to(root, AUDIO, "vfio-pci"));
    teardown();
}

static void plain_bind_of_one_member_warns_about_the_others(void)
{
    setup(1);
    CHECK_RC(pcibind_bind(ctx, GPU, "vfio-pci", 0, NULL), PCIBIND_OK);
    CHECK_CONTAINS(warnings, "cannot be assigned yet");
    CHECK_CONTAINS(warnings, AUDIO " (bound to snd_hda_intel)");
    teardown();
}

static void no_iommu_group_is_unsupported(void)
{
    setup(1);
    ptk_device(root, "0000:05:00.0", GPU_ID, "nouveau");
    CHECK_RC(pcibind_bind_group(ctx, "0000:05:00.0", 0, NULL), PCIBIND_ERR_UNSUPPORTED);
    CHECK_RC(pcibind_reattach_group(ctx, "0000:05:00.0", 0, NULL), PCIBIND_ERR_UNSUPPORTED);
    CHECK_RC(pcibind_bind_group(ctx, GPU, 256, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_bind_group(ctx, "x", 0, NULL), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_RC(pcibind_bind_group(NULL, GPU, 0, NULL), PCIBIND_ERR_INVALID_ARG);
    teardown();
}

RUN_TESTS(TEST_CASE(group_moves_to_vfio_and_back), TEST_CASE(a_failing_member_restores_all_in_reverse),
          TEST_CASE(a_member_in_use_refuses_the_unit_with_nothing_written),
          TEST_CASE(a_host_bridge_refuses_the_unit_even_forced),
          TEST_CASE(companions_are_found_through_device_links),
          TEST_CASE(dry_run_plans_every_member_and_writes_nothing),
          TEST_CASE(group_plans_are_returned_as_strings),
          TEST_CASE(plain_bind_of_one_member_warns_about_the_others),
          TEST_CASE(no_iommu_group_is_unsupported))
