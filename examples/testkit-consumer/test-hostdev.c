/* Unit tests of hostdev.c, written with the libpcibind test kit. Each scenario builds a fake
 * sysfs tree (a NIC on its host driver, vfio-pci registered or loadable), runs the manager's
 * own code on it through libpcibind with the kernel shim preloaded (meson.build sets
 * LD_PRELOAD), and checks what the manager answered and what the kernel saw. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcibind-testkit.h>
#include <pcibind.h>

#include "hostdev.h"

#define NIC "0000:01:00.0"
#define NIC_MODALIAS "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00"

static int failed;

#define EXPECT(cond)                                                              \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);   \
            failed = 1;                                                           \
        }                                                                         \
    } while (0)

/* The shim's write.log has a line for that write: "FILE<TAB>VALUE<TAB>RESULT". */
static void expect_write(const char *root, const char *line)
{
    char *writes = ptk_write_log(root);
    if (!strstr(writes, line)) {
        fprintf(stderr, "write.log has no line \"%s\"; it holds:\n%s", line, writes);
        failed = 1;
    }
    free(writes);
}

/* A host with an Intel 82574L on e1000e; vfio-pci registered, or only loadable through the
 * fake modprobe. The alias table is what libpcibind's claim check reads. */
static char *host_with_nic(int vfio_loaded)
{
    char *root = ptk_new();
    ptk_loaded_driver(root, "e1000e", "e1000e");
    ptk_driver_ids(root, "e1000e", "pci:v00008086d000010D3sv*sd*bc*sc*i*");
    if (vfio_loaded)
        ptk_vfio_driver(root, "vfio_pci", "vfio-pci");
    else
        ptk_modprobe_table(root, "vfio_pci vfio-pci vfio");
    ptk_device(root, NIC, NIC_MODALIAS, "e1000e");
    ptk_mkdirs(root, "lib-modules");
    ptk_write(root, "lib-modules/modules.alias",
              "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n"
              "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n");
    return root;
}

/* The context the manager would make for this host, pointed at the fake tree: its module
 * tables, modprobe, lock files and proc files all inside it. */
static pcibind_ctx *context_for(const char *root)
{
    pcibind_ctx *ctx = NULL;
    ptk_mkdirs(root, "proc/net");
    ptk_mkdirs(root, "proc/self");
    char *modules = ptk_path(root, "lib-modules"), *locks = ptk_path(root, "locks"),
         *proc = ptk_path(root, "proc");
    if (pcibind_ctx_new(root, 0, &ctx) < 0 || pcibind_ctx_set_modules_dir(ctx, modules) < 0 ||
        pcibind_ctx_set_modprobe(ctx, getenv("FAKE_MODPROBE")) < 0 ||
        pcibind_ctx_set_lock_dir(ctx, locks) < 0 || pcibind_ctx_set_proc_root(ctx, proc) < 0) {
        fprintf(stderr, "cannot make the context: %s\n", pcibind_last_error_message());
        exit(99);
    }
    free(modules);
    free(locks);
    free(proc);
    return ctx;
}

/* The NIC ends on vfio-pci, through driver_override, and nothing is loaded. */
static void detach_moves_the_nic_to_vfio_pci(void)
{
    char *root = host_with_nic(1);
    pcibind_ctx *ctx = context_for(root);
    char *error = NULL;

    EXPECT(hostdev_detach(ctx, NIC, &error) == 0);
    EXPECT(error == NULL);
    EXPECT(ptk_is_bound_to(root, NIC, "vfio-pci"));
    char *override = ptk_override(root, NIC);
    EXPECT(override && strcmp(override, "vfio-pci") == 0);
    expect_write(root, "bus/pci/devices/" NIC "/driver_override\tvfio-pci\tok\n");
    expect_write(root, "bus/pci/drivers/e1000e/unbind\t" NIC "\tok\n");
    char *modprobe_runs = ptk_modprobe_log(root);
    EXPECT(strcmp(modprobe_runs, "") == 0);

    free(modprobe_runs);
    free(override);
    free(error);
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

/* vfio-pci not loaded yet: the manager has libpcibind load it, then moves the NIC. */
static void detach_loads_vfio_pci_first(void)
{
    char *root = host_with_nic(0);
    pcibind_ctx *ctx = context_for(root);
    char *error = NULL;

    EXPECT(hostdev_detach(ctx, NIC, &error) == 0);
    EXPECT(ptk_is_bound_to(root, NIC, "vfio-pci"));
    char *modprobe_runs = ptk_modprobe_log(root);
    EXPECT(strstr(modprobe_runs, "[-b] [vfio_pci]\n"));

    free(modprobe_runs);
    free(error);
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

/* vfio-pci's probe fails: the manager reports it, and the NIC is back on e1000e. */
static void failed_probe_is_reported_and_the_nic_stays_on_the_host(void)
{
    char *root = host_with_nic(1);
    ptk_fault(root, "probe:vfio-pci ENODEV");
    pcibind_ctx *ctx = context_for(root);
    char *error = NULL;

    EXPECT(hostdev_detach(ctx, NIC, &error) == -1);
    EXPECT(error && strstr(error, "cannot detach " NIC ": "));
    EXPECT(ptk_is_bound_to(root, NIC, "e1000e"));
    char *override = ptk_override(root, NIC);
    EXPECT(override && strcmp(override, "(null)") == 0);

    free(override);
    free(error);
    pcibind_ctx_free(ctx);
    ptk_destroy(root);
}

int main(void)
{
    detach_moves_the_nic_to_vfio_pci();
    detach_loads_vfio_pci_first();
    failed_probe_is_reported_and_the_nic_stays_on_the_host();
    return failed;
}
