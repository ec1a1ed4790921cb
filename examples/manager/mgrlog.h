/*
 * mgrlog.h: the manager's own logging (the part of a libvirt-like virlog.h this example needs)
 *
 * The manager has four levels, as libvirt has (VIR_LOG_DEBUG .. VIR_LOG_ERROR). Lines go to
 * one output function, stderr by default; a daemon would point it at its journal, a test
 * captures it. libpcibind's syslog priorities are mapped onto these levels by
 * mgrLogPriorityFromSyslog() (see mgrpci.c for the callback that bridges them).
 */
#ifndef MGRLOG_H
#define MGRLOG_H

typedef enum {
    MGR_LOG_DEBUG = 1,
    MGR_LOG_INFO = 2,
    MGR_LOG_WARN = 3,
    MGR_LOG_ERROR = 4,
} mgrLogPriority;

/* Receives each line at or above the configured level; `line` is valid during the call only.
 * Called from whichever thread logs, so it must be thread-safe. */
typedef void (*mgrLogOutputFunc)(void *opaque, mgrLogPriority priority, const char *line);

/* Both setters are for the daemon's start, before it starts threads. NULL output = stderr. */
void mgrLogSetOutput(mgrLogOutputFunc output, void *opaque);
void mgrLogSetLevel(mgrLogPriority level);
mgrLogPriority mgrLogGetLevel(void);

void mgrLogMessage(mgrLogPriority priority, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define MGR_DEBUG(...) mgrLogMessage(MGR_LOG_DEBUG, __VA_ARGS__)
#define MGR_INFO(...) mgrLogMessage(MGR_LOG_INFO, __VA_ARGS__)
#define MGR_WARN(...) mgrLogMessage(MGR_LOG_WARN, __VA_ARGS__)
#define MGR_ERROR(...) mgrLogMessage(MGR_LOG_ERROR, __VA_ARGS__)

const char *mgrLogPriorityName(mgrLogPriority priority);

/* syslog(3) priority (LOG_EMERG 0 .. LOG_DEBUG 7) -> the manager's level: EMERG..ERR are
 * errors, WARNING a warning, NOTICE and INFO information, DEBUG debug. */
mgrLogPriority mgrLogPriorityFromSyslog(int priority);

/* The least severe syslog priority that still reaches the manager's `level`: what to hand a
 * library as its threshold, so that it does not even format the lines the manager drops. */
int mgrLogSyslogThreshold(mgrLogPriority level);

#endif
