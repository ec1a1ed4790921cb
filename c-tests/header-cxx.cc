// The public header compiles as C++ and its functions link with C linkage.
#include "pcibind.h"

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
    return std::strlen(pcibind_last_error_message()) > 0 ? 0 : 1;
}
