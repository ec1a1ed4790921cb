/* VFIO variant auto-detection (SPEC 3.2) through pcibind_find_vfio_variant: every device row
 * of two real kernels' tables, synthetic tables for the ranking rules and glob forms, built-in
 * variants, missing and unreadable tables, cache reload, and the device-side errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <syslog.h>
#include <unistd.h>

#include <pcibind-testkit.h>
#include "harness.h"

static char *root;
static char *modules_dir;
static pcibind_ctx *ctx;

struct log_capture {
    int warnings;
    char text[8192];
};
static struct log_capture cap;

static void capture_log(void *userdata, int priority, const char *message)
{
    struct log_capture *c = userdata;
    if (priority <= LOG_WARNING)
        c->warnings++;
    size_t len = strlen(c->text);
    snprintf(c->text + len, sizeof(c->text) - len, "<%d>%s\n", priority, message);
}

static void setup(void)
{
    root = ptk_new();
    ptk_mkdirs(root, "lib-modules");
    modules_dir = ptk_path(root, "lib-modules");
    memset(&cap, 0, sizeof(cap));
    CHECK_RC(pcibind_ctx_new(root, 0, &ctx), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modules_dir(ctx, modules_dir), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, capture_log, &cap, LOG_DEBUG), PCIBIND_OK);
}

static void teardown(void)
{
    pcibind_ctx_free(ctx);
    ctx = NULL;
    free(modules_dir);
    ptk_destroy(root);
    root = NULL;
}

static void expect_variant(const char *address, const char *expected)
{
    char *module = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_find_vfio_variant(ctx, address, &module), PCIBIND_OK);
    CHECK_STR(module, expected);
    pcibind_string_free(module);
}

static const char *const MLX5_VF = "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00";
static const char *const CATCH_ALL = "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n";

/* Runs every row of tests/data/KERNEL/devices.tsv through the C API with that kernel's tables. */
static void check_kernel_rows(const char *kernel)
{
    setup();
    char *dir = NULL;
    CHECK(asprintf(&dir, "%s/%s", getenv("PCIBIND_TEST_DATA"), kernel) > 0);
    CHECK_RC(pcibind_ctx_set_modules_dir(ctx, dir), PCIBIND_OK);
    char *tsv_path = NULL;
    CHECK(asprintf(&tsv_path, "%s/devices.tsv", dir) > 0);
    FILE *tsv = fopen(tsv_path, "r");
    CHECK(tsv != NULL);
    char line[1024];
    int rows = 0;
    while (tsv && fgets(line, sizeof(line), tsv)) {
        if (rows++ == 0)
            continue; /* header */
        line[strcspn(line, "\n")] = '\0';
        char *label = strtok(line, "\t");
        char *modalias = strtok(NULL, "\t");
        char *vfio_matches = strtok(NULL, "\t");
        /* Expected: the match other than vfio_pci, else vfio_pci. */
        const char *expected = "vfio_pci";
        for (char *m = strtok(vfio_matches, ","); m; m = strtok(NULL, ","))
            if (strcmp(m, "vfio_pci") != 0)
                expected = m;
        char bdf[32];
        snprintf(bdf, sizeof(bdf), "0000:%02x:00.0", rows & 0xff);
        ptk_device(root, bdf, modalias, NULL);
        char *module = NULL;
        int rc = pcibind_find_vfio_variant(ctx, bdf, &module);
        if (rc != PCIBIND_OK || !module || strcmp(module, expected) != 0) {
            printf("#   %s %s: got %s (%d), expected %s\n", kernel, label, module ? module : "(NULL)",
                   rc, expected);
            harness_failed_now = 1;
        }
        free(module);
    }
    printf("#   %s: %d device rows checked\n", kernel, rows - 1);
    CHECK(rows > 20);
    if (tsv)
        fclose(tsv);
    free(tsv_path);
    free(dir);
    CHECK(cap.warnings == 0);
    teardown();
}

static void every_device_row_of_ubuntu_6_8(void)
{
    check_kernel_rows("kernel-6.8.0-151-generic");
}

static void every_device_row_of_debian_6_12(void)
{
    check_kernel_rows("kernel-6.12.117+deb12-amd64");
}

static void subsystem_specific_alias_beats_generic(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias",
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* generic_vfio\n"
              "alias vfio_pci:v000015B3d0000101Esv000015B3sd00000048bc*sc*i* subsys_vfio\n");
    ptk_device(root, "0000:01:00.0", MLX5_VF, NULL);
    ptk_device(root, "0000:01:00.1", "pci:v000015B3d0000101Esv000015B3sd00000026bc02sc00i00", NULL);
    expect_variant("0000:01:00.0", "subsys_vfio");
    expect_variant("0000:01:00.1", "generic_vfio");
    teardown();
}

static void class_specific_alias_beats_generic_in_any_file_order(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias",
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc02sc07i* ib_vfio\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* generic_vfio\n"
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n");
    ptk_device(root, "0000:01:00.0", "pci:v000015B3d0000101Esv000015B3sd00000026bc02sc07i00", NULL);
    ptk_device(root, "0000:01:00.1", MLX5_VF, NULL);
    expect_variant("0000:01:00.0", "ib_vfio");
    expect_variant("0000:01:00.1", "generic_vfio");
    teardown();
}

static void question_mark_and_bracket_globs(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias",
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
              "alias vfio_pci:v00008086d0000E2[0-9A-F]Bsv*sd*bc*sc*i* xe_vfio_pci\n"
              "alias vfio_pci:v00008086d0000B08?sv*sd*bc*sc*i* ptl_vfio\n"
              "alias vfio_pci:v00008086d0000154[!C]sv*sd*bc*sc*i* not_x710\n");
    ptk_device(root, "0000:03:00.0", "pci:v00008086d0000E20Bsv00008086sd00001100bc03sc00i00", NULL);
    ptk_device(root, "0000:03:00.1", "pci:v00008086d0000E2GBsv00008086sd00001100bc03sc00i00", NULL);
    ptk_device(root, "0000:04:00.0", "pci:v00008086d0000B080sv00008086sd00002212bc03sc00i00", NULL);
    ptk_device(root, "0000:05:00.0", "pci:v00008086d0000154Csv00008086sd00000000bc02sc00i00", NULL);
    ptk_device(root, "0000:05:00.1", "pci:v00008086d0000154Dsv00008086sd00000000bc02sc00i00", NULL);
    expect_variant("0000:03:00.0", "xe_vfio_pci");
    expect_variant("0000:04:00.0", "ptl_vfio");
    expect_variant("0000:05:00.0", "vfio_pci");
    expect_variant("0000:05:00.1", "not_x710");
    teardown();
}

static void a_tie_is_logged_and_file_order_decides(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias",
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* first_vfio\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* second_vfio\n");
    ptk_device(root, "0000:01:00.0", MLX5_VF, NULL);
    expect_variant("0000:01:00.0", "first_vfio");
    CHECK(cap.warnings == 1);
    CHECK_CONTAINS(cap.text, "tie for 0000:01:00.0");
    CHECK_CONTAINS(cap.text, "second_vfio");
    teardown();
}

static void lower_case_modalias_matches_only_the_catch_all(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias",
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n");
    ptk_device(root, "0000:01:00.0", "pci:v000015b3d0000101esv000015b3sd00000048bc02sc00i00", NULL);
    expect_variant("0000:01:00.0", "vfio_pci");
    teardown();
}

static void builtin_variant_listed_only_in_builtin_modinfo(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias", CATCH_ALL);
    static const char modinfo[] = "vfio_pci.description=VFIO PCI\0"
                                  "xe_vfio_pci.license=GPL\0"
                                  "xe_vfio_pci.alias=vfio_pci:v00008086d0000E20Bsv*sd*bc*sc*i*\0"
                                  "xe_vfio_pci.alias=vfio_pci:v00008086d0000E211sv*sd*bc*sc*i*\0";
    char *path = ptk_path(root, "lib-modules/modules.builtin.modinfo");
    FILE *f = fopen(path, "w");
    CHECK(f && fwrite(modinfo, 1, sizeof(modinfo), f) == sizeof(modinfo));
    if (f)
        fclose(f);
    free(path);
    ptk_device(root, "0000:03:00.0", "pci:v00008086d0000E211sv00008086sd00001100bc03sc00i00", NULL);
    expect_variant("0000:03:00.0", "xe_vfio_pci");
    teardown();
}

static void missing_modules_alias_gives_vfio_pci_with_a_warning(void)
{
    setup();
    ptk_device(root, "0000:01:00.0", MLX5_VF, NULL);
    expect_variant("0000:01:00.0", "vfio_pci");
    CHECK(cap.warnings == 1);
    CHECK_CONTAINS(cap.text, "modules.alias");
    CHECK_CONTAINS(cap.text, "using vfio_pci for 0000:01:00.0");
    teardown();
}

static void unreadable_modules_alias_gives_vfio_pci_with_a_warning(void)
{
    setup();
    ptk_mkdirs(root, "lib-modules/modules.alias"); /* a directory: read() fails with EISDIR */
    ptk_device(root, "0000:01:00.0", MLX5_VF, NULL);
    expect_variant("0000:01:00.0", "vfio_pci");
    CHECK(cap.warnings == 1);
    CHECK_CONTAINS(cap.text, "cannot read");
    teardown();
}

static void changed_table_is_reloaded(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias", CATCH_ALL);
    ptk_device(root, "0000:01:00.0", MLX5_VF, NULL);
    expect_variant("0000:01:00.0", "vfio_pci");
    expect_variant("0000:01:00.0", "vfio_pci");
    CHECK(strstr(cap.text, "loaded 1 vfio_pci aliases") != NULL);
    /* Loaded once for both lookups. */
    char *second = strstr(cap.text, "loaded ");
    CHECK(second && !strstr(second + 1, "loaded "));

    /* Rewritten in place (same inode, new size). */
    ptk_write(root, "lib-modules/modules.alias",
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n");
    expect_variant("0000:01:00.0", "mlx5_vfio_pci");

    /* Replaced by rename with a same-size file (new inode). */
    ptk_write(root, "lib-modules/modules.alias.new",
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pcX\n");
    char *from = ptk_path(root, "lib-modules/modules.alias.new");
    char *to = ptk_path(root, "lib-modules/modules.alias");
    CHECK(rename(from, to) == 0);
    free(from);
    free(to);
    expect_variant("0000:01:00.0", "mlx5_vfio_pcX");

    /* Removed: back to the fallback, with a warning. */
    char *alias = ptk_path(root, "lib-modules/modules.alias");
    unlink(alias);
    free(alias);
    int before = cap.warnings;
    expect_variant("0000:01:00.0", "vfio_pci");
    CHECK(cap.warnings == before + 1);
    teardown();
}

static void malformed_lines_are_skipped(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias",
              "# comment vfio_pci:v*\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* ../../evil\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* too many\n"
              "nonsense vfio_pci:v* x\n"
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
              "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci"); /* no final \n */
    ptk_device(root, "0000:01:00.0", MLX5_VF, NULL);
    expect_variant("0000:01:00.0", "mlx5_vfio_pci");
    CHECK_CONTAINS(cap.text, "<7>modules.alias: skipping malformed line");
    CHECK(cap.warnings == 0);
    teardown();
}

static void device_side_errors(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias", CATCH_ALL);
    ptk_device(root, "0000:01:00.0", MLX5_VF, NULL);
    ptk_device(root, "0000:02:00.0", MLX5_VF, NULL);
    ptk_device(root, "0000:03:00.0", "pci:v000015B3d0000101E\n", NULL);
    ptk_device(root, "0000:04:00.0", "usb:v1D6Bp0002d0606dc09dsc00dp01ic09isc00ip00in00", NULL);
    char *modalias = ptk_path(root, "devices/pci0000:00/0000:02:00.0/modalias");
    unlink(modalias);
    free(modalias);

    char *module = (char *)(uintptr_t)0x1;
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:09:00.0", &module), PCIBIND_ERR_NO_DEVICE);
    CHECK(module == NULL);
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:02:00.0", &module), PCIBIND_ERR_IO);
    CHECK(pcibind_last_error_errno() == ENOENT);
    CHECK_CONTAINS(pcibind_last_error_message(), "0000:02:00.0/modalias");
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:03:00.0", &module), PCIBIND_ERR_IO);
    CHECK(pcibind_last_error_errno() == EINVAL);
    CHECK_CONTAINS(pcibind_last_error_message(), "unexpected content");
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:04:00.0", &module), PCIBIND_ERR_IO);
    CHECK(pcibind_last_error_errno() == EINVAL);
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:01:00", &module), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_RC(pcibind_find_vfio_variant(ctx, NULL, &module), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:01:00.0", NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_find_vfio_variant(NULL, "0000:01:00.0", &module), PCIBIND_ERR_INVALID_ARG);
    CHECK(module == NULL);
    expect_variant("01:00.0", "vfio_pci");
    teardown();
}

static void oversized_modalias_is_refused(void)
{
    setup();
    ptk_write(root, "lib-modules/modules.alias", CATCH_ALL);
    char big[8192];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ptk_device(root, "0000:01:00.0", big, NULL);
    char *module = NULL;
    CHECK_RC(pcibind_find_vfio_variant(ctx, "0000:01:00.0", &module), PCIBIND_ERR_IO);
    CHECK_CONTAINS(pcibind_last_error_message(), "longer than");
    CHECK(module == NULL);
    teardown();
}

RUN_TESTS(TEST_CASE(every_device_row_of_ubuntu_6_8), TEST_CASE(every_device_row_of_debian_6_12),
          TEST_CASE(subsystem_specific_alias_beats_generic),
          TEST_CASE(class_specific_alias_beats_generic_in_any_file_order),
          TEST_CASE(question_mark_and_bracket_globs),
          TEST_CASE(a_tie_is_logged_and_file_order_decides),
          TEST_CASE(lower_case_modalias_matches_only_the_catch_all),
          TEST_CASE(builtin_variant_listed_only_in_builtin_modinfo),
          TEST_CASE(missing_modules_alias_gives_vfio_pci_with_a_warning),
          TEST_CASE(unreadable_modules_alias_gives_vfio_pci_with_a_warning),
          TEST_CASE(changed_table_is_reloaded), TEST_CASE(malformed_lines_are_skipped),
          TEST_CASE(device_side_errors), TEST_CASE(oversized_modalias_is_refused))
