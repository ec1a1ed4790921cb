/* Shows libpcibind at work on a sysfs tree: which driver each device is on
 * (pcibind_current_driver), then module-or-driver names resolved to exact PCI driver names
 * (pcibind_resolve_driver), loading modules with the given modprobe.
 *
 * usage: resolve-demo SYSFS_ROOT MODPROBE NAME... */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "pcibind.h"

static void print_log(void *userdata, int priority, const char *message)
{
    (void)userdata;
    printf("    [log %s] %s\n", priority <= LOG_WARNING ? "warning" : "info", message);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SYSFS_ROOT MODPROBE NAME...\n", argv[0]);
        return 2;
    }
    pcibind_ctx *ctx = NULL;
    if (pcibind_ctx_new(argv[1], 0, &ctx) < 0 || pcibind_ctx_set_modprobe(ctx, argv[2]) < 0 ||
        pcibind_ctx_set_log_fn(ctx, print_log, NULL, LOG_INFO) < 0) {
        fprintf(stderr, "error: %s\n", pcibind_last_error_message());
        pcibind_ctx_free(ctx);
        return 1;
    }
    printf("libpcibind %s on %s\n\n", pcibind_version(), argv[1]);

    printf("Devices and their drivers (pcibind_current_driver):\n");
    char devices[4096];
    snprintf(devices, sizeof(devices), "%s/bus/pci/devices", argv[1]);
    struct dirent **entries;
    int n = scandir(devices, &entries, NULL, by_name);
    for (int i = 0; i < n; i++) {
        if (entries[i]->d_name[0] != '.') {
            char *driver = NULL;
            if (pcibind_current_driver(ctx, entries[i]->d_name, &driver) < 0)
                printf("  %-14s error: %s\n", entries[i]->d_name, pcibind_last_error_message());
            else
                printf("  %-14s %s\n", entries[i]->d_name, driver ? driver : "(no driver)");
            pcibind_string_free(driver);
        }
        free(entries[i]);
    }
    if (n >= 0)
        free(entries);

    printf("\nNames resolved to PCI drivers (pcibind_resolve_driver):\n");
    for (int i = 3; i < argc; i++) {
        char *driver = NULL;
        printf("  %s\n", argv[i]);
        int rc = pcibind_resolve_driver(ctx, argv[i], 0, &driver);
        if (rc < 0)
            printf("    -> %s (%d): %s\n", pcibind_strerror(rc), rc, pcibind_last_error_message());
        else
            printf("    -> %s\n", driver);
        pcibind_string_free(driver);
    }
    pcibind_ctx_free(ctx);
    return 0;
}
