#define _GNU_SOURCE /* asprintf */
#include "hostdev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hostdev_detach(const pcibind_ctx *ctx, const char *bdf, char **error_out)
{
    char *driver = NULL;
    *error_out = NULL;
    int rc = pcibind_bind(ctx, bdf, "vfio-pci", 0, &driver);
    if (rc < 0) {
        if (asprintf(error_out, "cannot detach %s: %s: %s", bdf, pcibind_strerror(rc),
                     pcibind_last_error_message()) < 0)
            *error_out = NULL;
        return -1;
    }
    pcibind_string_free(driver);
    return 0;
}
