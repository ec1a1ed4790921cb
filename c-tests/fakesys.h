/* Fake sysfs trees for the C tests, laid out like the kernel's:
 *   devices/pci0000:00/BDF/{modalias,driver_override,driver -> ...}
 *   bus/pci/devices/BDF -> ../../../devices/pci0000:00/BDF
 *   bus/pci/drivers/DRV/{bind,unbind,new_id,remove_id,module -> ../../../../module/MOD}
 *   bus/pci/drivers_probe
 *   module/MOD/drivers/pci:DRV -> ../../../bus/pci/drivers/DRV
 *   module/MOD/initstate (only for modules the fake modprobe loads slowly: coming, then live)
 * plus files of our own at the root for the fake modprobe: modprobe.table (what each module
 * registers when loaded), modprobe.log (one line per run, with its argv) and modprobe.lock.
 *
 * Writes to the kernel's files in such a tree take effect when the test runs with the kernel
 * shim preloaded (kernel-shim.c, LD_PRELOAD=$KERNEL_SHIM). It reads these files of our own:
 *   bus/pci/drivers/DRV/fake_ids     the driver's static ID table: one fnmatch() glob per line,
 *                                    matched against the device's whole modalias, e.g.
 *                                    pci:v000015B3d0000101Esv*sd*bc*sc*i* (no file: no table,
 *                                    like vfio-pci's)
 *   bus/pci/drivers/DRV/fake_dynids  IDs added by new_id, one "vvvv dddd" (lower-case hex) per
 *                                    line, or the full "vvvv dddd sv sd class mask data" form
 *   bus/pci/drivers/DRV/fake_vfio    exists for a VFIO driver: binding creates BDF/vfio-dev/vfioN (lowest free N)
 *   bus/pci/drivers/DRV/fake_sriov_configure  exists for a PF driver that can create VFs
 *                                    (has sriov_configure): else sriov_numvfs answers ENOENT
 *   devices/.../BDF/fake_sriov_offset, fake_sriov_stride  the PF's First VF Offset and VF
 *                                    Stride (default 1 and 1)
 *   devices/.../BDF/fake_vf_modalias the modalias of the PF's VFs (default: the PF's with
 *                                    device ID + 1)
 *                                    (a PF itself has sriov_totalvfs, sriov_numvfs and
 *                                    sriov_drivers_autoprobe, written by the test)
 *   fault.table                      fault injection, one "TARGET FAULT [COUNT [SKIP]]" per
 *                                    line; COUNT is how many more times it fires (decremented in
 *                                    the file), none = every time; SKIP how many matching events
 *                                    pass before it starts firing (decremented in the file):
 *       REL_PATH ERRNO          a write to that root-relative file (bus/pci/drivers_probe,
 *                               bus/pci/drivers/DRV/unbind, bus/pci/devices/BDF/driver_override)
 *                               fails with ERRNO (EIO, EBUSY, ... or a number), changing nothing
 *       probe:DRV ERRNO         DRV's probe fails with ERRNO (bind answers it; drivers_probe goes
 *       probe:DRV@BDF ERRNO     on to the next matching driver; new_id skips the device)
 *       vanish:BDF after-unbind the device leaves the bus right after it is unbound
 *       race:REL PATH LINK      when REL (named as in write.log) is next opened for writing,
 *                               PATH (root-relative) is first renamed PATH.raced and a symlink
 *                               to LINK put in its place; once (the line is then dropped)
 * and writes one: write.log, one line per write the shim intercepted,
 * "REL_PATH<TAB>VALUE<TAB>RESULT\n": VALUE is the bytes written with \n, \t, \\ and \xHH
 * escapes; RESULT is "ok" or the errno name (ENODEV, ...). REL_PATH names the file the open
 * reached, a device's driver_override always as bus/pci/devices/BDF/driver_override. */
#ifndef FAKESYS_H
#define FAKESYS_H

/* A new empty tree in a temp dir; the caller frees the path with fs_destroy(). Also exports
 * FAKE_SYSFS_ROOT so the fake modprobe (a child process) finds the tree. */
char *fs_new(void);
void fs_destroy(char *root);

/* A loadable module, loaded, that registers PCI driver DRV (both links). */
void fs_loaded_driver(const char *root, const char *module, const char *driver);
/* What a module's init does: PCI driver DRV appears in bus/pci/drivers/ complete, in one rename
 * (its files, its module link, fake_vfio when vfio is set, fake_ids holding ids unless NULL),
 * then module/MODULE/drivers/pci:DRV. Never half made for a concurrent reader. */
void fs_register_driver(const char *root, const char *module, const char *driver, int vfio,
                        const char *ids);
/* A registered PCI driver with no module link (built in). If module is not NULL,
 * module/MODULE exists with only a version file (no drivers/), as for built-ins on 6.12. */
void fs_builtin_driver(const char *root, const char *driver, const char *module);
/* A registered PCI driver whose driver dir links to its module, whose module dir has no
 * drivers/ directory. */
void fs_driver_with_module_link_only(const char *root, const char *module, const char *driver);
/* A loaded module registering no PCI driver. */
void fs_module(const char *root, const char *module);
/* A PCI device; driver may be NULL (unbound). */
void fs_device(const char *root, const char *bdf, const char *modalias, const char *driver);
/* The same in another parent directory (root-relative), e.g. "devices/pci0000:40" or, behind a
 * bridge, "devices/pci0000:00/0000:00:1c.0"; fs_device() uses "devices/pci0000:00". */
void fs_device_under(const char *root, const char *parent, const char *bdf, const char *modalias,
                     const char *driver);

/* For the kernel shim (see above). */
/* Appends a glob to DRV's static ID table (fake_ids). */
void fs_driver_ids(const char *root, const char *driver, const char *pattern);
/* A loaded VFIO driver: fs_loaded_driver() plus fake_vfio. */
void fs_vfio_driver(const char *root, const char *module, const char *driver);
/* Appends a line to fault.table. */
void fs_fault(const char *root, const char *line);
/* The contents of write.log ("" when nothing was written); caller frees. */
char *fs_write_log(const char *root);
/* 1 when the device exists, its driver link names `driver` and the driver's BDF link leads
 * back to it; with driver NULL, 1 when the device exists and is bound to nothing. */
int fs_is_bound_to(const char *root, const char *bdf, const char *driver);
/* The device's driver_override without its newline ("(null)" when unset), NULL when the device
 * has none; caller frees. */
char *fs_override(const char *root, const char *bdf);

/* Adds a line to modprobe.table: "MOD DRV" (loading registers DRV; "MOD DRV vfio" marks it a
 * VFIO driver for the kernel shim, "MOD DRV ids=GLOB" gives it an ID table), "MOD -" (loads, registers
 * no PCI driver), "MOD =" (built in: succeeds, changes nothing), "MOD !TEXT" (fails: TEXT on
 * stderr, exit 1), "MOD sleep=SECONDS" (hangs: says so on stderr, starts a helper that holds
 * stderr too, writes both pids to modprobe.pids, exits 0 after SECONDS). Modules not in the
 * table fail as kmod fails for an unknown module: "modprobe: FATAL: Module MOD not found in
 * directory /lib/modules/fake", exit 1.
 * A trailing " slow" on a loading line ("MOD DRV vfio slow") makes the load take a second, as a
 * real one takes a moment: module/MOD appears first with initstate "coming", DRV a second later,
 * then initstate "live".
 * As the kernel does, a load of a module whose directory exists changes nothing: one in flight
 * (initstate "coming") is waited for until "live" (finit_module blocks until the first load
 * ends), then modprobe exits 0, as it does at once for a module already loaded. Loads are
 * serialized by a flock on modprobe.lock in the tree, as the kernel's module_mutex does. */
void fs_modprobe_table(const char *root, const char *line);
/* The contents of modprobe.log ("" when modprobe never ran); caller frees. */
char *fs_modprobe_log(const char *root);

/* Helpers. */
char *fs_path(const char *root, const char *rel); /* caller frees */
void fs_write(const char *root, const char *rel, const char *content);
char *fs_read(const char *root, const char *rel); /* NULL when absent; caller frees */
void fs_mkdirs(const char *root, const char *rel);
void fs_symlink(const char *root, const char *rel, const char *target);

#endif
