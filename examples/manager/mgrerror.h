/*
 * mgrerror.h: the manager's error classes and its thread-local last error (the part of a
 * libvirt-like virerror.h this example needs)
 *
 * Functions of the manager return 0 or -1; -1 comes with a reported error: a class the
 * management layer above acts on (as libvirt's virErrorNumber: VIR_ERR_NO_DEVICE,
 * VIR_ERR_OPERATION_INVALID, ...) and a message for the user. mgrpci.c maps every
 * libpcibind result code onto these classes.
 */
#ifndef MGRERROR_H
#define MGRERROR_H

typedef enum {
    MGR_ERR_OK = 0,
    MGR_ERR_INTERNAL_ERROR,        /* a bug, here or in a library */
    MGR_ERR_INVALID_ARG,           /* the caller passed something malformed */
    MGR_ERR_NO_DEVICE,             /* no such host device */
    MGR_ERR_CONFIG_UNSUPPORTED,    /* the configuration asks for what this host cannot do */
    MGR_ERR_OPERATION_INVALID,     /* not allowed in the current state (in use, not ours) */
    MGR_ERR_OPERATION_FAILED,      /* tried, and it did not work */
    MGR_ERR_OPERATION_TIMEOUT,     /* gave up waiting for someone else */
    MGR_ERR_OPERATION_UNSUPPORTED, /* the device cannot do this at all */
    MGR_ERR_SYSTEM_ERROR,          /* the OS said no; the message carries strerror(errno) */
} mgrErrorClass;

const char *mgrErrorClassName(mgrErrorClass cls);

/* Records the last error of this thread and logs it at MGR_LOG_ERROR. */
void mgrReportError(mgrErrorClass cls, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with class MGR_ERR_SYSTEM_ERROR and ": strerror(errnum)" appended. */
void mgrReportSystemError(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* This thread's last reported error: MGR_ERR_OK and "" when none since mgrResetLastError(). */
mgrErrorClass mgrGetLastErrorClass(void);
const char *mgrGetLastErrorMessage(void);
void mgrResetLastError(void);

#endif
