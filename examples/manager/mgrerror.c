/*
 * mgrerror.c: the manager's error classes and its thread-local last error
 */
#define _GNU_SOURCE
#include "mgrerror.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mgrlog.h"

/* A fixed buffer per thread: nothing to free when a worker thread ends. */
static _Thread_local struct {
    mgrErrorClass cls;
    char message[1024];
} lastError;

const char *mgrErrorClassName(mgrErrorClass cls)
{
    switch (cls) {
    case MGR_ERR_OK:
        return "no error";
    case MGR_ERR_INTERNAL_ERROR:
        return "internal error";
    case MGR_ERR_INVALID_ARG:
        return "invalid argument";
    case MGR_ERR_NO_DEVICE:
        return "device not found";
    case MGR_ERR_CONFIG_UNSUPPORTED:
        return "unsupported configuration";
    case MGR_ERR_OPERATION_INVALID:
        return "Requested operation is not valid";
    case MGR_ERR_OPERATION_FAILED:
        return "operation failed";
    case MGR_ERR_OPERATION_TIMEOUT:
        return "Timed out during operation";
    case MGR_ERR_OPERATION_UNSUPPORTED:
        return "Operation not supported";
    case MGR_ERR_SYSTEM_ERROR:
        return "system error";
    }
    return "unknown error class";
}

static void reportv(mgrErrorClass cls, int errnum, const char *fmt, va_list ap)
{
    lastError.cls = cls;
    int len = vsnprintf(lastError.message, sizeof(lastError.message), fmt, ap);
    if (errnum && len >= 0 && (size_t)len < sizeof(lastError.message)) {
        char buf[256];
        /* The GNU strerror_r returns the text, which may or may not be in buf. */
        const char *text = strerror_r(errnum, buf, sizeof(buf));
        snprintf(lastError.message + len, sizeof(lastError.message) - (size_t)len, ": %s", text);
    }
    MGR_ERROR("%s: %s", mgrErrorClassName(cls), lastError.message);
}

void mgrReportError(mgrErrorClass cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reportv(cls, 0, fmt, ap);
    va_end(ap);
}

void mgrReportSystemError(int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reportv(MGR_ERR_SYSTEM_ERROR, errnum, fmt, ap);
    va_end(ap);
}

mgrErrorClass mgrGetLastErrorClass(void)
{
    return lastError.cls;
}

const char *mgrGetLastErrorMessage(void)
{
    return lastError.message;
}

void mgrResetLastError(void)
{
    lastError.cls = MGR_ERR_OK;
    lastError.message[0] = '\0';
}
