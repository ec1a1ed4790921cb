/* pcibind-testkit.h: the libpcibind test kit, for the C unit tests of programs that use
 * libpcibind. A test builds a fake sysfs tree in a temp dir (the functions below), runs the
 * code under test against it (a pcibind_ctx whose sysfs root is the tree) with the kernel shim
 * preloaded, which gives writes in the tree the kernel's effects, and then checks what the
 * kernel saw: the tree's links (ptk_is_bound_to()) and the shim's log of every write
 * (ptk_write_log()). libpcibind's own C tests are written with this kit.
 *
 * What is installed (meson option `testkit`; pkg-config: `pcibind-testkit`):
 *   pcibind-testkit.h, libpcibind-testkit.so   this API (link with `pkg-config --libs`)
 *   LIBDIR/pcibind-testkit/kernel-shim.so      the kernel shim, for LD_PRELOAD
 *                                              (`pkg-config --variable=shim pcibind-testkit`)
 *   LIBEXECDIR/pcibind-testkit/fake-modprobe   a modprobe acting on the tree, for
 *                                              pcibind_ctx_set_modprobe()
 *                                              (`pkg-config --variable=fake_modprobe ...`)
 * A meson project gets the same paths from `dependency('pcibind-testkit').get_variable('shim')`
 * (and 'fake_modprobe'), installed or from libpcibind as a subproject.
 *
 * ## Rules
 *
 * - Setup failures end the test: a function that cannot do what it is asked (a mkdir, write
 *   or symlink that fails, out of memory) prints "pcibind-testkit: WHAT: strerror(errno)" on
 *   stderr and exits with status 99, which meson and automake count as a hard error of the
 *   test (ERROR), not a failure of the code under test. The functions that look at the tree
 *   (ptk_read(), ptk_override(), ptk_is_bound_to(), ...) report absence in their result.
 * - Paths: `root` is the tree's directory (what ptk_new() returned, or what ptk_init() laid
 *   out); `rel` is a path relative to it ("bus/pci/...").
 * - Strings returned are the caller's, released with free().
 * - Threads: ptk_new() sets $FAKE_SYSFS_ROOT (setenv(3), which other threads must not race):
 *   call it before starting threads. The others may be called from any thread.
 * - The kit is not libpcibind: it neither links nor calls it, and its header does not include
 *   pcibind.h. It has no state of its own besides the tree on disk.
 * - Valgrind and AddressSanitizer: the shim passes everything it does not emulate straight to
 *   libc and takes care not to trip either (libpcibind's tests run under both). With ASan the
 *   shim is preloaded ahead of libasan: set ASAN_OPTIONS=verify_asan_link_order=0.
 * - Forked children: the shim emulates a write made in a child forked by a multithreaded
 *   process (libpcibind makes an unbind that may wait for a VMM so) without malloc() or any
 *   lock of libc's, which another thread may have held at the fork.
 * - ABI: the kit is for tests and promises less than libpcibind. libpcibind-testkit.so.0 and
 *   the tree's conventions may change in a minor release of libpcibind (NEWS.md says so); an
 *   incompatible change of a function bumps the soname. Use the kit of the same release as
 *   the libpcibind under test.
 *
 * ## The tree
 *
 * ptk_new() makes a temp directory laid out like the kernel's /sys:
 *   devices/pci0000:00/BDF/{modalias,driver_override,driver -> ...}
 *   bus/pci/devices/BDF -> ../../../devices/pci0000:00/BDF
 *   bus/pci/drivers/DRV/{bind,unbind,new_id,remove_id,module -> ../../../../module/MOD}
 *   bus/pci/drivers_probe, bus/pci/rescan
 *   module/MOD/drivers/pci:DRV -> ../../../bus/pci/drivers/DRV
 *   module/MOD/initstate (only for modules the fake modprobe loads slowly: coming, then live)
 * plus files of our own at the root for the fake modprobe: modprobe.table (what each module
 * registers when loaded), modprobe.log (one line per run, with its argv) and modprobe.lock;
 * and for the shim: fault.table, write.log, and fake_removed/BDF, the directory of a device
 * hot-removed (below), kept there for a rescan.
 *
 * ## The kernel shim
 *
 * Writes to the kernel's files in such a tree take effect when the test runs with the kernel
 * shim preloaded (`LD_PRELOAD`; its path is the `shim` variable of pcibind-testkit.pc). The
 * shim acts on the tree named by $FAKE_SYSFS_ROOT (ptk_new() sets it) when a file is opened,
 * and refuses with EACCES any open for writing under the real /sys. It reads these files of
 * the tree's own:
 *   bus/pci/drivers/DRV/fake_ids     the driver's static ID table: one fnmatch() glob per line,
 *                                    matched against the device's whole modalias, e.g.
 *                                    pci:v000015B3d0000101Esv*sd*bc*sc*i* (no file: no table,
 *                                    like vfio-pci's)
 *   bus/pci/drivers/DRV/fake_dynids  IDs added by new_id, one "vvvv dddd" (lower-case hex) per
 *                                    line, or the full "vvvv dddd sv sd class mask data" form
 *   bus/pci/drivers/DRV/fake_vfio    exists for a VFIO driver: binding creates
 *                                    BDF/vfio-dev/vfioN (the lowest free N)
 *   bus/pci/devices/BDF/fake_vmm_holds  exists while a VMM holds the device: an unbind write
 *                                    for it, or a PF's sriov_numvfs 0 when it is a VF,
 *                                    blocks until the file is removed, as the kernel waits
 *                                    for the process to let go (since 0.3)
 *   dev/vfio/                        exists (the test makes it, and a pcibind_ctx's dev root
 *                                    is ROOT/dev): the shim keeps the VFIO nodes devtmpfs
 *                                    would have, as empty 0600 files standing for character
 *                                    devices. Binding a device to a VFIO driver makes
 *                                    dev/vfio/GROUP (its iommu_group), and dev/vfio/devices/vfioN
 *                                    when dev/vfio/devices/ exists (a kernel with the VFIO
 *                                    character device); unbinding removes its vfioN, and GROUP
 *                                    once no device of the group is on a VFIO driver. The
 *                                    container dev/vfio/vfio and dev/iommu come with modules,
 *                                    not binds: the test makes them.
 *   dev/block/MAJ:MIN, dev/NAME      block device nodes (ptk_block_node() makes them, as udev and
 *                                    devtmpfs would): an O_EXCL open of one (without O_CREAT),
 *                                    how the library asks the kernel whether a disk is held,
 *                                    never reaches the device its number names. The shim gives
 *                                    the block layer's answer: the errno of a fault line
 *                                    open-excl:MAJ:MIN (below), else success, an O_PATH
 *                                    descriptor of the node (fstat() works on it, read() not).
 *                                    Without a node the library falls back to the proc files.
 *   module/vfio/parameters/enable_unsafe_noiommu_mode  "Y": a device with no iommu_group bound
 *                                    to a VFIO driver gets a group of its own, the lowest
 *                                    number free, with the node dev/vfio/noiommu-GROUP; both go
 *                                    when it is unbound (vfio_noiommu_group_alloc())
 *   bus/pci/drivers/DRV/fake_sriov_configure  exists for a PF driver that can create VFs
 *                                    (has sriov_configure): else sriov_numvfs answers ENOENT
 *   devices/.../BDF/fake_sriov_offset, fake_sriov_stride  the PF's First VF Offset and VF
 *                                    Stride (default 1 and 1)
 *   devices/.../BDF/fake_vf_modalias the modalias of the PF's VFs (default: the PF's with
 *                                    device ID + 1); the VFs of a PF in an IOMMU group get a
 *                                    group each (the lowest number free), released with the VF
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
 *       open-excl:MAJ:MIN ERRNO an O_EXCL open of a block device node under the root numbered
 *                               MAJ:MIN fails with ERRNO: EBUSY is a disk something holds
 *                               exclusively (mounted, a ZFS pool member, swap, a VM's disk)
 * and writes one: write.log, one line per write the shim intercepted,
 * "REL_PATH<TAB>VALUE<TAB>RESULT\n": VALUE is the bytes written with \n, \t, \\ and \xHH
 * escapes; RESULT is "ok" or the errno name (ENODEV, ...). REL_PATH names the file the open
 * reached, a device's driver_override always as bus/pci/devices/BDF/driver_override (and its
 * sriov_numvfs, sriov_drivers_autoprobe and remove likewise).
 *
 * ### Hot removal and rescan
 *
 * A device's `remove` file (ptk_remove() makes it: the tree has none) and bus/pci/rescan are
 * emulated too, as `echo 1 >` them acts (0 does nothing; not a number: EINVAL):
 *   remove    pci_stop_and_remove_bus_device(): the devices behind it (a bridge's) are removed
 *             first, and a PF's VFs; then the device is unbound (its vfio-dev/ and /dev/vfio
 *             nodes go, as an unbind's; a "vanish:BDF after-unbind" fault does not fire) and
 *             leaves the bus: its directory, its bus/pci/devices link, its IOMMU group
 *             membership (a group the shim made for a VF goes with its last device) and every
 *             link to it. An fd opened on one of its files before answers ENODEV to writes,
 *             as sysfs does (even once a rescan has brought the device back: its files are
 *             new ones), and a bind, unbind or drivers_probe naming it ENODEV; its paths are
 *             gone (ENOENT). A device that is no VF is still there behind the bus: its
 *             directory is kept as fake_removed/BDF (fake_removed/BDF/fake_removed_from holds
 *             where it was), reset to what a new device starts from: driver_override (null),
 *             sriov_numvfs 0, sriov_drivers_autoprobe 1. A VF is gone for good.
 *   rescan    pci_rescan_bus(): every device in fake_removed/ comes back where it was (a bridge
 *             before the devices behind it), with its bus/pci/devices link and its place in
 *             its IOMMU group (when the group is still there), unbound with no override, and
 *             is probed as a new device is: the first driver (by name) whose IDs match binds
 *             it. Its VFs do not come back (sriov_numvfs 0).
 *
 * ### Crashes and removals at a chosen write: PTK_KILL_AFTER_WRITE, PTK_REMOVE_AFTER_WRITE
 *
 * Two environment variables of the process that writes make the shim act after one of that
 * process's writes, to test what a caller does when it dies or loses a device in the middle of
 * a transaction (SPEC 3.12 and 3.13):
 *   PTK_KILL_AFTER_WRITE=N          after the N-th write, the shim kills the process with
 *                                   SIGKILL, as the OOM killer would: every thread at once,
 *                                   before write() returns to its caller
 *   PTK_REMOVE_AFTER_WRITE=N        after the N-th write, the device it concerned is
 *                                   hot-removed, as `echo 1 > remove` does (above): the device
 *                                   of the driver_override, sriov_numvfs,
 *                                   sriov_drivers_autoprobe or remove written, the device
 *                                   named in a bind, unbind or drivers_probe; new_id,
 *                                   remove_id and rescan concern none (a warning on stderr)
 *   PTK_REMOVE_AFTER_WRITE=N:BDF    after the N-th write, the device BDF is hot-removed
 *                                   (a device not on the bus then: nothing happens)
 * N counts from 1 the writes that write.log records (the kernel files above; one that fails
 * counts like one that succeeds) which this process makes, from any of its threads, while the
 * variable is set: from the start of the process, or from the last time the process set or
 * unset the variable (setenv(), putenv(), unsetenv() and clearenv() are caught; not a change
 * made to environ directly). So a test sets one for a single call: setenv("...", "2", 1), the
 * call, unsetenv(). A forked child counts its own writes from 0, and so does a program it
 * execs with the variable in its environment (unset it there when the count is not meant for
 * that program). The N-th write has taken effect and is in write.log when the shim acts (a
 * removal first, when both fire at one write), and no other write takes effect in between:
 * the writes are serialized. Each fires once; the count goes on past N. The variables are read
 * at each write: like $FAKE_SYSFS_ROOT, set them while no other thread runs. A value that is
 * not N (or N:BDF) with N >= 1 ends the process with status 99 at its next write. Neither a
 * removal nor a kill is in write.log (a write to a remove file is).
 * ptk_run_killed_after() runs a function in a child killed after its N-th write. */
#ifndef PCIBIND_TESTKIT_H
#define PCIBIND_TESTKIT_H

#ifdef __cplusplus
extern "C" {
#endif

/* ## Trees */

/* A new tree in a new temp dir under $TMPDIR (else /tmp): bus/pci/devices, bus/pci/drivers,
 * bus/pci/drivers_probe, devices/pci0000:00, module, kernel/iommu_groups and an empty
 * modprobe.table. Sets $FAKE_SYSFS_ROOT to it, which the shim and the fake modprobe (a child
 * process) act on. The caller removes it with ptk_destroy(). */
char *ptk_new(void);
/* Lays out the same empty tree in the directory `root` (created when missing; what it holds
 * already stays), e.g. a tree on tmpfs or below another directory of the test's, and leaves
 * the environment alone: set $FAKE_SYSFS_ROOT to the directory the shim is to act on. */
void ptk_init(const char *root);
/* Removes the tree and everything in it (links are removed, not followed) and frees `root`.
 * NULL does nothing. */
void ptk_destroy(char *root);

/* ## Drivers and modules */

/* A loaded module MODULE that registers PCI driver DRIVER: bus/pci/drivers/DRIVER with its
 * files and its module link, and module/MODULE/drivers/pci:DRIVER. */
void ptk_loaded_driver(const char *root, const char *module, const char *driver);
/* ptk_loaded_driver() plus fake_vfio: a VFIO driver (binding creates BDF/vfio-dev/vfioN). */
void ptk_vfio_driver(const char *root, const char *module, const char *driver);
/* What a module's init does: DRIVER appears in bus/pci/drivers/ complete, in one rename (its
 * files, its module link, fake_vfio when `vfio` is not 0, fake_ids holding `ids` unless NULL),
 * then module/MODULE/drivers/pci:DRIVER. Never half made for a concurrent reader. */
void ptk_register_driver(const char *root, const char *module, const char *driver, int vfio,
                         const char *ids);
/* A registered PCI driver with no module link (built in). If module is not NULL,
 * module/MODULE exists with only a version file (no drivers/), as for built-ins on 6.12. */
void ptk_builtin_driver(const char *root, const char *driver, const char *module);
/* A registered PCI driver whose driver dir links to its module, whose module dir has no
 * drivers/ directory. */
void ptk_driver_with_module_link_only(const char *root, const char *module, const char *driver);
/* A loaded module registering no PCI driver. */
void ptk_module(const char *root, const char *module);
/* Appends a glob to DRIVER's static ID table (fake_ids), e.g.
 * "pci:v00008086d000010D3sv*sd*bc*sc*i*": the shim's probe then claims matching devices. */
void ptk_driver_ids(const char *root, const char *driver, const char *pattern);

/* ## Devices */

/* A PCI device BDF ("0000:01:00.0") in devices/pci0000:00 with its modalias
 * ("pci:v...d...sv...sd...bc..sc..i.."), driver_override "(null)" and the bus/pci/devices
 * link; bound to DRIVER (both links) unless driver is NULL (unbound). DRIVER must exist. */
void ptk_device(const char *root, const char *bdf, const char *modalias, const char *driver);
/* The same in another parent directory (root-relative), e.g. "devices/pci0000:40" or, behind a
 * bridge, "devices/pci0000:00/0000:00:1c.0". */
void ptk_device_under(const char *root, const char *parent, const char *bdf,
                      const char *modalias, const char *driver);
/* Puts the device BDF (made by ptk_device() or ptk_device_under()) in IOMMU group `group`:
 * kernel/iommu_groups/GROUP/devices/BDF and the device's iommu_group link. Since 0.2. */
void ptk_iommu_group(const char *root, unsigned group, const char *bdf);

/* A block device node dev/NAME numbered MAJOR:MINOR, and the link dev/block/MAJOR:MINOR ->
 * ../NAME, as devtmpfs and udev make them (NAME may hold a '/'); the node of a disk found below a
 * device, which the library opens with O_EXCL (see dev/block above; a pcibind_ctx's dev root is
 * ROOT/dev). Making a node needs root (CAP_MKNOD): returns 0, or -1 with errno EPERM where it is
 * not permitted, so that a test can skip; any other failure ends the test. Since 0.3. */
int ptk_block_node(const char *root, const char *name, unsigned major, unsigned minor);

/* ## Faults and the fake modprobe */

/* Appends a line to fault.table (see "The kernel shim" above), e.g. "probe:vfio-pci ENODEV". */
void ptk_fault(const char *root, const char *line);
/* Adds a line to modprobe.table, what the fake modprobe does for each module:
 * "MOD DRV" (loading registers DRV; "MOD DRV vfio" marks it a VFIO driver for the kernel shim,
 * "MOD DRV ids=GLOB" gives it an ID table), "MOD -" (loads, registers no PCI driver), "MOD ="
 * (built in: succeeds, changes nothing), "MOD !TEXT" (fails: TEXT on stderr, exit 1),
 * "MOD sleep=SECONDS" (hangs: says so on stderr, starts a helper that holds stderr too, writes
 * both pids to modprobe.pids, exits 0 after SECONDS), "MOD unreapable=SECONDS" (hangs; once
 * killed it cannot be reaped for SECONDS: a helper in another process group ptraces it and
 * holds stderr; both pids in modprobe.pids; exits 3 "cannot ptrace" where ptrace is refused;
 * since 0.3), "MOD listfds" (writes the descriptors it started with to modprobe.fds, one a
 * line; exits 0; since 0.3). Modules not in the table fail as kmod
 * fails for an unknown module: "modprobe: FATAL: Module MOD not found in directory
 * /lib/modules/fake", exit 1.
 * A trailing " slow" on a loading line ("MOD DRV vfio slow") makes the load take a second, as a
 * real one takes a moment: module/MOD appears first with initstate "coming", DRV a second later,
 * then initstate "live".
 * As the kernel does, a load of a module whose directory exists changes nothing: one in flight
 * (initstate "coming") is waited for until "live" (finit_module blocks until the first load
 * ends), then modprobe exits 0, as it does at once for a module already loaded. Loads are
 * serialized by a flock on modprobe.lock in the tree, as the kernel's module_mutex does.
 * The fake modprobe takes exactly "-b MODULE", as libpcibind runs it. */
void ptk_modprobe_table(const char *root, const char *line);

/* ## Hot removal and crashes (the shim must be preloaded) */

/* Hot-removes the device BDF, as `echo 1 > /sys/bus/pci/devices/BDF/remove` does (see "Hot
 * removal and rescan" above): makes the device's remove file if it has none, then writes "1\n"
 * to it with open() and write(), which the shim turns into the removal (and logs in write.log).
 * No such device on the bus, or a failed write: a setup failure (status 99). Since 0.3. */
void ptk_remove(const char *root, const char *bdf);
/* `echo 1 > /sys/bus/pci/rescan`: every hot-removed device that is no VF comes back and is
 * probed (see above). Makes bus/pci/rescan if the tree has none. Since 0.3. */
void ptk_rescan(const char *root);
/* Runs fn(arg) in a forked child with PTK_KILL_AFTER_WRITE=n (n >= 1) set in its environment,
 * waits for it and returns its wait status, as waitpid(2) gives it: killed by SIGKILL
 * (WIFSIGNALED, WTERMSIG == SIGKILL) when the child made n writes, exited with 0 when fn
 * returned having made fewer. fn reports a failure of its own by exiting with another status
 * (exit(1)); a child exiting with 99 (a setup failure of the kit in it) ends the test with 99.
 * Stdio buffers are flushed before the fork. The child starts its count at 0; what it changes
 * in memory stays in it, what it writes to the tree stays there. A lock it takes on a file it
 * opens itself (libpcibind's device locks) goes when it dies, as a killed caller's does. A test
 * of crash safety loops n = 1, 2, ... until the child exits: each write of the transaction, in
 * turn, is the last one before its caller dies:
 *     for (unsigned n = 1;; n++) {
 *         int status = ptk_run_killed_after(n, bind_the_nic, &job);
 *         if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
 *             break;  // the bind made fewer than n writes: every cut was tried
 *         assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
 *         // check the next caller's recovery ...
 *     }
 * Since 0.3. */
int ptk_run_killed_after(unsigned n, void (*fn)(void *), void *arg);

/* ## What the kernel saw */

/* The contents of write.log ("" when nothing was written): one line per write the shim
 * intercepted, "REL_PATH<TAB>VALUE<TAB>RESULT". The caller frees it. */
char *ptk_write_log(const char *root);
/* The contents of modprobe.log ("" when the fake modprobe never ran), one line per run:
 * "argc=3 [ARGV0] [-b] [MODULE]". The caller frees it. */
char *ptk_modprobe_log(const char *root);
/* 1 when the device exists, its driver link names `driver` and the driver's BDF link leads
 * back to it; with driver NULL, 1 when the device exists and is bound to nothing; else 0. */
int ptk_is_bound_to(const char *root, const char *bdf, const char *driver);
/* The device's driver_override without its newline ("(null)" when unset), NULL when the device
 * has none; the caller frees it. */
char *ptk_override(const char *root, const char *bdf);

/* ## Files */

/* ROOT/REL; the caller frees it. */
char *ptk_path(const char *root, const char *rel);
/* Creates or replaces the file REL with `content`. */
void ptk_write(const char *root, const char *rel, const char *content);
/* The contents of REL, NULL when it cannot be opened; the caller frees it. */
char *ptk_read(const char *root, const char *rel);
/* Creates the directory REL and the missing ones above it (as mkdir -p). */
void ptk_mkdirs(const char *root, const char *rel);
/* Creates REL as a symlink to `target` (taken as it is: relative to REL's directory, or
 * absolute). */
void ptk_symlink(const char *root, const char *rel, const char *target);

#ifdef __cplusplus
}
#endif

#endif
