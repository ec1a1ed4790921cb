/*
 * mgrpci.c: a virtualization manager's host PCI device glue on top of libpcibind
 *
 * In order: the error table, the log bridge, the module loader, the per-check flags, the
 * daemon's context, then detach and reattach.
 */
#define _GNU_SOURCE
#include "mgrpci.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pcibind.h>

#include "mgrpcistate.h"

/* DDDD:BB:DD.F with a domain of up to 8 hex digits, and its NUL. */
#define MGR_PCI_ADDR_LEN 18

struct _mgrPCIContext {
    pcibind_ctx *ctx;
    char *stateDir;
    char *modprobe;
    unsigned int modprobeTimeoutMs;
    char **moduleDeny;

    /* The devices a detach or reattach is working on now (see mgrPCIDeviceLock()). */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char (*busy)[MGR_PCI_ADDR_LEN];
    size_t nbusy, nalloc;
};

/* ------------------------------------------------------------------------------------------
 * Errors: every libpcibind result code, and the class the manager reports it as
 * ------------------------------------------------------------------------------------------ */

static const struct {
    int code;
    mgrErrorClass cls;
} mgrPCIErrorTable[] = {
    /* A NULL, bad flags or a malformed name: the user's <driver model> can be one. */
    {PCIBIND_ERR_INVALID_ARG, MGR_ERR_INVALID_ARG},
    {PCIBIND_ERR_INVALID_ADDRESS, MGR_ERR_INVALID_ARG},
    {PCIBIND_ERR_NO_DEVICE, MGR_ERR_NO_DEVICE},
    /* The configured model names no driver this host has. */
    {PCIBIND_ERR_NO_DRIVER, MGR_ERR_CONFIG_UNSUPPORTED},
    /* modprobe failed, or our own module policy refused (mgrPCIModuleLoad()). */
    {PCIBIND_ERR_MODULE_LOAD, MGR_ERR_OPERATION_FAILED},
    /* The kernel did not bind; the device is back where it was. */
    {PCIBIND_ERR_BIND, MGR_ERR_OPERATION_FAILED},
    /* ... and could not be put back: the message says where it is. */
    {PCIBIND_ERR_RESTORE, MGR_ERR_OPERATION_FAILED},
    /* The host uses it (or a VM holds it): not in this state, unless the user allows it. */
    {PCIBIND_ERR_IN_USE, MGR_ERR_OPERATION_INVALID},
    {PCIBIND_ERR_IO, MGR_ERR_SYSTEM_ERROR},
    /* Another thread or process held the device longer than the lock timeout. */
    {PCIBIND_ERR_BUSY, MGR_ERR_OPERATION_TIMEOUT},
    {PCIBIND_ERR_INTERNAL, MGR_ERR_INTERNAL_ERROR},
    /* The configured model does not drive this device (or is no VFIO driver when one is
     * required). */
    {PCIBIND_ERR_NOT_CLAIMED, MGR_ERR_CONFIG_UNSUPPORTED},
    /* No SR-IOV, not on a VFIO driver, no IOMMU group. */
    {PCIBIND_ERR_UNSUPPORTED, MGR_ERR_OPERATION_UNSUPPORTED},
};

int mgrPCIErrorClassKnown(int code)
{
    for (size_t i = 0; i < sizeof(mgrPCIErrorTable) / sizeof(mgrPCIErrorTable[0]); i++)
        if (mgrPCIErrorTable[i].code == code)
            return 1;
    return 0;
}

mgrErrorClass mgrPCIErrorClass(int code)
{
    if (code == PCIBIND_OK)
        return MGR_ERR_OK;
    for (size_t i = 0; i < sizeof(mgrPCIErrorTable) / sizeof(mgrPCIErrorTable[0]); i++)
        if (mgrPCIErrorTable[i].code == code)
            return mgrPCIErrorTable[i].cls;
    return MGR_ERR_INTERNAL_ERROR;
}

/* Reports the failure of the libpcibind call that returned `code`, as "WHAT: the library's
 * message". Call it right after that call: the message is the calling thread's last one. */
static void mgrPCIReportError(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mgrPCIReportError(int code, const char *fmt, ...)
{
    const char *detail = pcibind_last_error_message();
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (!detail || !*detail)
        detail = pcibind_strerror(code);
    mgrReportError(mgrPCIErrorClass(code), "%s: %s", what, detail);
}

/* ------------------------------------------------------------------------------------------
 * The log bridge: libpcibind's syslog priorities to the manager's levels
 * ------------------------------------------------------------------------------------------ */

static void mgrPCILogBridge(void *opaque, int priority, const char *message)
{
    (void)opaque;
    mgrLogMessage(mgrLogPriorityFromSyslog(priority), "libpcibind: %s", message);
}

/* ------------------------------------------------------------------------------------------
 * The module loader: the manager's policy, then its own modprobe
 * ------------------------------------------------------------------------------------------ */

/* Module names compare with '-' and '_' alike, as modprobe treats them. */
static bool mgrPCIModuleNameEqual(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char ca = *a == '-' ? '_' : *a, cb = *b == '-' ? '_' : *b;
        if (ca != cb)
            return false;
    }
    return *a == *b;
}

static int mgrPCILoaderError(char **error_out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int mgrPCILoaderError(char **error_out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL; /* the library then says only that the loader failed */
    va_end(ap);
    MGR_WARN("%s", text ? text : fmt);
    if (error_out)
        *error_out = text; /* malloc'ed: libpcibind frees it with free() */
    else
        free(text);
    return -1;
}

static long mgrElapsedMs(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Runs PROGRAM -b MODULE as libpcibind would, but as the manager's own child: stdin from
 * /dev/null, stdout and stderr into a pipe we read for the error text, default signal
 * dispositions and an empty signal mask (a daemon blocks and ignores signals of its own),
 * no other descriptor of the daemon's, and a process group of its own, which is killed when
 * it runs past `timeoutMs`: libpcibind does not time a caller's loader, and a device's lock
 * is held meanwhile. (A module init stuck in the kernel leaves modprobe unkillable; the
 * waitpid() below then waits for it, as libvirt's virKModLoad() would.) */
static int mgrPCIRunModprobe(const char *program, const char *module, unsigned int timeoutMs,
                             char **error_out)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return mgrPCILoaderError(error_out, "cannot run '%s' for module '%s': pipe: %s", program,
                                 module, strerror(errno));

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t noSignals, allSignals;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    /* Descriptors other threads opened without O_CLOEXEC, too. */
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
#endif
    posix_spawnattr_init(&attr);
    sigemptyset(&noSignals);
    sigfillset(&allSignals);
    sigdelset(&allSignals, SIGKILL);
    sigdelset(&allSignals, SIGSTOP);
    posix_spawnattr_setsigmask(&attr, &noSignals);
    posix_spawnattr_setsigdefault(&attr, &allSignals);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);

    char *const argv[] = {(char *)program, (char *)"-b", (char *)module, NULL};
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    pid_t pid;
    int rc = posix_spawn(&pid, program, &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return mgrPCILoaderError(error_out, "cannot run '%s' for module '%s': %s", program,
                                 module, strerror(rc));
    }

    /* What it says, up to a screenful; the rest is read and dropped so it never blocks. Done
     * at EOF, or once modprobe itself has exited and its output is drained (something it
     * started may hold the pipe open for long: modprobe's exit status is the answer), or
     * when the time is up. */
    char output[1024];
    size_t len = 0;
    int status = 0;
    bool reaped = false, timedOut = false;
    for (;;) {
        if (!reaped && waitpid(pid, &status, WNOHANG) == pid)
            reaped = true;
        long left = (long)timeoutMs - mgrElapsedMs(&started);
        if (!reaped && left <= 0) {
            timedOut = true;
            kill(-pid, SIGKILL);
            break;
        }
        struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
        int ready = poll(&pfd, 1, reaped ? 0 : (int)(left < 100 ? left : 100));
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0 || (ready == 0 && reaped))
            break;
        if (ready == 0)
            continue;
        char chunk[512];
        ssize_t n = read(pipefd[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n < sizeof(output) - 1 - len ? (size_t)n : sizeof(output) - 1 - len;
        memcpy(output + len, chunk, take);
        len += take;
    }
    close(pipefd[0]);
    while (len > 0 && isspace((unsigned char)output[len - 1]))
        len--;
    output[len] = '\0';

    while (!reaped && waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return mgrPCILoaderError(error_out, "cannot wait for '%s' loading module '%s': %s",
                                     program, module, strerror(errno));
    }
    if (timedOut)
        return mgrPCILoaderError(error_out, "'%s -b %s' did not finish within %u ms and was "
                                 "killed: %s", program, module, timeoutMs,
                                 len ? output : "it printed nothing");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        MGR_DEBUG("loaded kernel module '%s' with '%s'", module, program);
        return 0;
    }
    char how[64];
    if (WIFEXITED(status))
        snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof(how), "signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return mgrPCILoaderError(error_out, "'%s -b %s' failed (%s): %s", program, module, how,
                             len ? output : "it printed nothing");
}

/* A pcibind_module_loader_fn: libpcibind calls it, instead of running modprobe itself,
 * whenever it needs a module (a VFIO driver, a variant, a host driver on reattach). */
static int mgrPCIModuleLoad(void *opaque, const char *module, char **error_out)
{
    mgrPCIContext *mgr = opaque;

    for (char **deny = mgr->moduleDeny; deny && *deny; deny++) {
        if (mgrPCIModuleNameEqual(*deny, module))
            return mgrPCILoaderError(error_out,
                                     "loading kernel module '%s' is administratively prohibited "
                                     "(the manager's module deny list)",
                                     module);
    }
    if (!mgr->modprobe)
        return mgrPCILoaderError(error_out,
                                 "kernel module '%s' is not loaded, and loading modules is "
                                 "disabled in the manager's configuration",
                                 module);
    return mgrPCIRunModprobe(mgr->modprobe, module, mgr->modprobeTimeoutMs, error_out);
}

/* ------------------------------------------------------------------------------------------
 * The user's choices, one check at a time
 * ------------------------------------------------------------------------------------------ */

unsigned int mgrPCIHostdevBindFlags(const mgrPCIHostdevConfig *config)
{
    unsigned int flags = 0;
    if (config->allowInUse)
        flags |= PCIBIND_BIND_ALLOW_IN_USE;
    if (config->allowUnclaimed)
        flags |= PCIBIND_BIND_ALLOW_UNCLAIMED;
    if (config->allowSriov)
        flags |= PCIBIND_BIND_ALLOW_SRIOV;
    if (config->requireVfio)
        flags |= PCIBIND_BIND_REQUIRE_VFIO;
    if (config->strictVariant)
        flags |= PCIBIND_BIND_STRICT_VARIANT;
    return flags;
}

/* ------------------------------------------------------------------------------------------
 * The daemon's context
 * ------------------------------------------------------------------------------------------ */

static char *mgrStrdupOrNull(const char *s, bool *failed)
{
    if (!s)
        return NULL;
    char *copy = strdup(s);
    if (!copy)
        *failed = true;
    return copy;
}

void mgrPCIContextFree(mgrPCIContext *mgr)
{
    if (!mgr)
        return;
    pcibind_ctx_free(mgr->ctx);
    for (char **deny = mgr->moduleDeny; deny && *deny; deny++)
        free(*deny);
    free(mgr->moduleDeny);
    free(mgr->modprobe);
    free(mgr->stateDir);
    free(mgr->busy);
    pthread_cond_destroy(&mgr->cond);
    pthread_mutex_destroy(&mgr->lock);
    free(mgr);
}

mgrPCIContext *mgrPCIContextNew(const mgrPCIDaemonConfig *config)
{
    if (!config || !config->stateDir) {
        mgrReportError(MGR_ERR_INVALID_ARG, "the PCI host device configuration has no state "
                                            "directory");
        return NULL;
    }
    mgrPCIContext *mgr = calloc(1, sizeof(*mgr));
    if (!mgr) {
        mgrReportSystemError(ENOMEM, "cannot create the PCI host device context");
        return NULL;
    }
    pthread_mutex_init(&mgr->lock, NULL);
    pthread_cond_init(&mgr->cond, NULL);

    bool oom = false;
    size_t ndeny = 0;
    while (config->moduleDeny && config->moduleDeny[ndeny])
        ndeny++;
    mgr->moduleDeny = calloc(ndeny + 1, sizeof(char *));
    oom |= !mgr->moduleDeny;
    for (size_t i = 0; mgr->moduleDeny && i < ndeny; i++)
        mgr->moduleDeny[i] = mgrStrdupOrNull(config->moduleDeny[i], &oom);
    mgr->stateDir = mgrStrdupOrNull(config->stateDir, &oom);
    mgr->modprobe = mgrStrdupOrNull(config->modprobe, &oom);
    mgr->modprobeTimeoutMs = config->modprobeTimeoutMs ? config->modprobeTimeoutMs : 60000;
    if (oom) {
        mgrReportSystemError(ENOMEM, "cannot create the PCI host device context");
        goto error;
    }
    if (mgrPCIStateDirPrepare(mgr->stateDir) < 0)
        goto error;

    int rc = pcibind_ctx_new(config->sysfsRoot, 0, &mgr->ctx);
    if (rc < 0) {
        mgrPCIReportError(rc, "cannot use the sysfs tree '%s'",
                          config->sysfsRoot ? config->sysfsRoot : "/sys");
        goto error;
    }
    /* The bridge first, so that whatever the setup logs reaches the daemon's log. The
     * threshold follows the daemon's level, so that dropped lines are not even made. */
    if ((rc = pcibind_ctx_set_log_fn(mgr->ctx, mgrPCILogBridge, NULL,
                                     mgrLogSyslogThreshold(mgrLogGetLevel()))) < 0 ||
        (config->modulesDir && (rc = pcibind_ctx_set_modules_dir(mgr->ctx, config->modulesDir)) < 0) ||
        (config->lockDir && (rc = pcibind_ctx_set_lock_dir(mgr->ctx, config->lockDir)) < 0) ||
        (config->procRoot && (rc = pcibind_ctx_set_proc_root(mgr->ctx, config->procRoot)) < 0) ||
        (config->devRoot && (rc = pcibind_ctx_set_dev_root(mgr->ctx, config->devRoot)) < 0) ||
        /* Every module load goes through the manager's policy; libpcibind's own modprobe
         * is never run. */
        (rc = pcibind_ctx_set_module_loader(mgr->ctx, mgrPCIModuleLoad, mgr)) < 0) {
        mgrPCIReportError(rc, "cannot configure the PCI host device context");
        goto error;
    }
    MGR_DEBUG("PCI host devices: libpcibind %s, records in '%s'", pcibind_version(),
              mgr->stateDir);
    return mgr;

error:
    mgrPCIContextFree(mgr);
    return NULL;
}

/* ------------------------------------------------------------------------------------------
 * Addresses and the manager's per-device serialization
 * ------------------------------------------------------------------------------------------ */

/* Reads exactly `min`..`max` hex digits from *s, stopping at a non-hex character. */
static bool mgrParseHex(const char **s, size_t min, size_t max, unsigned long *out)
{
    size_t n = 0;
    *out = 0;
    while (isxdigit((unsigned char)(*s)[n])) {
        if (++n > max)
            return false;
        char c = (char)tolower((unsigned char)(*s)[n - 1]);
        *out = *out * 16 + (unsigned long)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    *s += n;
    return n >= min;
}

/* DDDD:BB:DD.F or BB:DD.F -> the canonical DDDD:BB:DD.F, which names the device's record.
 * libpcibind validates addresses itself; the manager needs the one spelling for its file. */
static int mgrPCIAddressCanonical(const char *address, char out[MGR_PCI_ADDR_LEN])
{
    unsigned long domain = 0, bus, slot, function;
    const char *p = address;
    if (!address)
        goto invalid;
    size_t colons = 0;
    for (const char *q = address; *q; q++)
        colons += *q == ':';
    if (colons == 2 && (!mgrParseHex(&p, 4, 8, &domain) || *p++ != ':'))
        goto invalid;
    if ((colons != 1 && colons != 2) || !mgrParseHex(&p, 2, 2, &bus) || *p++ != ':' ||
        !mgrParseHex(&p, 2, 2, &slot) || slot >= 0x20 || *p++ != '.' ||
        !mgrParseHex(&p, 1, 1, &function) || function >= 8 || *p != '\0')
        goto invalid;
    snprintf(out, MGR_PCI_ADDR_LEN, "%04lx:%02lx:%02lx.%lx", domain, bus, slot, function);
    return 0;

invalid:
    mgrReportError(MGR_ERR_INVALID_ARG, "'%.40s' is not a PCI address (DDDD:BB:DD.F)",
                   address ? address : "(null)");
    return -1;
}

static int mgrPCIDeviceLock(mgrPCIContext *mgr, const char *address)
{
    pthread_mutex_lock(&mgr->lock);
    for (;;) {
        size_t i;
        for (i = 0; i < mgr->nbusy && strcmp(mgr->busy[i], address) != 0; i++)
            ;
        if (i == mgr->nbusy)
            break;
        pthread_cond_wait(&mgr->cond, &mgr->lock);
    }
    if (mgr->nbusy == mgr->nalloc) {
        size_t n = mgr->nalloc ? mgr->nalloc * 2 : 8;
        void *grown = realloc(mgr->busy, n * sizeof(*mgr->busy));
        if (!grown) {
            pthread_mutex_unlock(&mgr->lock);
            mgrReportSystemError(ENOMEM, "cannot lock PCI device %s", address);
            return -1;
        }
        mgr->busy = grown;
        mgr->nalloc = n;
    }
    memcpy(mgr->busy[mgr->nbusy++], address, MGR_PCI_ADDR_LEN);
    pthread_mutex_unlock(&mgr->lock);
    return 0;
}

static void mgrPCIDeviceUnlock(mgrPCIContext *mgr, const char *address)
{
    pthread_mutex_lock(&mgr->lock);
    for (size_t i = 0; i < mgr->nbusy; i++) {
        if (strcmp(mgr->busy[i], address) == 0) {
            memcpy(mgr->busy[i], mgr->busy[--mgr->nbusy], MGR_PCI_ADDR_LEN);
            break;
        }
    }
    pthread_cond_broadcast(&mgr->cond);
    pthread_mutex_unlock(&mgr->lock);
}

/* ------------------------------------------------------------------------------------------
 * Detach and reattach
 * ------------------------------------------------------------------------------------------ */

static const char *orNone(const char *s)
{
    return s ? s : "no driver";
}

int mgrPCIDetach(mgrPCIContext *mgr, const char *address, const mgrPCIHostdevConfig *config)
{
    char addr[MGR_PCI_ADDR_LEN];
    mgrPCIStartRecord rec = {0};
    char *driver = NULL, *startDriver = NULL, *startOverride = NULL;
    int moved = 0, ret = -1;

    if (!mgr || !config) {
        mgrReportError(MGR_ERR_INVALID_ARG, "%s: no context or no configuration", __func__);
        return -1;
    }
    if (mgrPCIAddressCanonical(address, addr) < 0 || mgrPCIDeviceLock(mgr, addr) < 0)
        return -1;

    /* Read first: a record we cannot trust stops us before the device is touched. */
    int had = mgrPCIStateLoad(mgr->stateDir, addr, &rec);
    if (had < 0)
        goto cleanup;

    unsigned int flags = mgrPCIHostdevBindFlags(config);
    MGR_DEBUG("detaching PCI device %s to %s (libpcibind flags 0x%x)", addr,
              config->model ? config->model : "its best VFIO driver", flags);
    int rc = pcibind_bind_start(mgr->ctx, addr, config->model, flags, &driver, &startDriver,
                                &startOverride, &moved);
    if (rc < 0) {
        mgrPCIReportError(rc, "cannot detach PCI device %s", addr);
        goto cleanup;
    }

    if (!driver) {
        /* A real bind always names its target (only a dry run may not). */
        mgrReportError(MGR_ERR_INTERNAL_ERROR, "detaching PCI device %s named no driver", addr);
        goto undo;
    }
    if (had) {
        /* Detached by us before and not given back (a retry, or a restart in between): the
         * first record holds the device's true start; this call only adds whether it moved. */
        MGR_INFO("PCI device %s was detached before (from %s); keeping that start", addr,
                 orNone(rec.startDriver));
        free(rec.driver);
        rec.driver = strdup(driver);
        rec.moved = rec.moved || moved;
    } else {
        rec.driver = strdup(driver);
        rec.startDriver = startDriver ? strdup(startDriver) : NULL;
        rec.startOverride = startOverride ? strdup(startOverride) : NULL;
        rec.moved = moved;
        if ((startDriver && !rec.startDriver) || (startOverride && !rec.startOverride)) {
            mgrReportSystemError(ENOMEM, "cannot record the start of PCI device %s", addr);
            goto undo;
        }
    }
    if (!rec.driver) {
        mgrReportSystemError(ENOMEM, "cannot record the start of PCI device %s", addr);
        goto undo;
    }
    if (mgrPCIStateSave(mgr->stateDir, addr, &rec) < 0)
        goto undo;
    MGR_INFO("PCI device %s detached to %s (%s%s)", addr, driver,
             moved ? "it was on " : "nothing moved: it was on it already",
             moved ? orNone(startDriver) : "");
    ret = 0;
    goto cleanup;

undo:
    /* Without its record the device could never be given back: undo this call's move, with
     * the checks the user waived for the move waived for its undo too. */
    if (moved) {
        char *back = NULL;
        unsigned int waived = flags & (PCIBIND_BIND_ALLOW_IN_USE | PCIBIND_BIND_ALLOW_UNCLAIMED |
                                       PCIBIND_BIND_ALLOW_SRIOV);
        rc = pcibind_reattach(mgr->ctx, addr, startDriver, waived, &back);
        if (rc < 0)
            MGR_ERROR("PCI device %s stays on %s, unrecorded: giving it back to %s failed: %s",
                      addr, driver, orNone(startDriver), pcibind_last_error_message());
        pcibind_string_free(back);
    }

cleanup:
    mgrPCIDeviceUnlock(mgr, addr);
    mgrPCIStartRecordClear(&rec);
    pcibind_string_free(driver);
    pcibind_string_free(startDriver);
    pcibind_string_free(startOverride);
    return ret;
}

int mgrPCIReattach(mgrPCIContext *mgr, const char *address)
{
    char addr[MGR_PCI_ADDR_LEN];
    mgrPCIStartRecord rec = {0};
    char *driver = NULL;
    int ret = -1;

    if (!mgr) {
        mgrReportError(MGR_ERR_INVALID_ARG, "%s: no context", __func__);
        return -1;
    }
    if (mgrPCIAddressCanonical(address, addr) < 0 || mgrPCIDeviceLock(mgr, addr) < 0)
        return -1;

    int had = mgrPCIStateLoad(mgr->stateDir, addr, &rec);
    if (had < 0)
        goto cleanup;
    if (!had) {
        mgrReportError(MGR_ERR_OPERATION_INVALID,
                       "PCI device %s was not detached by this manager (no record in '%s')",
                       addr, mgr->stateDir);
        goto cleanup;
    }

    if (!rec.moved) {
        /* It was on its VFIO driver before the manager came: that is where it stays. */
        MGR_INFO("PCI device %s: its detach moved nothing; leaving it on %s", addr, rec.driver);
    } else {
        /* NULL: it started on no driver, so the host has it back (the driver its IDs match).
         * A name: exactly that driver, with the override a VFIO start needs and none for a
         * host driver. */
        int rc = pcibind_reattach(mgr->ctx, addr, rec.startDriver, 0, &driver);
        if (rc < 0) {
            /* The record stays: a retry, or the next daemon, still knows the start. */
            mgrPCIReportError(rc, "cannot give PCI device %s back to %s", addr,
                              rec.startDriver ? rec.startDriver : "the host");
            goto cleanup;
        }
        MGR_INFO("PCI device %s given back to %s", addr, orNone(driver));
        /* libpcibind restores the override a VFIO driver needs and clears it for a host
         * driver; a start with another override set (by someone else) differs in that. */
        int vfio = 0;
        if (rec.startOverride && pcibind_is_vfio_bound(mgr->ctx, addr, &vfio) == 0 &&
            (!vfio || !driver || strcmp(rec.startOverride, driver) != 0))
            MGR_WARN("PCI device %s started with driver_override '%s', which was not put back",
                     addr, rec.startOverride);
    }
    if (mgrPCIStateDelete(mgr->stateDir, addr) < 0)
        goto cleanup;
    ret = 0;

cleanup:
    mgrPCIDeviceUnlock(mgr, addr);
    mgrPCIStartRecordClear(&rec);
    pcibind_string_free(driver);
    return ret;
}

int mgrPCIHostUse(mgrPCIContext *mgr, const char *address, unsigned int *kinds_out,
                  char **reason_out)
{
    char addr[MGR_PCI_ADDR_LEN];
    if (!mgr || !kinds_out) {
        mgrReportError(MGR_ERR_INVALID_ARG, "%s: no context or no result", __func__);
        return -1;
    }
    if (mgrPCIAddressCanonical(address, addr) < 0)
        return -1;
    int rc = pcibind_in_use(mgr->ctx, addr, kinds_out, reason_out);
    if (rc < 0) {
        mgrPCIReportError(rc, "cannot tell whether the host uses PCI device %s", addr);
        return -1;
    }
    return 0;
}
