/* The smallest useful libpcibind consumer: the library's version, and the PCI driver behind the
 * module name vfio_pci on this machine, read-only from /sys with module loading disabled. */
#include <stdio.h>
#include <stdlib.h>

#include <pcibind.h>

int main(void)
{
    pcibind_ctx *ctx = NULL;
    int rc = pcibind_ctx_new(NULL, 0, &ctx);
    if (rc < 0) {
        fprintf(stderr, "pcibind_ctx_new: %s\n", pcibind_last_error_message());
        return 1;
    }
    printf("libpcibind %s\n", pcibind_version());
    if (pcibind_ctx_set_modprobe(ctx, NULL) < 0) {
        pcibind_ctx_free(ctx);
        return 1;
    }
    char *driver = NULL;
    rc = pcibind_resolve_driver(ctx, "vfio_pci", 0, &driver);
    if (rc == 0)
        printf("vfio_pci -> %s\n", driver);
    else
        printf("vfio_pci: %s (%s)\n", pcibind_strerror(rc), pcibind_last_error_message());
    free(driver);
    pcibind_ctx_free(ctx);
    /* Resolution may fail here (no vfio-pci on this machine); the API worked either way. */
    return rc == 0 || rc == PCIBIND_ERR_NO_DRIVER ? 0 : 1;
}
