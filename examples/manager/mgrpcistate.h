/*
 * mgrpcistate.h: what the manager remembers about each device it detached, on disk
 *
 * libvirt reattaches only what it moved, and remembers that across a daemon restart (in its
 * domain status XML and its list of active PCI host devices). Here that memory is one small
 * file per device, STATE_DIR/DDDD:BB:DD.F.state, written when a detach succeeds and removed
 * when the reattach succeeds:
 *
 *     # Written by the manager when it detached this PCI device; removed on reattach.
 *     version=1
 *     address=0000:01:00.0
 *     driver=vfio-pci
 *     start_driver=e1000e
 *     start_override=
 *     moved=1
 *
 * An empty value is "none" (the device started unbound, or with no driver_override): a driver
 * name is never empty. The state directory belongs on /run: the kernel state the files
 * describe does not survive a reboot either.
 *
 * Writes are atomic (a temp file in the same directory, fsync, rename, fsync of the
 * directory): a daemon killed at any instruction leaves the old record or the new one,
 * never half of one.
 */
#ifndef MGRPCISTATE_H
#define MGRPCISTATE_H

#include <stdbool.h>

typedef struct {
    char *driver;        /* where the detach left the device */
    char *startDriver;   /* where it was before; NULL: it was on no driver */
    char *startOverride; /* its driver_override before; NULL: none */
    bool moved;          /* whether the detach wrote anything at all */
} mgrPCIStartRecord;

void mgrPCIStartRecordClear(mgrPCIStartRecord *rec);

/* Creates the directory (0700) when it is missing. 0, or -1 with an error reported. */
int mgrPCIStateDirPrepare(const char *dir);

/* `address` is canonical (DDDD:BB:DD.F). 0, or -1 with an error reported. */
int mgrPCIStateSave(const char *dir, const char *address, const mgrPCIStartRecord *rec);

/* 1 and *rec filled when the device has a record, 0 when it has none, -1 with an error
 * reported when the record cannot be read or is not one this manager wrote. */
int mgrPCIStateLoad(const char *dir, const char *address, mgrPCIStartRecord *rec);

/* Removes the record; none is fine. 0, or -1 with an error reported. */
int mgrPCIStateDelete(const char *dir, const char *address);

#endif
