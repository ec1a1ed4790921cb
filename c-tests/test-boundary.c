/* The C boundary's rules (SPEC 3.5, 3.7, 4): the last error is set or cleared by every call,
 * also when a log callback calls into the library; the callback never runs while the library
 * holds a lock, so it may call any function, even one on the device being bound; each log
 * message is one line; addresses that are not UTF-8 are bad addresses; user input in messages
 * is cut short; PCIBIND_ERR_IO always comes with an errno. With the kernel shim preloaded. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <syslog.h>
#include <unistd.h>

#include "testctx.h"

static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
#define BDF "0000:02:00.0"

static char *root;
static pcibind_ctx *ctx;

/* A tree with e1000e and vfio-pci, the NIC on e1000e, and alias tables with the catch-all
 * and the e1000e alias, in STATE/lib-modules. */
static void setup(void)
{
    root = ptk_new();
    e1000e_and_vfio_pci(root);
    ptk_device(root, BDF, E1000E, "e1000e");
    ctx = test_context(root, root, getenv("FAKE_MODPROBE"), NULL);
}

static void teardown(void)
{
    pcibind_ctx_free(ctx);
    ctx = NULL;
    ptk_destroy(root);
    root = NULL;
}

/* --- a callback that calls back into the library --- */

static int in_callback, callbacks, lines_with_newline, nested_failures;

static void call_everything(void)
{
    char *s = NULL;
    char **v = NULL;
    int i = 0;
    CHECK_RC(pcibind_current_driver(ctx, BDF, &s), PCIBIND_OK);
    free(s);
    CHECK_RC(pcibind_find_vfio_variant(ctx, BDF, &s), PCIBIND_OK);
    free(s);
    CHECK_RC(pcibind_is_vfio_bound(ctx, BDF, &i), PCIBIND_OK);
    CHECK_RC(pcibind_resolve_driver(ctx, "vfio_pci", 0, &s), PCIBIND_OK);
    free(s);
    CHECK_RC(pcibind_bind_plan(ctx, BDF, "vfio-pci", PCIBIND_BIND_FORCE, &s), PCIBIND_OK);
    free(s);
    /* No IOMMU group in this tree: a failing call, whose error must not leak out. */
    CHECK_RC(pcibind_iommu_group_members(ctx, BDF, &v), PCIBIND_ERR_IO);
    CHECK_RC(pcibind_iommu_group_viable(ctx, BDF, 0, &i, NULL), PCIBIND_ERR_IO);
    nested_failures++;
    /* Even an operation that takes the device's lock: it is not held while we run. */
    char *driver = NULL;
    CHECK_RC(pcibind_reattach(ctx, BDF, "vfio-pci", 0, &driver), PCIBIND_OK);
    free(driver);
}

static void reentrant_log(void *userdata, int priority, const char *message)
{
    (void)userdata;
    (void)priority;
    callbacks++;
    lines_with_newline += strchr(message, '\n') != NULL;
    if (in_callback)
        return;
    in_callback = 1;
    call_everything();
    in_callback = 0;
}

static void callback_may_call_every_function(void)
{
    setup();
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, reentrant_log, NULL, LOG_DEBUG), PCIBIND_OK);
    callbacks = nested_failures = 0;
    /* The first variant lookup loads the alias cache (which logs while it loads), the bind
     * logs while it holds the device's lock. */
    char *s = NULL;
    CHECK_RC(pcibind_find_vfio_variant(ctx, BDF, &s), PCIBIND_OK);
    free(s);
    CHECK_STR(pcibind_last_error_message(), "");
    CHECK(pcibind_last_error_errno() == 0);
    CHECK_RC(pcibind_bind(ctx, BDF, "vfio-pci", 0, &s), PCIBIND_OK);
    CHECK_STR(s, "vfio-pci");
    free(s);
    CHECK(ptk_is_bound_to(root, BDF, "vfio-pci"));
    /* The nested calls failed; the outer successful call leaves no error behind. */
    CHECK(nested_failures > 0);
    CHECK_STR(pcibind_last_error_message(), "");
    CHECK(pcibind_last_error_errno() == 0);
    CHECK(callbacks > 0);
    teardown();
}

/* A message with several lines (modprobe's stderr) reaches the callback one line at a time. */
static void log_messages_are_single_lines(void)
{
    setup();
    ptk_modprobe_table(root, "broken_mod !modprobe: ERROR: could not insert 'broken_mod'\n"
                             "second line\nthird line");
    CHECK_RC(pcibind_ctx_set_log_fn(ctx, reentrant_log, NULL, LOG_DEBUG), PCIBIND_OK);
    in_callback = 1; /* count only */
    callbacks = lines_with_newline = 0;
    CHECK_RC(pcibind_resolve_driver(ctx, "broken_mod", 0, NULL), PCIBIND_ERR_INVALID_ARG);
    char *s = NULL;
    CHECK(pcibind_resolve_driver(ctx, "broken_mod", 0, &s) < 0);
    CHECK(callbacks > 0);
    CHECK(lines_with_newline == 0);
    in_callback = 0;
    teardown();
}

/* --- arguments and messages --- */

static void non_utf8_address_is_a_bad_address(void)
{
    setup();
    char *s = NULL;
    int i = 0;
    CHECK_RC(pcibind_current_driver(ctx, "0000:02:00.\xff", &s), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_RC(pcibind_is_vfio_bound(ctx, "\xc3\x28", &i), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_RC(pcibind_bind(ctx, "\xff", "vfio-pci", 0, NULL), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK_CONTAINS(pcibind_last_error_message(), "not valid UTF-8");
    teardown();
}

static void huge_input_is_not_echoed_whole(void)
{
    setup();
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    CHECK(big != NULL);
    memset(big, 'x', n);
    big[n] = '\0';
    char *s = NULL;
    CHECK_RC(pcibind_resolve_driver(ctx, big, 0, &s), PCIBIND_ERR_INVALID_ARG);
    CHECK(strlen(pcibind_last_error_message()) < 400);
    CHECK_CONTAINS(pcibind_last_error_message(), "1048576 bytes");
    CHECK_RC(pcibind_current_driver(ctx, big, &s), PCIBIND_ERR_INVALID_ADDRESS);
    CHECK(strlen(pcibind_last_error_message()) < 400);
    big[0] = '\xff'; /* and not UTF-8 either */
    CHECK_RC(pcibind_resolve_driver(ctx, big, 0, &s), PCIBIND_ERR_INVALID_ARG);
    CHECK(strlen(pcibind_last_error_message()) < 400);
    free(big);
    teardown();
}

/* An I/O error that carries no OS error of its own (a driver link naming something that can
 * be no driver) still sets errno. */
static void io_errors_always_carry_an_errno(void)
{
    setup();
    ptk_device(root, "0000:03:00.0", E1000E, NULL);
    ptk_symlink(root, "devices/pci0000:00/0000:03:00.0/driver", "../../../bus/pci/drivers/bad name");
    char *s = NULL;
    CHECK_RC(pcibind_current_driver(ctx, "0000:03:00.0", &s), PCIBIND_ERR_IO);
    CHECK(pcibind_last_error_errno() == EINVAL);
    teardown();
}

RUN_TESTS(TEST_CASE(callback_may_call_every_function), TEST_CASE(log_messages_are_single_lines),
          TEST_CASE(non_utf8_address_is_a_bad_address), TEST_CASE(huge_input_is_not_echoed_whole),
          TEST_CASE(io_errors_always_carry_an_errno))
