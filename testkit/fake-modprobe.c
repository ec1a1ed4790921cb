/* The test kit's fake modprobe. It never touches the real system: it acts on the fake tree
 * named by $FAKE_SYSFS_ROOT, following that tree's modprobe.table (see pcibind-testkit.h),
 * and logs its argv to modprobe.log so tests can check exactly how it was run. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcibind-testkit.h"

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
    ptk_write(root, "modprobe.pids", pids);
    sleep(seconds);
}

/* "MOD unreapable=SECONDS": a modprobe that, once killed, cannot be reaped for SECONDS, as one
 * in D state (a module init stuck in the kernel) cannot. SIGKILL cannot be ignored, but a
 * zombie that another process ptraces is visible to that tracer only: its parent's waitpid
 * finds nothing to reap until the tracer lets go. So a helper leaves modprobe's process group
 * (the kill misses it), ptrace-seizes modprobe, holds stderr open, and exits after SECONDS
 * without ever waiting for it. Says so on stderr and records both pids in modprobe.pids, then
 * sleeps; exits 3 saying "cannot ptrace" when the helper could not trace it. */
static int unreapable(const char *root, const char *module, int seconds)
{
    fprintf(stderr, "fake-modprobe: %s: stuck for %d s\n", module, seconds);
    fflush(stderr);
    /* Under Yama's ptrace_scope 1 a child may not trace its parent unless let. */
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    pid_t loader = getpid();
    int ready[2];
    if (pipe(ready) < 0) {
        perror("fake-modprobe: pipe");
        return 2;
    }
    pid_t helper = fork();
    if (helper < 0) {
        perror("fake-modprobe: fork");
        return 2;
    }
    if (helper == 0) {
        close(ready[0]);
        setpgid(0, 0);
        int err = ptrace(PTRACE_SEIZE, loader, NULL, NULL) == 0 ? 0 : errno;
        if (write(ready[1], &err, sizeof(err)) != sizeof(err))
            _exit(2);
        close(ready[1]);
        if (err == 0)
            sleep(seconds);
        _exit(0);
    }
    close(ready[1]);
    int err = EIO;
    if (read(ready[0], &err, sizeof(err)) != sizeof(err))
        err = EIO;
    close(ready[0]);
    if (err) {
        fprintf(stderr, "fake-modprobe: cannot ptrace: %s\n", strerror(err));
        return 3;
    }
    char pids[64];
    snprintf(pids, sizeof(pids), "%d\n%d\n", (int)loader, (int)helper);
    ptk_write(root, "modprobe.pids", pids);
    sleep(seconds);
    return 0;
}

/* "MOD listfds": lists the descriptors modprobe was started with, one number a line, into
 * modprobe.fds, and exits 0. */
static int list_fds(const char *root)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) {
        perror("fake-modprobe: /proc/self/fd");
        return 2;
    }
    char list[4096] = "";
    size_t len = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.' || atoi(entry->d_name) == dirfd(dir))
            continue;
        int n = snprintf(list + len, sizeof(list) - len, "%s\n", entry->d_name);
        if (n < 0 || (size_t)n >= sizeof(list) - len)
            break;
        len += (size_t)n;
    }
    closedir(dir);
    ptk_write(root, "modprobe.fds", list);
    return 0;
}

/* Waits until module/MOD/initstate reads "live": 0; 1 when the module went away instead (its
 * load failed) or after 30 s. */
static int wait_until_live(const char *root, const char *rel)
{
    for (int i = 0; i < 3000; i++) {
        char *state = ptk_read(root, rel);
        if (!state) {
            fprintf(stderr, "modprobe: ERROR: the load of that module in flight failed\n");
            return 1;
        }
        int live = strncmp(state, "live", 4) == 0;
        free(state);
        if (live)
            return 0;
        usleep(10 * 1000);
    }
    fprintf(stderr, "modprobe: ERROR: the load of that module in flight never ended\n");
    return 1;
}

/* Writes module/MOD/initstate in one rename, as a sysfs attribute is never seen half written. */
static void set_initstate(const char *root, const char *module, const char *state)
{
    char *tmp = NULL, *rel = NULL;
    if (asprintf(&tmp, "module/%s/.initstate", module) < 0 ||
        asprintf(&rel, "module/%s/initstate", module) < 0)
        exit(2);
    ptk_write(root, tmp, state);
    char *from = ptk_path(root, tmp), *to = ptk_path(root, rel);
    if (rename(from, to) < 0) {
        perror("fake-modprobe: initstate");
        exit(2);
    }
    free(from);
    free(to);
    free(tmp);
    free(rel);
}

/* A table line's loading action, "DRV [vfio | ids=GLOB] [slow]" or "- [slow]", done as the
 * kernel would (pcibind-testkit.h): serialized by modprobe.lock, nothing done for a module whose
 * directory exists (a load in flight is waited for). */
static int load(const char *root, const char *module, char *action)
{
    char *save = NULL;
    char *driver = strtok_r(action, " ", &save);
    int vfio = 0, slow = 0;
    const char *ids = NULL;
    for (char *word = strtok_r(NULL, " ", &save); word; word = strtok_r(NULL, " ", &save)) {
        if (strcmp(word, "vfio") == 0)
            vfio = 1;
        else if (strcmp(word, "slow") == 0)
            slow = 1;
        else if (strncmp(word, "ids=", 4) == 0)
            ids = word + 4;
    }

    char *lock_path = ptk_path(root, "modprobe.lock");
    int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lock_path);
    if (lock < 0 || flock(lock, LOCK_EX) < 0) {
        perror("fake-modprobe: modprobe.lock");
        return 2;
    }
    char *dir = NULL, *state_rel = NULL;
    if (asprintf(&dir, "module/%s", module) < 0 || asprintf(&state_rel, "%s/initstate", dir) < 0)
        return 2;
    char *dir_path = ptk_path(root, dir);
    struct stat st;
    int exists = stat(dir_path, &st) == 0;
    free(dir_path);
    int rc = 0;
    if (exists) {
        close(lock);
        char *state = ptk_read(root, state_rel);
        if (state && strncmp(state, "live", 4) != 0)
            rc = wait_until_live(root, state_rel);
        free(state);
    } else {
        if (slow) {
            /* The load starts: the directory first, its driver after the module's init. */
            ptk_module(root, module);
            set_initstate(root, module, "coming\n");
            close(lock);
            sleep(1);
        }
        if (strcmp(driver, "-") == 0)
            ptk_module(root, module);
        else
            ptk_register_driver(root, module, driver, vfio, ids);
        if (slow)
            set_initstate(root, module, "live\n");
        else
            close(lock);
    }
    free(dir);
    free(state_rel);
    return rc;
}

int main(int argc, char **argv)
{
    const char *root = getenv("FAKE_SYSFS_ROOT");
    if (!root || !*root) {
        fprintf(stderr, "fake-modprobe: FAKE_SYSFS_ROOT is not set\n");
        return 2;
    }

    char *log_path = ptk_path(root, "modprobe.log");
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

    char *table = ptk_read(root, "modprobe.table");
    int rc = -1;
    for (char *line = strtok(table ? table : "", "\n"); line; line = strtok(NULL, "\n")) {
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        if (strcmp(line, module) != 0)
            continue;
        char *action = sp + 1;
        if (action[0] == '!') {
            fprintf(stderr, "%s\n", action + 1);
            rc = 1;
        } else if (strncmp(action, "sleep=", 6) == 0) {
            hang(root, module, atoi(action + 6));
            rc = 0;
        } else if (strncmp(action, "unreapable=", 11) == 0) {
            rc = unreapable(root, module, atoi(action + 11));
        } else if (strcmp(action, "listfds") == 0) {
            rc = list_fds(root);
        } else if (strcmp(action, "=") == 0) {
            rc = 0; /* built in: nothing to do */
        } else {
            rc = load(root, module, action);
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
