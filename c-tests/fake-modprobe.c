/* A fake modprobe for the tests. It never touches the real system: it acts on the fake tree
 * named by $FAKE_SYSFS_ROOT, following that tree's modprobe.table (see fakesys.h), and logs its
 * argv to modprobe.log so tests can check exactly how it was run. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakesys.h"

/* "MOD sleep=SECONDS": a modprobe that hangs. It says so on stderr, starts a helper that
 * holds stderr open as well (as an install command run through a shell would), records both
 * pids in modprobe.pids, and sleeps; both finish after SECONDS unless killed first. */
static void hang(const char *root, const char *module, int seconds)
{
    fprintf(stderr, "fake-modprobe: %s: hanging for %d s\n", module, seconds);
    fflush(stderr);
    pid_t helper = fork();
    if (helper == 0) {
        sleep(seconds);
        _exit(0);
    }
    char pids[64];
    snprintf(pids, sizeof(pids), "%d\n%d\n", (int)getpid(), (int)helper);
    fs_write(root, "modprobe.pids", pids);
    sleep(seconds);
}

int main(int argc, char **argv)
{
    const char *root = getenv("FAKE_SYSFS_ROOT");
    if (!root || !*root) {
        fprintf(stderr, "fake-modprobe: FAKE_SYSFS_ROOT is not set\n");
        return 2;
    }

    char *log_path = fs_path(root, "modprobe.log");
    FILE *log = fopen(log_path, "a");
    if (!log) {
        fprintf(stderr, "fake-modprobe: %s: %s\n", log_path, strerror(errno));
        return 2;
    }
    fprintf(log, "argc=%d", argc);
    for (int i = 0; i < argc; i++)
        fprintf(log, " [%s]", argv[i]);
    fputc('\n', log);
    fclose(log);
    free(log_path);

    if (argc != 3 || strcmp(argv[1], "-b") != 0) {
        fprintf(stderr, "fake-modprobe: expected exactly: -b MODULE\n");
        return 2;
    }
    const char *module = argv[2];

    char *table = fs_read(root, "modprobe.table");
    int rc = -1;
    for (char *line = strtok(table ? table : "", "\n"); line; line = strtok(NULL, "\n")) {
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        if (strcmp(line, module) != 0)
            continue;
        const char *action = sp + 1;
        if (action[0] == '!') {
            fprintf(stderr, "%s\n", action + 1);
            rc = 1;
        } else if (strncmp(action, "sleep=", 6) == 0) {
            hang(root, module, atoi(action + 6));
            rc = 0;
        } else if (strcmp(action, "=") == 0) {
            rc = 0; /* built in: nothing to do */
        } else if (strcmp(action, "-") == 0) {
            fs_module(root, module);
            rc = 0;
        } else {
            /* "DRV" or "DRV vfio" (a VFIO driver: the kernel shim gives its devices vfio-dev/)
             * or "DRV ids=GLOB" (its static ID table). */
            char *extra = strchr(action, ' ');
            if (extra)
                *extra++ = '\0';
            fs_loaded_driver(root, module, action);
            if (extra && strcmp(extra, "vfio") == 0) {
                char *marker = NULL;
                if (asprintf(&marker, "bus/pci/drivers/%s/fake_vfio", action) > 0)
                    fs_write(root, marker, "");
                free(marker);
            } else if (extra && strncmp(extra, "ids=", 4) == 0) {
                char *ids = NULL, *line = NULL;
                if (asprintf(&ids, "bus/pci/drivers/%s/fake_ids", action) > 0 &&
                    asprintf(&line, "%s\n", extra + 4) > 0)
                    fs_write(root, ids, line);
                free(ids);
                free(line);
            }
            rc = 0;
        }
        break;
    }
    free(table);
    if (rc < 0) {
        /* Not in the table: kmod's words and status for an unknown module (tools/modprobe.c,
         * insmod(): "Module %s not found in directory %s", logged as FATAL, exit 1), which the
         * library reports as "no such driver". */
        fprintf(stderr, "modprobe: FATAL: Module %s not found in directory /lib/modules/fake\n",
                module);
        rc = 1;
    }
    return rc;
}
