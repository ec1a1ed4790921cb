/* A virtualization manager's host-device code (the code under test in this example). */
#ifndef HOSTDEV_H
#define HOSTDEV_H

#include <pcibind.h>

/* Readies the host PCI device `bdf` for assignment to a guest: moves it to vfio-pci (loading
 * the module when needed), refusing a device the host is using. Returns 0, or -1 with
 * *error_out set to a message the caller frees. */
int hostdev_detach(const pcibind_ctx *ctx, const char *bdf, char **error_out);

#endif
