// The public headers, libpcibind's and the test kit's, compile as C++ and their functions link
// with C linkage.
#include "pcibind.h"
#include "pcibind-testkit.h"

#include <cstdio>
#include <cstring>

int main()
{
    pcibind_ctx *ctx = nullptr;
    int rc = pcibind_ctx_new("relative", 0, &ctx);
    if (rc != PCIBIND_ERR_INVALID_ARG || ctx != nullptr) {
        std::printf("unexpected rc %d\n", rc);
        return 1;
    }
    std::printf("pcibind %s from C++: %s\n", pcibind_version(), pcibind_strerror(rc));
    if (std::strlen(pcibind_last_error_message()) == 0)
        return 1;
    char *root = ptk_new();
    int unbound = ptk_is_bound_to(root, "0000:01:00.0", nullptr);
    ptk_destroy(root);
    return unbound == 0 ? 0 : 1; // no such device, so not "bound to nothing" either
}
