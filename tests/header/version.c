/* The header's version macros (generated from Cargo.toml) name the library they ship with:
 * MAJOR.MINOR.PATCH and PCIBIND_VERSION_STRING equal pcibind_version() of the library built
 * beside them, and PCIBIND_VERSION_NUMBER orders versions as a consumer's #if expects. */
#include <stdio.h>
#include <string.h>

#include <pcibind.h>

#if !defined(PCIBIND_VERSION_MAJOR) || !defined(PCIBIND_VERSION_MINOR) || \
    !defined(PCIBIND_VERSION_PATCH) || !defined(PCIBIND_VERSION_NUMBER)
#error "pcibind.h has no version macros"
#endif
#if PCIBIND_VERSION_NUMBER < PCIBIND_VERSION_ENCODE(0, 2, 0)
#error "the version macros are older than the first release that has them"
#endif

int main(void)
{
    char from_macros[64];
    snprintf(from_macros, sizeof(from_macros), "%d.%d.%d", PCIBIND_VERSION_MAJOR,
             PCIBIND_VERSION_MINOR, PCIBIND_VERSION_PATCH);
    const char *library = pcibind_version();
    int failed = 0;
    if (strncmp(library, from_macros, strlen(from_macros)) != 0) {
        fprintf(stderr, "header says %s, library says %s\n", from_macros, library);
        failed = 1;
    }
    if (strcmp(library, PCIBIND_VERSION_STRING) != 0) {
        fprintf(stderr, "PCIBIND_VERSION_STRING is %s, library says %s\n",
                PCIBIND_VERSION_STRING, library);
        failed = 1;
    }
    if (PCIBIND_VERSION_ENCODE(0, 10, 0) <= PCIBIND_VERSION_ENCODE(0, 9, 99) ||
        PCIBIND_VERSION_ENCODE(1, 0, 0) <= PCIBIND_VERSION_ENCODE(0, 255, 255)) {
        fprintf(stderr, "PCIBIND_VERSION_ENCODE does not order versions\n");
        failed = 1;
    }
    printf("header %s (0x%06x), library %s\n", PCIBIND_VERSION_STRING, PCIBIND_VERSION_NUMBER,
           library);
    return failed;
}
