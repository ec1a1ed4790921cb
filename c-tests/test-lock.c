/* Per-device locks (SPEC 3.5) through the C API, with the kernel shim preloaded: the lock
 * directory and files are the caller's alone (another user can neither open nor plant one),
 * and one timeout bounds the wait for another thread or another process, 0 failing at once. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testctx.h"

static const char *const E1000E = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
static const char *const BDF = "0000:02:00.0";
#define NOBODY 65534

static char *root, *lock_dir, *lock_file;
static pcibind_ctx *ctx;

/* A tree with one NIC on e1000e, and a context keeping its locks in ROOT/locks, which the
 * fixture creates 0755 as 0.1 did. */
static void setup(void)
{
    root = ptk_new();
    e1000e_and_vfio_pci(root);
    ptk_device(root, BDF, E1000E, "e1000e");
    ctx = test_context(root, root, getenv("FAKE_MODPROBE"), NULL);
    lock_dir = ptk_path(root, "locks");
    lock_file = ptk_path(root, "locks/0000:02:00.0.lock");
}

static void teardown(void)
{
    pcibind_ctx_free(ctx);
    ctx = NULL;
    free(lock_dir);
    free(lock_file);
    ptk_destroy(root);
    root = NULL;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned mode_of(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    return st.st_mode & 07777;
}

static int running_as_root(void)
{
    if (geteuid() == 0)
        return 1;
    printf("# not root: cannot act as another user; skipped\n");
    return 0;
}

/* Another process holding the device's lock, as another pcibind would: it opens the lock file
 * and takes the flock. Returns once it holds it; end it with release_other(). */
static pid_t hold_lock_in_another_process(void)
{
    int ready[2];
    if (pipe(ready) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        int fd = open(lock_file, O_RDWR | O_CLOEXEC);
        if (fd < 0 || flock(fd, LOCK_EX) < 0)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    CHECK(read(ready[0], &c, 1) == 1);
    close(ready[0]);
    return pid;
}

static void release_other(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void lock_dir_and_file_are_private_after_first_use(void)
{
    setup();
    CHECK(mode_of(lock_dir) == 0755);
    CHECK_RC(pcibind_unbind(ctx, BDF, 0), PCIBIND_OK);
    CHECK(mode_of(lock_dir) == 0700);
    CHECK(mode_of(lock_file) == 0600);
    teardown();
}

/* The attack of 0.1: another user opens the lock file read-only and takes the flock. */
static void another_user_cannot_open_a_lock_file(void)
{
    setup();
    CHECK_RC(pcibind_unbind(ctx, BDF, 0), PCIBIND_OK);
    if (running_as_root()) {
        /* The tree is open to all, so only the lock directory's and file's modes decide. */
        CHECK(chmod(root, 0755) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
                _exit(2);
            if (access(root, X_OK) < 0)
                _exit(3); /* a TMPDIR closed to others: nothing to learn */
            int fd = open(lock_file, O_RDONLY | O_CLOEXEC);
            _exit(fd < 0 && errno == EACCES ? 0 : 1);
        }
        int status = -1;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
            printf("# %s is not reachable by another user; skipped\n", root);
        else
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    teardown();
}

static void lock_file_of_another_user_is_refused(void)
{
    setup();
    if (running_as_root()) {
        ptk_write(root, "locks/0000:02:00.0.lock", "");
        CHECK(chmod(lock_file, 0644) == 0);
        CHECK(chown(lock_file, NOBODY, NOBODY) == 0);
        CHECK_RC(pcibind_unbind(ctx, BDF, 0), PCIBIND_ERR_IO);
        CHECK(pcibind_last_error_errno() == EPERM);
        CHECK_CONTAINS(pcibind_last_error_message(), "belongs to another user");
        CHECK_CONTAINS(pcibind_last_error_message(), lock_file);
        CHECK(ptk_is_bound_to(root, BDF, "e1000e"));
        /* Left for an administrator: neither used nor repaired. */
        struct stat st;
        CHECK(stat(lock_file, &st) == 0 && st.st_uid == NOBODY && (st.st_mode & 0777) == 0644);
    }
    teardown();
}

static void lock_dir_of_another_user_is_refused(void)
{
    setup();
    if (running_as_root()) {
        CHECK(chmod(lock_dir, 0700) == 0);
        CHECK(chown(lock_dir, NOBODY, NOBODY) == 0);
        CHECK_RC(pcibind_unbind(ctx, BDF, 0), PCIBIND_ERR_IO);
        CHECK(pcibind_last_error_errno() == EPERM);
        CHECK_CONTAINS(pcibind_last_error_message(), "lock directory belongs to another user");
        CHECK(ptk_is_bound_to(root, BDF, "e1000e"));
    }
    teardown();
}

static void symlink_in_place_of_the_lock_file_is_refused(void)
{
    setup();
    ptk_write(root, "precious", "keep me");
    char *precious = ptk_path(root, "precious");
    CHECK(chmod(precious, 0644) == 0);
    ptk_symlink(root, "locks/0000:02:00.0.lock", precious);
    CHECK_RC(pcibind_unbind(ctx, BDF, 0), PCIBIND_ERR_IO);
    CHECK_CONTAINS(pcibind_last_error_message(), "symbolic link");
    char *content = ptk_read(root, "precious");
    CHECK_STR(content, "keep me");
    free(content);
    CHECK(mode_of(precious) == 0644);
    CHECK(ptk_is_bound_to(root, BDF, "e1000e"));
    free(precious);
    teardown();
}

static void waiting_for_another_process_gives_up_at_the_timeout(void)
{
    setup();
    CHECK_RC(pcibind_unbind(ctx, BDF, 0), PCIBIND_OK);
    pid_t other = hold_lock_in_another_process();
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 300), PCIBIND_OK);
    double start = seconds_now();
    CHECK_RC(pcibind_reattach(ctx, BDF, NULL, 0, NULL), PCIBIND_ERR_BUSY);
    double took = seconds_now() - start;
    CHECK_CONTAINS(pcibind_last_error_message(), "locked by another process");
    CHECK(took >= 0.3);
    CHECK(took < 3.0);
    release_other(other);
    /* Once the other process is gone, the lock is free. */
    CHECK_RC(pcibind_reattach(ctx, BDF, NULL, 0, NULL), PCIBIND_OK);
    CHECK(ptk_is_bound_to(root, BDF, "e1000e"));
    teardown();
}

static void zero_lock_timeout_fails_at_once(void)
{
    setup();
    CHECK_RC(pcibind_unbind(ctx, BDF, 0), PCIBIND_OK);
    pid_t other = hold_lock_in_another_process();
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 0), PCIBIND_OK);
    double start = seconds_now();
    CHECK_RC(pcibind_reattach(ctx, BDF, NULL, 0, NULL), PCIBIND_ERR_BUSY);
    double took = seconds_now() - start;
    CHECK_CONTAINS(pcibind_last_error_message(), "lock timeout is 0");
    CHECK(took < 1.0);
    release_other(other);
    teardown();
}

static int slow_bind_rc;
static void *slow_bind(void *arg)
{
    (void)arg;
    slow_bind_rc = pcibind_bind(ctx, BDF, "slowmod", 0, NULL);
    return NULL;
}

/* A thread holds the device while its modprobe hangs; another thread of the same process
 * gives up at the timeout instead of waiting for it. */
static void waiting_for_another_thread_gives_up_at_the_timeout(void)
{
    setup();
    ptk_modprobe_table(root, "slowmod sleep=30");
    CHECK_RC(pcibind_ctx_set_modprobe_timeout(ctx, 3000), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_lock_timeout(ctx, 300), PCIBIND_OK);
    pthread_t holder;
    pthread_create(&holder, NULL, slow_bind, NULL);
    /* The holder has the lock once its modprobe runs. */
    char *pids = NULL;
    for (int i = 0; i < 1000 && !(pids = ptk_read(root, "modprobe.pids")); i++)
        usleep(10000);
    CHECK(pids != NULL);
    free(pids);
    double start = seconds_now();
    CHECK_RC(pcibind_unbind(ctx, BDF, 0), PCIBIND_ERR_BUSY);
    double took = seconds_now() - start;
    CHECK_CONTAINS(pcibind_last_error_message(), "locked by another thread of this process");
    CHECK(took >= 0.3);
    CHECK(took < 2.5);
    pthread_join(holder, NULL);
    CHECK(slow_bind_rc == PCIBIND_ERR_MODULE_LOAD);
    CHECK(ptk_is_bound_to(root, BDF, "e1000e"));
    teardown();
}

RUN_TESTS(TEST_CASE(lock_dir_and_file_are_private_after_first_use),
          TEST_CASE(another_user_cannot_open_a_lock_file),
          TEST_CASE(lock_file_of_another_user_is_refused),
          TEST_CASE(lock_dir_of_another_user_is_refused),
          TEST_CASE(symlink_in_place_of_the_lock_file_is_refused),
          TEST_CASE(waiting_for_another_process_gives_up_at_the_timeout),
          TEST_CASE(zero_lock_timeout_fails_at_once),
          TEST_CASE(waiting_for_another_thread_gives_up_at_the_timeout))
