/*
 * mgrpcistate.c: the per-device detach records on disk
 */
#define _GNU_SOURCE
#include "mgrpcistate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mgrerror.h"

#define STATE_VERSION "1"
#define STATE_MAX_SIZE 4096

void mgrPCIStartRecordClear(mgrPCIStartRecord *rec)
{
    free(rec->driver);
    free(rec->startDriver);
    free(rec->startOverride);
    rec->driver = rec->startDriver = rec->startOverride = NULL;
    rec->moved = false;
}

int mgrPCIStateDirPrepare(const char *dir)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        mgrReportSystemError(errno, "cannot create the state directory '%s'", dir);
        return -1;
    }
    return 0;
}

static char *statePath(const char *dir, const char *address, const char *suffix)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s.state%s", dir, address, suffix) < 0)
        return NULL;
    return path;
}

/* A value goes on one line: the kernel never puts a newline in a driver name or an
 * override, but a record that could be misread is not written. */
static bool valueFits(const char *value)
{
    return !value || !strchr(value, '\n');
}

static int writeAll(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int syncDir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int mgrPCIStateSave(const char *dir, const char *address, const mgrPCIStartRecord *rec)
{
    int ret = -1;
    int fd = -1;
    char *text = NULL, *tmp = NULL, *path = NULL;

    if (!rec->driver || !valueFits(rec->driver) || !valueFits(rec->startDriver) ||
        !valueFits(rec->startOverride)) {
        mgrReportError(MGR_ERR_INTERNAL_ERROR,
                       "refusing to record a malformed start of PCI device %s", address);
        return -1;
    }
    int len = asprintf(&text,
                       "# Written by the manager when it detached this PCI device; removed on "
                       "reattach.\n"
                       "version=" STATE_VERSION "\n"
                       "address=%s\n"
                       "driver=%s\n"
                       "start_driver=%s\n"
                       "start_override=%s\n"
                       "moved=%d\n",
                       address, rec->driver, rec->startDriver ? rec->startDriver : "",
                       rec->startOverride ? rec->startOverride : "", rec->moved ? 1 : 0);
    if (len < 0) {
        text = NULL;
        goto oom;
    }
    if (!(tmp = statePath(dir, address, ".XXXXXX")) || !(path = statePath(dir, address, "")))
        goto oom;

    /* mkstemp: a name of our own, 0600, O_EXCL; rename() then replaces the record in one step. */
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
        mgrReportSystemError(errno, "cannot create a temp file for the record of PCI device %s "
                             "in '%s'", address, dir);
        goto cleanup;
    }
    if (writeAll(fd, text, (size_t)len) < 0 || fsync(fd) < 0) {
        mgrReportSystemError(errno, "cannot write '%s'", tmp);
        goto cleanup;
    }
    if (close(fd) < 0) {
        fd = -1;
        mgrReportSystemError(errno, "cannot write '%s'", tmp);
        goto cleanup;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        mgrReportSystemError(errno, "cannot rename '%s' to '%s'", tmp, path);
        goto cleanup;
    }
    free(tmp);
    tmp = NULL; /* nothing left to remove */
    if (syncDir(dir) < 0) {
        mgrReportSystemError(errno, "cannot sync the state directory '%s'", dir);
        goto cleanup;
    }
    ret = 0;
    goto cleanup;

oom:
    mgrReportSystemError(ENOMEM, "cannot record the start of PCI device %s", address);
cleanup:
    if (fd >= 0)
        close(fd);
    if (tmp && ret < 0)
        unlink(tmp);
    free(tmp);
    free(path);
    free(text);
    return ret;
}

static int readSmallFile(const char *path, char **text_out)
{
    *text_out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    char *buf = malloc(STATE_MAX_SIZE + 1);
    if (!buf) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, STATE_MAX_SIZE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            free(buf);
            close(fd);
            errno = saved;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > STATE_MAX_SIZE) {
            free(buf);
            close(fd);
            errno = EFBIG;
            return -1;
        }
    }
    close(fd);
    buf[len] = '\0';
    *text_out = buf;
    return 0;
}

/* An empty value is NULL; *out receives a copy. */
static int takeValue(const char *value, char **out)
{
    free(*out);
    *out = NULL;
    if (!*value)
        return 0;
    return (*out = strdup(value)) ? 0 : -1;
}

int mgrPCIStateLoad(const char *dir, const char *address, mgrPCIStartRecord *rec)
{
    int ret = -1;
    char *path = statePath(dir, address, "");
    char *text = NULL;
    bool haveVersion = false, haveAddress = false, haveDriver = false, haveStart = false,
         haveOverride = false, haveMoved = false;

    rec->driver = rec->startDriver = rec->startOverride = NULL;
    rec->moved = false;
    if (!path) {
        mgrReportSystemError(ENOMEM, "cannot read the record of PCI device %s", address);
        return -1;
    }
    if (readSmallFile(path, &text) < 0) {
        if (errno == ENOENT) {
            ret = 0;
            goto cleanup;
        }
        mgrReportSystemError(errno, "cannot read '%s'", path);
        goto cleanup;
    }

    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq)
            goto malformed;
        *eq = '\0';
        const char *key = line, *value = eq + 1;
        int rc = 0;
        if (strcmp(key, "version") == 0) {
            if (strcmp(value, STATE_VERSION) != 0)
                goto malformed;
            haveVersion = true;
        } else if (strcmp(key, "address") == 0) {
            if (strcmp(value, address) != 0)
                goto malformed;
            haveAddress = true;
        } else if (strcmp(key, "driver") == 0) {
            rc = takeValue(value, &rec->driver);
            haveDriver = true;
        } else if (strcmp(key, "start_driver") == 0) {
            rc = takeValue(value, &rec->startDriver);
            haveStart = true;
        } else if (strcmp(key, "start_override") == 0) {
            rc = takeValue(value, &rec->startOverride);
            haveOverride = true;
        } else if (strcmp(key, "moved") == 0) {
            if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)
                goto malformed;
            rec->moved = value[0] == '1';
            haveMoved = true;
        } else {
            goto malformed;
        }
        if (rc < 0) {
            mgrReportSystemError(ENOMEM, "cannot read '%s'", path);
            goto cleanup;
        }
    }
    if (!haveVersion || !haveAddress || !haveDriver || !rec->driver || !haveStart ||
        !haveOverride || !haveMoved)
        goto malformed;
    ret = 1;
    goto cleanup;

malformed:
    /* Never act on a record that may say something else than what was meant. */
    mgrReportError(MGR_ERR_INTERNAL_ERROR,
                   "the record of PCI device %s in '%s' is not one this manager wrote; "
                   "remove it once the device is where it should be", address, path);
cleanup:
    if (ret != 1)
        mgrPCIStartRecordClear(rec);
    free(text);
    free(path);
    return ret;
}

int mgrPCIStateDelete(const char *dir, const char *address)
{
    char *path = statePath(dir, address, "");
    if (!path) {
        mgrReportSystemError(ENOMEM, "cannot remove the record of PCI device %s", address);
        return -1;
    }
    int ret = 0;
    if (unlink(path) < 0) {
        if (errno != ENOENT) {
            mgrReportSystemError(errno, "cannot remove '%s'", path);
            ret = -1;
        }
    } else if (syncDir(dir) < 0) {
        mgrReportSystemError(errno, "cannot sync the state directory '%s'", dir);
        ret = -1;
    }
    free(path);
    return ret;
}
