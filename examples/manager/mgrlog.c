/*
 * mgrlog.c: the manager's own logging
 */
#define _GNU_SOURCE
#include "mgrlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

static mgrLogOutputFunc logOutput;
static void *logOpaque;
static mgrLogPriority logLevel = MGR_LOG_WARN;

void mgrLogSetOutput(mgrLogOutputFunc output, void *opaque)
{
    logOutput = output;
    logOpaque = opaque;
}

void mgrLogSetLevel(mgrLogPriority level)
{
    logLevel = level;
}

mgrLogPriority mgrLogGetLevel(void)
{
    return logLevel;
}

const char *mgrLogPriorityName(mgrLogPriority priority)
{
    switch (priority) {
    case MGR_LOG_DEBUG:
        return "debug";
    case MGR_LOG_INFO:
        return "info";
    case MGR_LOG_WARN:
        return "warning";
    case MGR_LOG_ERROR:
        return "error";
    }
    return "unknown";
}

void mgrLogMessage(mgrLogPriority priority, const char *fmt, ...)
{
    if (priority < logLevel)
        return;

    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    if (logOutput)
        logOutput(logOpaque, priority, line);
    else
        fprintf(stderr, "%s : %s\n", mgrLogPriorityName(priority), line);
}

mgrLogPriority mgrLogPriorityFromSyslog(int priority)
{
    if (priority <= LOG_ERR)
        return MGR_LOG_ERROR;
    if (priority == LOG_WARNING)
        return MGR_LOG_WARN;
    if (priority <= LOG_INFO)
        return MGR_LOG_INFO;
    return MGR_LOG_DEBUG;
}

int mgrLogSyslogThreshold(mgrLogPriority level)
{
    switch (level) {
    case MGR_LOG_DEBUG:
        return LOG_DEBUG;
    case MGR_LOG_INFO:
        return LOG_INFO;
    case MGR_LOG_WARN:
        return LOG_WARNING;
    case MGR_LOG_ERROR:
        return LOG_ERR;
    }
    return LOG_DEBUG;
}
