/* The context, its setters, the error and version functions, and pcibind_current_driver:
 * argument checks, out-pointer conventions, error codes and messages. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>

#include <pcibind-testkit.h>
#include "harness.h"

#define GARBAGE ((void *)(uintptr_t)0x1)

static void ctx_new_and_free(void)
{
    char *root = ptk_new();
    pcibind_ctx *ctx = GARBAGE;
    CHECK_RC(pcibind_ctx_new(root, 0, &ctx), PCIBIND_OK);
    CHECK(ctx != NULL && ctx != GARBAGE);
    CHECK_STR(pcibind_last_error_message(), "");
    CHECK(pcibind_last_error_errno() == 0);
    pcibind_ctx_free(ctx);
    pcibind_ctx_free(NULL);
    ptk_destroy(root);
}

static void ctx_new_rejects_bad_arguments(void)
{
    char *root = ptk_new();
    pcibind_ctx *ctx = GARBAGE;
    CHECK_RC(pcibind_ctx_new(root, 0, NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_ctx_new(root, 1, &ctx), PCIBIND_ERR_INVALID_ARG);
    CHECK(ctx == NULL);
    ctx = GARBAGE;
    CHECK_RC(pcibind_ctx_new("relative/sys", 0, &ctx), PCIBIND_ERR_INVALID_ARG);
    CHECK(ctx == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "absolute");

    char *missing = ptk_path(root, "missing");
    ctx = GARBAGE;
    CHECK_RC(pcibind_ctx_new(missing, 0, &ctx), PCIBIND_ERR_IO);
    CHECK(ctx == NULL);
    CHECK(pcibind_last_error_errno() == ENOENT);
    CHECK_CONTAINS(pcibind_last_error_message(), missing);
    free(missing);

    char *file = ptk_path(root, "modprobe.table");
    CHECK_RC(pcibind_ctx_new(file, 0, &ctx), PCIBIND_ERR_IO);
    CHECK(pcibind_last_error_errno() == ENOTDIR);
    free(file);
    ptk_destroy(root);
}

static void ctx_new_null_root_means_sys(void)
{
    pcibind_ctx *ctx = NULL;
    /* Only reads; the real /sys is never written by tests. */
    CHECK_RC(pcibind_ctx_new(NULL, 0, &ctx), PCIBIND_OK);
    char *driver = GARBAGE;
    int rc = pcibind_current_driver(ctx, "ffff:ff:1f.7", &driver);
    CHECK(rc == PCIBIND_ERR_NO_DEVICE);
    CHECK_CONTAINS(pcibind_last_error_message(), "/sys/bus/pci/devices/ffff:ff:1f.7");
    CHECK(driver == NULL);
    pcibind_ctx_free(ctx);
}

static void setters_check_their_arguments(void)
{
    char *root = ptk_new();
    pcibind_ctx *ctx = NULL;
    CHECK_RC(pcibind_ctx_new(root, 0, &ctx), PCIBIND_OK);

    CHECK_RC(pcibind_ctx_set_modules_dir(ctx, "/lib/modules/6.8.0"), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modules_dir(ctx, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modules_dir(ctx, "lib/modules"), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_ctx_set_modules_dir(NULL, "/lib/modules"), PCIBIND_ERR_INVALID_ARG);

    CHECK_RC(pcibind_ctx_set_modprobe(ctx, "/sbin/modprobe"), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, NULL), PCIBIND_OK);
    /* A bare name would be looked up in $PATH: refused. */
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, "modprobe"), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_ctx_set_modprobe(NULL, NULL), PCIBIND_ERR_INVALID_ARG);

    CHECK_RC(pcibind_ctx_set_lock_dir(ctx, root), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_lock_dir(ctx, NULL), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_lock_dir(ctx, "run/pcibind"), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_ctx_set_lock_dir(NULL, "/run/pcibind"), PCIBIND_ERR_INVALID_ARG);

    /* Any lock timeout is fine, 0 (fail at once) included. */
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 0), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 4294967295u), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_lock_timeout(NULL, 1000), PCIBIND_ERR_INVALID_ARG);

    /* No module loads in no time: a modprobe time limit of 0 is refused. */
    CHECK_RC(pcibind_ctx_set_modprobe_timeout(ctx, 1), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe_timeout(ctx, 4294967295u), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe_timeout(ctx, 0), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_ctx_set_modprobe_timeout(NULL, 1000), PCIBIND_ERR_INVALID_ARG);

    CHECK_RC(pcibind_ctx_set_log_fn(NULL, NULL, NULL, 7), PCIBIND_ERR_INVALID_ARG);
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

static void strerror_version_and_free_functions(void)
{
    CHECK_STR(pcibind_strerror(PCIBIND_OK), "success");
    CHECK_STR(pcibind_strerror(PCIBIND_ERR_NO_DRIVER), "name resolves to no PCI driver");
    CHECK_STR(pcibind_strerror(PCIBIND_ERR_NOT_CLAIMED), "driver does not claim this device");
    CHECK_STR(pcibind_strerror(-100), "unknown error");
    CHECK_STR(pcibind_strerror(1), "unknown error");
    for (int code = PCIBIND_ERR_NOT_CLAIMED; code <= PCIBIND_OK; code++)
        CHECK(pcibind_strerror(code) != NULL && pcibind_strerror(code)[0] != '\0');
    const char *v = pcibind_version();
    CHECK(v != NULL && v[0] >= '0' && v[0] <= '9' && strchr(v, '.') != NULL);
    pcibind_string_free(NULL);
    pcibind_strv_free(NULL);
}

static void error_codes_keep_their_values(void)
{
    CHECK(PCIBIND_OK == 0);
    CHECK(PCIBIND_ERR_INVALID_ARG == -1);
    CHECK(PCIBIND_ERR_INVALID_ADDRESS == -2);
    CHECK(PCIBIND_ERR_NO_DEVICE == -3);
    CHECK(PCIBIND_ERR_NO_DRIVER == -4);
    CHECK(PCIBIND_ERR_MODULE_LOAD == -5);
    CHECK(PCIBIND_ERR_BIND == -6);
    CHECK(PCIBIND_ERR_RESTORE == -7);
    CHECK(PCIBIND_ERR_IN_USE == -8);
    CHECK(PCIBIND_ERR_IO == -9);
    CHECK(PCIBIND_ERR_BUSY == -10);
    CHECK(PCIBIND_ERR_INTERNAL == -11);
    CHECK(PCIBIND_ERR_NOT_CLAIMED == -12);
}

static void last_error_is_reset_by_a_successful_call(void)
{
    char *root = ptk_new();
    pcibind_ctx *ctx = NULL;
    CHECK_RC(pcibind_ctx_new(root, 0, &ctx), PCIBIND_OK);
    ptk_device(root, "0000:00:02.0", "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00", NULL);
    char *driver = NULL;
    CHECK_RC(pcibind_current_driver(ctx, "nonsense", &driver), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_CONTAINS(pcibind_last_error_message(), "nonsense");
    CHECK_RC(pcibind_current_driver(ctx, "0000:00:02.0", &driver), PCIBIND_OK);
    CHECK_STR(pcibind_last_error_message(), "");
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

/* --- pcibind_current_driver --- */

static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00";

static void current_driver_bound_unbound_missing(void)
{
    char *root = ptk_new();
    pcibind_ctx *ctx = NULL;
    CHECK_RC(pcibind_ctx_new(root, 0, &ctx), PCIBIND_OK);
    ptk_loaded_driver(root, "e1000e", "e1000e");
    ptk_device(root, "0000:00:02.0", E1000E, "e1000e");
    ptk_device(root, "0000:00:03.0", E1000E, NULL);

    char *driver = GARBAGE;
    CHECK_RC(pcibind_current_driver(ctx, "0000:00:02.0", &driver), PCIBIND_OK);
    CHECK_STR(driver, "e1000e");
    pcibind_string_free(driver);

    /* The short form means domain 0000; hex in either case. */
    driver = GARBAGE;
    CHECK_RC(pcibind_current_driver(ctx, "00:02.0", &driver), PCIBIND_OK);
    CHECK_STR(driver, "e1000e");
    free(driver);

    driver = GARBAGE;
    CHECK_RC(pcibind_current_driver(ctx, "0000:00:03.0", &driver), PCIBIND_OK);
    CHECK(driver == NULL);

    driver = GARBAGE;
    CHECK_RC(pcibind_current_driver(ctx, "0000:00:04.0", &driver), PCIBIND_ERR_NO_DEVICE);
    CHECK(driver == NULL);
    CHECK_CONTAINS(pcibind_last_error_message(), "no PCI device 0000:00:04.0");
    CHECK(pcibind_last_error_errno() == ENODEV);

    CHECK_RC(pcibind_current_driver(ctx, "0000:00:02.0", NULL), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_current_driver(ctx, NULL, &driver), PCIBIND_ERR_INVALID_ARG);
    CHECK_RC(pcibind_current_driver(NULL, "0000:00:02.0", &driver), PCIBIND_ERR_INVALID_ARG);
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

static void current_driver_upper_case_and_wide_domains(void)
{
    char *root = ptk_new();
    pcibind_ctx *ctx = NULL;
    CHECK_RC(pcibind_ctx_new(root, 0, &ctx), PCIBIND_OK);
    ptk_loaded_driver(root, "mlx5_core", "mlx5_core");
    ptk_device(root, "0000:af:00.1", E1000E, "mlx5_core");
    ptk_device(root, "10000:01:00.0", E1000E, "mlx5_core");
    char *driver = NULL;
    CHECK_RC(pcibind_current_driver(ctx, "0000:AF:00.1", &driver), PCIBIND_OK);
    CHECK_STR(driver, "mlx5_core");
    free(driver);
    driver = NULL;
    CHECK_RC(pcibind_current_driver(ctx, "10000:01:00.0", &driver), PCIBIND_OK);
    CHECK_STR(driver, "mlx5_core");
    free(driver);
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

static void current_driver_rejects_malformed_addresses(void)
{
    char *root = ptk_new();
    pcibind_ctx *ctx = NULL;
    CHECK_RC(pcibind_ctx_new(root, 0, &ctx), PCIBIND_OK);
    ptk_device(root, "0000:00:02.0", E1000E, NULL);
    static const char *const bad[] = {
        "",          "0000:00:02",   "000:00:02.0",  "0000:0:02.0",   "0000:00:2.0",
        "0000:00:20.0", "0000:00:02.8", "0000:00:02.0\n", " 0000:00:02.0", "0000:00:02.0/..",
        "../0000:00:02.0", "0000:00:02.00", "123456789:00:02.0", "0000:zz:02.0", "\xff",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *driver = GARBAGE;
        int rc = pcibind_current_driver(ctx, bad[i], &driver);
        if (rc != PCIBIND_ERR_INVALID_ADDRESS && rc != PCIBIND_ERR_INVALID_ARG) {
            printf("#   address #%zu gave %d\n", i, rc);
            harness_failed_now = 1;
        }
        CHECK(driver == NULL);
    }
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

RUN_TESTS(TEST_CASE(ctx_new_and_free), TEST_CASE(ctx_new_rejects_bad_arguments),
          TEST_CASE(ctx_new_null_root_means_sys), TEST_CASE(setters_check_their_arguments),
          TEST_CASE(strerror_version_and_free_functions),
          TEST_CASE(error_codes_keep_their_values),
          TEST_CASE(last_error_is_reset_by_a_successful_call),
          TEST_CASE(current_driver_bound_unbound_missing),
          TEST_CASE(current_driver_upper_case_and_wide_domains),
          TEST_CASE(current_driver_rejects_malformed_addresses))
