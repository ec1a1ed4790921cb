/*
 * mgrpci.h: a virtualization manager's host PCI device glue on top of libpcibind
 *
 * What a daemon shaped like libvirtd needs to detach a host PCI device for a guest and give
 * it back afterwards, written against libpcibind's C API. It plays the part of libvirt's
 * virPCIDeviceDetach()/virPCIDeviceReattach() (virpci.c) and of the bookkeeping of
 * virHostdevPreparePCIDevices()/virHostdevReAttachPCIDevices() (virhostdev.c): which start
 * each device had, and whether the manager moved it at all.
 *
 * ## One context per daemon
 *
 * The daemon creates one mgrPCIContext at start-up, from its configuration, before it starts
 * its worker threads, and frees it at shutdown after they have stopped. In between every
 * thread uses that one context: mgrPCIDetach(), mgrPCIReattach() and mgrPCIHostUse() may run
 * concurrently, on different devices or on the same one. libpcibind serializes the kernel
 * side per device (in this process and against other processes); the manager serializes its
 * own record of each device (mgrpcistate.h) the same way, so that two threads detaching one
 * device cannot record the wrong start. A context per thread or per call would only lose the
 * library's caches (the module alias index) and is not needed.
 *
 * ## Errors
 *
 * Functions return 0, or -1 with the manager's last error set (mgrerror.h): a class mapped
 * from libpcibind's result code by mgrPCIErrorClass(), and a message that quotes libpcibind's,
 * which is written for end users as it is.
 */
#ifndef MGRPCI_H
#define MGRPCI_H

#include <stdbool.h>

#include "mgrerror.h"
#include "mgrlog.h"

typedef struct _mgrPCIContext mgrPCIContext;

/* The daemon's configuration, read once at start-up. Every string is copied. */
typedef struct {
    const char *sysfsRoot;  /* NULL: /sys */
    const char *procRoot;   /* NULL: /proc */
    const char *devRoot;    /* NULL: /dev */
    const char *modulesDir; /* NULL: /lib/modules/<release>, then /usr/lib/modules/<release> */
    const char *lockDir;    /* NULL: libpcibind's default, the `lockdir` of pcibind.pc */
    const char *stateDir;   /* required: the per-device detach records, on /run */
    const char *modprobe;   /* the module loader program; NULL: never load modules */
    unsigned int modprobeTimeoutMs; /* its time limit; 0: 60 s */
    const char *const *moduleDeny; /* NULL-terminated modules never to load; NULL: none */
    mgrLogPriority logLevel; /* library lines below it are not even formatted */
} mgrPCIDaemonConfig;

/* What the user configured for one host device (a domain's <hostdev>, or the arguments of
 * a node device detach). */
typedef struct {
    /* The driver to detach to (<driver model='...'/>): a VFIO driver or module name in either
     * spelling; NULL: the best VFIO driver for the device (a variant when the module tables
     * name one, else vfio-pci). */
    const char *model;
    bool allowInUse;      /* e.g. single-GPU passthrough: the console GPU may go */
    bool allowUnclaimed;  /* a driver that does not list the device may still take it */
    bool allowSriov;      /* a PF with VFs may go to VFIO */
    bool requireVfio;     /* `model` must be a VFIO driver */
    bool strictVariant;   /* with model NULL: the variant or nothing (migration needs it) */
} mgrPCIHostdevConfig;

/* NULL with an error reported when the configuration cannot be applied. */
mgrPCIContext *mgrPCIContextNew(const mgrPCIDaemonConfig *config);
/* NULL is fine. No call on the context may be running or follow. */
void mgrPCIContextFree(mgrPCIContext *mgr);

/* The libpcibind flags that carry out the user's configuration: one PCIBIND_BIND_ALLOW_* per
 * check the user waived, never PCIBIND_BIND_FORCE (which would also waive those not named). */
unsigned int mgrPCIHostdevBindFlags(const mgrPCIHostdevConfig *config);

/* The manager's error class for a libpcibind result code (a PCIBIND_ERR_*). A code this
 * manager does not know (a newer library) is MGR_ERR_INTERNAL_ERROR. */
mgrErrorClass mgrPCIErrorClass(int code);
/* 1 when the table has a row for `code`, else 0 (for the tests: every code has one). */
int mgrPCIErrorClassKnown(int code);

/* Detaches the device at `address` (DDDD:BB:DD.F or BB:DD.F) from the host for a guest: moves
 * it to the configured VFIO driver and records where it started. A device this manager has
 * already detached keeps its first record (its true start). */
int mgrPCIDetach(mgrPCIContext *mgr, const char *address, const mgrPCIHostdevConfig *config);

/* Gives the device back exactly as it started, from its record alone (a restarted daemon
 * knows nothing else): to no particular driver when it started on none, to its start driver
 * otherwise; and not at all when the detach moved nothing (it was already on the VFIO
 * driver before the manager touched it). Then removes the record. A device without a record
 * was not detached by this manager: MGR_ERR_OPERATION_INVALID. */
int mgrPCIReattach(mgrPCIContext *mgr, const char *address);

/* Whether the host uses the device: *kinds_out a mask of PCIBIND_IN_USE_* (0: not in use),
 * *reason_out NULL or what uses it (the caller frees it). For a "can this be assigned?"
 * answer shown to the user before anything is tried. */
int mgrPCIHostUse(mgrPCIContext *mgr, const char *address, unsigned int *kinds_out,
                  char **reason_out);

#endif
