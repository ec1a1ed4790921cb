/* kernel-shim: an LD_PRELOAD module for the tests. Writes into a fake sysfs tree (the directory
 * named by $FAKE_SYSFS_ROOT when the file is opened) get the kernel's effects, synchronously:
 *
 *   bus/pci/devices/BDF/driver_override   (or any path ending in /driver_override)
 *   bus/pci/drivers/DRV/bind, unbind, new_id, remove_id
 *   bus/pci/drivers_probe
 *   bus/pci/devices/BDF/sriov_numvfs, sriov_drivers_autoprobe  (SR-IOV, drivers/pci/iov.c)
 *   bus/pci/devices/BDF/remove, bus/pci/rescan  (hot removal, drivers/pci/pci-sysfs.c)
 *
 * An open of one of these files for writing is remembered by fd; a write() to that fd is
 * emulated (links created or removed, driver_override rewritten) and never stores its bytes in
 * the file. The opens caught are open(), open64(), openat(), openat64() and openat2() called
 * through syscall(), which is how the library opens every file beneath the sysfs root (or, where
 * openat2 is refused, openat() of one name in a directory the library holds). The file is the
 * one the open reached, as the kernel sees it, whatever path led there: a link out of the root
 * leads to an ordinary file, written as such. Everything else passes straight through to libc.
 * The emulation reads the tree's own conventions, all described in pcibind-testkit.h: DRV/fake_ids
 * (static ID table, fnmatch globs against the modalias), DRV/fake_dynids (IDs added by new_id),
 * DRV/fake_vfio (a VFIO driver: binding creates BDF/vfio-dev/vfioN, the lowest free N, and in
 * a tree with dev/vfio/ the nodes devtmpfs would gain: the group's, and vfio/devices/vfioN),
 * ROOT/fault.table (fault injection, and race: lines swapping a path for a link at an open) and
 * ROOT/write.log (one line per intercepted write). Both name a device's driver_override
 * bus/pci/devices/BDF/driver_override however it was reached (and its sriov_numvfs and
 * sriov_drivers_autoprobe likewise).
 *
 * SR-IOV follows drivers/pci/iov.c (sriov_numvfs_store(), checked in that order): a count that
 * is no u16 is EINVAL; more than sriov_totalvfs ERANGE; the current count succeeds doing
 * nothing; a PF bound to no driver, or to one without sriov_configure (here: a driver without
 * DRV/fake_sriov_configure), ENOENT; 0 removes the VFs (each unbound first, as device removal
 * does); any other count while VFs exist EBUSY. Creating VF i gives it the address of routing
 * ID PF + First VF Offset + i * VF Stride (BDF/fake_sriov_offset and fake_sriov_stride, default
 * 1 and 1), a directory beside the PF's with modalias (BDF/fake_vf_modalias, else the PF's with
 * device ID + 1), driver_override (null), physfn -> ../PF, the PF's virtfnI -> ../VF and the
 * bus/pci/devices link, then probes it as device_attach() does. A probe of a VF that has no
 * driver_override fails (ENODEV) while its PF's sriov_drivers_autoprobe reads 0
 * (pci_iov_device_can_probe() in drivers/pci/pci-driver.c): bind answers ENODEV, drivers_probe
 * and the probe at creation leave it unbound.
 *
 * Hot removal (remove_store(), pci_stop_and_remove_bus_device()) unbinds the device and the
 * devices behind it, takes a PF's VFs, and takes it off the bus as vanish() does; a device that
 * is no VF is kept aside in ROOT/fake_removed/BDF, where a rescan finds it, puts it back and
 * probes it.
 *
 * Two environment variables make the shim act after the N-th write of the process (counted
 * while the variable is set, per process, from its start or from its last setenv()/unsetenv()
 * of the variable, which the shim catches): PTK_KILL_AFTER_WRITE=N kills it with SIGKILL,
 * PTK_REMOVE_AFTER_WRITE=N[:BDF] hot-removes the device the write concerned (or BDF).
 *
 * Block devices: an O_EXCL open of a block device node under the fake root (a test makes them
 * with mknod) never reaches the device the node names; the shim gives the block layer's answer
 * (block_node_open(): EBUSY from fault.table's "open-excl:MAJ:MIN EBUSY" for a disk held
 * exclusively, else success).
 *
 * As a safety net the shim also refuses, with EACCES, any open for writing of a path under the
 * real /sys: tests must never write it. */
#undef _FORTIFY_SOURCE /* its inline wrappers would clash with our definitions of open() */
#undef _FILE_OFFSET_BITS /* it renames open() to open64(): we define both, separately */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/openat2.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* sysfs hands a store at most one page; driver_override refuses values that long. */
#define SYSFS_PAGE 4096
#define MAX_TRACKED_FD 65536
#define PCI_ANY_ID 0xffffffffu

/* ---- The real libc functions --------------------------------------------------------------- */

static struct {
    int (*open)(const char *, int, ...);
    int (*open64)(const char *, int, ...);
    int (*openat)(int, const char *, int, ...);
    int (*openat64)(int, const char *, int, ...);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*pwrite)(int, const void *, size_t, off_t);
    ssize_t (*pwrite64)(int, const void *, size_t, off64_t);
    int (*close)(int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    long (*syscall)(long, ...);
    int (*setenv)(const char *, const char *, int);
    int (*unsetenv)(const char *);
    int (*putenv)(char *);
    int (*clearenv)(void);
} real;

static void resolve_one(void *slot, const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fprintf(stderr, "kernel-shim: dlsym(%s): %s\n", name, dlerror());
        abort();
    }
    /* memcpy: ISO C has no cast from an object pointer to a function pointer. */
    memcpy(slot, &p, sizeof p);
}

#define RESOLVE(f) resolve_one(&real.f, #f)

static void resolve_all(void)
{
    RESOLVE(open);
    RESOLVE(open64);
    RESOLVE(openat);
    RESOLVE(openat64);
    RESOLVE(write);
    RESOLVE(writev);
    RESOLVE(pwrite);
    RESOLVE(pwrite64);
    RESOLVE(close);
    RESOLVE(dup);
    RESOLVE(dup2);
    RESOLVE(dup3);
    RESOLVE(syscall);
    RESOLVE(setenv);
    RESOLVE(unsetenv);
    RESOLVE(putenv);
    RESOLVE(clearenv);
}

static pthread_once_t resolved = PTHREAD_ONCE_INIT;

static void init(void)
{
    pthread_once(&resolved, resolve_all);
}

/* ---- State ------------------------------------------------------------------------------- */

/* Set while the shim itself works, so its own calls are never intercepted. */
static _Thread_local int in_shim;

/* One lock for the fd table and for every emulated write: the tests write from many threads. */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;

/* The lock of the shim's heap (below), taken inside state_lock, never around it. */
static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;

enum kind {
    K_OVERRIDE, K_BIND, K_UNBIND, K_NEW_ID, K_REMOVE_ID, K_PROBE, K_NUMVFS, K_AUTOPROBE,
    K_REMOVE, K_RESCAN
};

struct tracked {
    enum kind kind;
    char *root;    /* the fake root when the file was opened */
    char *abs;     /* the file, as opened (normalized) */
    char *rel;     /* what write.log and fault.table name: driver_override by its bus path */
    char *reached; /* relative to root, the path that reached it (fault.table may name it) */
    char *driver;  /* DRV for the drivers/DRV/ files, BDF for a device's sriov_* and remove */
};

/* tracked_fd[fd] is set while files[fd] holds an entry; it lets untracked fds (nearly all)
 * pass through without taking the lock. */
static atomic_uchar tracked_fd[MAX_TRACKED_FD];
static struct tracked *files[MAX_TRACKED_FD];

/* Both locks are taken across fork(), so that a child finds them free and the state whole. */
static void prepare_fork(void)
{
    pthread_mutex_lock(&state_lock);
    pthread_mutex_lock(&heap_lock);
}

static void after_fork(void)
{
    pthread_mutex_unlock(&heap_lock);
    pthread_mutex_unlock(&state_lock);
}

static void restart_knobs(void);

/* The write counts of PTK_KILL_AFTER_WRITE and PTK_REMOVE_AFTER_WRITE are per process. */
static void after_fork_child(void)
{
    restart_knobs();
    pthread_mutex_unlock(&heap_lock);
    pthread_mutex_unlock(&state_lock);
}

__attribute__((constructor)) static void shim_init(void)
{
    init();
    pthread_atfork(prepare_fork, after_fork, after_fork_child);
}

/* ---- Safe in a forked child -------------------------------------------------------------- */

/* The shim emulates writes made in forked children of multithreaded processes: libpcibind
 * makes a write that may wait for a VMM (an unbind from a VFIO driver, sriov_numvfs = 0) in a
 * child it forks (Sysfs::write_within in src/os/sysfs/write.rs), which makes async-signal-safe calls
 * only. write() is one; the shim's emulation of it runs in that child. After fork() only the
 * forking thread goes on in the child, and a lock another thread held at that moment stays
 * held there for good. glibc's malloc resets its locks in the child; the allocator of GCC 12's
 * AddressSanitizer does not, nor does stdio a stream's: under ASan, the child of test-bind's
 * four_threads_race_on_one_device hung now and then in malloc() under read_all(), until the
 * library gave up after 60 s and reported the device held by a VMM. So the shim allocates from
 * a heap of its own, whose lock is taken across fork() like state_lock, and calls no libc
 * function that allocates or takes a lock of libc's (stdio, opendir(), glob(), nftw(), qsort(),
 * realpath(NULL), strdup(), vasprintf(), strerror()): files are read and written with open(),
 * read(), write() and close(), directories listed with getdents64, diagnostics written to fd 2
 * in one write(). The pragmas keep it so. The heap hands out blocks of 16 bytes to 64 KiB, in
 * powers of two, each size with a free list of its own, carved from chunks mapped with mmap()
 * and never unmapped; a larger block is a mapping of its own. */

/* AddressSanitizer and valgrind's memcheck are told of the heap's blocks, so that they check
 * the shim's use of them as they check malloc()'s: the bytes past those asked for, and a block
 * given back, are out of bounds (the macros do nothing outside their runs). */
#if __has_include(<sanitizer/asan_interface.h>)
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MALLOCLIKE_BLOCK(addr, size, rz, zeroed) ((void)0)
#define VALGRIND_FREELIKE_BLOCK(addr, rz) ((void)0)
#define VALGRIND_MAKE_MEM_NOACCESS(addr, size) ((void)0)
#endif

#pragma GCC poison malloc calloc realloc free strdup strndup asprintf vasprintf realpath
#pragma GCC poison fopen fdopen opendir fdopendir scandir glob nftw ftw qsort strerror
#pragma GCC poison printf fprintf vfprintf dprintf puts fputs fputc fwrite perror

#define HEAP_CLASSES 13 /* 16 << 12: 64 KiB */
#define HEAP_CHUNK ((size_t)1 << 20)

struct heap_block {
    struct heap_block *next; /* on its size's free list */
    size_t cap;              /* the bytes after the header */
    size_t size;             /* of them, those asked for */
    size_t cls;              /* its size's list, or HEAP_CLASSES for a mapping of its own */
    max_align_t payload[];
};

static struct heap_block *heap_lists[HEAP_CLASSES];
static char *heap_next, *heap_end; /* what is left of the last chunk */

static void *handed_out(struct heap_block *b, size_t n)
{
    b->size = n;
    ASAN_UNPOISON_MEMORY_REGION(b->payload, n);
    ASAN_POISON_MEMORY_REGION((char *)b->payload + n, b->cap - n);
    VALGRIND_MAKE_MEM_NOACCESS((char *)b->payload + n, b->cap - n);
    VALGRIND_MALLOCLIKE_BLOCK(b->payload, n, 0, 0);
    return b->payload;
}

static struct heap_block *block_of(void *p)
{
    return (struct heap_block *)(void *)((char *)p - offsetof(struct heap_block, payload));
}

static void *shim_malloc(size_t n)
{
    size_t cls = 0;
    while (cls < HEAP_CLASSES && ((size_t)16 << cls) < n)
        cls++;
    struct heap_block *b;
    if (cls == HEAP_CLASSES) {
        if (n > SIZE_MAX / 2)
            return NULL;
        b = mmap(NULL, sizeof *b + n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (b == MAP_FAILED)
            return NULL;
        b->cap = n;
        b->cls = HEAP_CLASSES;
        return handed_out(b, n);
    }
    size_t cap = (size_t)16 << cls;
    pthread_mutex_lock(&heap_lock);
    b = heap_lists[cls];
    if (b) {
        heap_lists[cls] = b->next;
    } else {
        if ((size_t)(heap_end - heap_next) < sizeof *b + cap) {
            char *chunk = mmap(NULL, HEAP_CHUNK, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (chunk == MAP_FAILED) {
                pthread_mutex_unlock(&heap_lock);
                return NULL;
            }
            heap_next = chunk;
            heap_end = chunk + HEAP_CHUNK;
        }
        b = (struct heap_block *)(void *)heap_next;
        heap_next += sizeof *b + cap;
        b->cap = cap;
        b->cls = cls;
    }
    pthread_mutex_unlock(&heap_lock);
    return handed_out(b, n);
}

static void shim_free(void *p)
{
    if (!p)
        return;
    struct heap_block *b = block_of(p);
    VALGRIND_FREELIKE_BLOCK(p, 0);
    if (b->cls == HEAP_CLASSES) {
        ASAN_UNPOISON_MEMORY_REGION(p, b->cap); /* the next mapping there is someone else's */
        munmap(b, sizeof *b + b->cap);
        return;
    }
    ASAN_POISON_MEMORY_REGION(p, b->cap);
    pthread_mutex_lock(&heap_lock);
    b->next = heap_lists[b->cls];
    heap_lists[b->cls] = b;
    pthread_mutex_unlock(&heap_lock);
}

static void *shim_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = shim_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

static void *shim_realloc(void *p, size_t n)
{
    if (!p)
        return shim_malloc(n);
    size_t had = block_of(p)->size;
    if (n <= had)
        return p;
    void *q = shim_malloc(n);
    if (q) {
        memcpy(q, p, had);
        shim_free(p);
    }
    return q;
}

/* A diagnostic on stderr (fmt ends with its newline), in one write(). */
static void shim_warn(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n > 0)
        real.write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

/* ---- Small helpers ----------------------------------------------------------------------- */

static void *check_alloc(void *p)
{
    if (!p) {
        shim_warn("kernel-shim: out of memory\n");
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    n = strnlen(s, n);
    char *d = check_alloc(shim_malloc(n + 1));
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, SIZE_MAX);
}

static char *pathf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = check_alloc(n < 0 ? NULL : shim_malloc((size_t)n + 1));
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* `text` with its `cut` bytes from `at` replaced by `insert`. */
static char *text_splice(const char *text, size_t at, size_t cut, const char *insert)
{
    size_t len = strlen(text), ins = strlen(insert);
    char *s = check_alloc(shim_malloc(len - cut + ins + 1));
    memcpy(s, text, at);
    memcpy(s + at, insert, ins);
    memcpy(s + at + ins, text + at + cut, len - at - cut + 1);
    return s;
}

/* The whole file, or NULL (errno set) when it cannot be opened. */
static char *read_all(const char *path)
{
    int fd = real.open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 256, len = 0;
    char *buf = check_alloc(shim_malloc(cap));
    for (;;) {
        if (cap - len - 1 == 0)
            buf = check_alloc(shim_realloc(buf, cap *= 2));
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    real.close(fd);
    buf[len] = '\0';
    return buf;
}

/* A file's contents without its one trailing newline (as sysfs shows attributes). */
static char *read_attr(const char *path)
{
    char *s = read_all(path);
    if (s) {
        size_t len = strlen(s);
        if (len && s[len - 1] == '\n')
            s[len - 1] = '\0';
    }
    return s;
}

/* Writes `content` to the file, created if need be: replacing its contents (mode "we") or
 * after them ("ae"). 0 or the errno. */
static int write_file(const char *path, const char *mode, const char *content)
{
    int fd = real.open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (mode[0] == 'a' ? O_APPEND : O_TRUNC),
                       0666);
    if (fd < 0)
        return errno;
    int err = 0;
    for (size_t done = 0, len = strlen(content); done < len && !err;) {
        ssize_t n = real.write(fd, content + done, len - done);
        if (n > 0)
            done += (size_t)n;
        else if (n == 0 || errno != EINTR)
            err = n == 0 ? EIO : errno;
    }
    if (real.close(fd) != 0 && !err)
        err = errno;
    return err;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* realpath(path, NULL) without libc's allocation: the kernel's name of what an O_PATH open of
 * the path reaches. NULL (errno set) when it reaches nothing. */
static char *canonical(const char *path)
{
    int fd = real.open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    int err = errno;
    real.close(fd);
    if (n <= 0 || target[0] != '/') {
        errno = n < 0 ? err : ENOENT;
        return NULL;
    }
    target[n] = '\0';
    return xstrdup(target);
}

/* qsort() may allocate: a heapsort of names. */
static void sift_down(char **v, size_t i, size_t n)
{
    for (;;) {
        size_t top = i, l = 2 * i + 1, r = l + 1;
        if (l < n && strcmp(v[l], v[top]) > 0)
            top = l;
        if (r < n && strcmp(v[r], v[top]) > 0)
            top = r;
        if (top == i)
            return;
        char *t = v[i];
        v[i] = v[top];
        v[top] = t;
        i = top;
    }
}

static void sort_names(char **v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t end = n; end-- > 1;) {
        char *t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift_down(v, 0, end);
    }
}

struct dirent64_raw {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* The entries of a directory (not . and ..), sorted by strcmp, NULL-terminated; NULL-free. */
static char **list_dir(const char *path, int dirs_only)
{
    size_t n = 0, cap = 16;
    char **names = check_alloc(shim_malloc(cap * sizeof *names));
    int fd = real.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _Alignas(struct dirent64_raw) char buf[4096];
    long got;
    while (fd >= 0 && (got = real.syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < got;) {
            const struct dirent64_raw *e = (const void *)(buf + off);
            off += e->d_reclen;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            if (dirs_only) {
                char *p = pathf("%s/%s", path, e->d_name);
                int ok = is_dir(p);
                shim_free(p);
                if (!ok)
                    continue;
            }
            if (n + 1 >= cap)
                names = check_alloc(shim_realloc(names, (cap *= 2) * sizeof *names));
            names[n++] = xstrdup(e->d_name);
        }
    }
    if (fd >= 0)
        real.close(fd);
    sort_names(names, n);
    names[n] = NULL;
    return names;
}

static void free_list(char **names)
{
    for (char **p = names; *p; p++)
        shim_free(*p);
    shim_free(names);
}

/* rm -rf: a directory's entries first; links are removed, never followed. */
static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    char **names = list_dir(path, 0);
    for (char **n = names; *n; n++) {
        char *p = pathf("%s/%s", path, *n);
        rm_rf(p);
        shim_free(p);
    }
    free_list(names);
    rmdir(path);
}

/* ---- errno names ------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int value;
} errnos[] = {
    {"EPERM", EPERM},         {"ENOENT", ENOENT},       {"ESRCH", ESRCH},
    {"EINTR", EINTR},         {"EIO", EIO},             {"ENXIO", ENXIO},
    {"E2BIG", E2BIG},         {"ENOEXEC", ENOEXEC},     {"EBADF", EBADF},
    {"ECHILD", ECHILD},       {"EAGAIN", EAGAIN},       {"ENOMEM", ENOMEM},
    {"EACCES", EACCES},       {"EFAULT", EFAULT},       {"EBUSY", EBUSY},
    {"EEXIST", EEXIST},       {"EXDEV", EXDEV},         {"ENODEV", ENODEV},
    {"ENOTDIR", ENOTDIR},     {"EISDIR", EISDIR},       {"EINVAL", EINVAL},
    {"ENFILE", ENFILE},       {"EMFILE", EMFILE},       {"ENOTTY", ENOTTY},
    {"EFBIG", EFBIG},         {"ENOSPC", ENOSPC},       {"ESPIPE", ESPIPE},
    {"EROFS", EROFS},         {"EMLINK", EMLINK},       {"EPIPE", EPIPE},
    {"ERANGE", ERANGE},       {"EDEADLK", EDEADLK},     {"ENAMETOOLONG", ENAMETOOLONG},
    {"ENOSYS", ENOSYS},       {"ENODATA", ENODATA},     {"ETIME", ETIME},
    {"EOPNOTSUPP", EOPNOTSUPP}, {"ENOTSUP", ENOTSUP},   {"ETIMEDOUT", ETIMEDOUT},
    {"EALREADY", EALREADY},   {"EINPROGRESS", EINPROGRESS}, {"ECANCELED", ECANCELED},
    {"ESHUTDOWN", ESHUTDOWN}, {"EWOULDBLOCK", EWOULDBLOCK}, {"EHWPOISON", EHWPOISON},
};

static const char *errno_name(int e)
{
    static _Thread_local char buf[16];
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
        if (errnos[i].value == e)
            return errnos[i].name;
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

/* An errno name, or a plain positive number; 0 when neither. */
static int errno_from_name(const char *s)
{
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
        if (!strcmp(errnos[i].name, s))
            return errnos[i].value;
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v > 0 && v < 4096 ? (int)v : 0;
}

/* ---- Which files are the kernel's --------------------------------------------------------- */

/* `abs` (absolute) with "//", "." and ".." resolved lexically. */
static char *normalize(const char *abs)
{
    char *out = check_alloc(shim_malloc(strlen(abs) + 2));
    size_t o = 0;
    const char *p = abs;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchrnul(p, '/');
        size_t len = (size_t)(e - p);
        if (len == 1 && p[0] == '.') {
            /* nothing */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p = e;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return out;
}

/* The part of `path` below `dir` (both normalized), or NULL. */
static const char *below(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n <= 1 || strncmp(path, dir, n) != 0 || path[n] != '/' || !path[n + 1])
        return NULL;
    return path + n + 1;
}

/* The absolute, normalized path an open(at) names, or NULL. */
static char *absolute(int dirfd, const char *path)
{
    char *joined;
    if (path[0] == '/') {
        joined = xstrdup(path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base))
                return NULL;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n <= 0 || base[0] != '/')
                return NULL;
            base[n] = '\0';
        }
        joined = pathf("%s/%s", base, path);
    }
    char *norm = normalize(joined);
    shim_free(joined);
    return norm;
}

static int is_real_sys(const char *abs)
{
    if (!strcmp(abs, "/sys") || !strncmp(abs, "/sys/", 5))
        return 1;
    char *resolved = canonical(abs);
    int sys = resolved && (!strcmp(resolved, "/sys") || !strncmp(resolved, "/sys/", 5));
    shim_free(resolved);
    return sys;
}

static void free_tracked(struct tracked *t)
{
    if (!t)
        return;
    shim_free(t->root);
    shim_free(t->abs);
    shim_free(t->rel);
    shim_free(t->reached);
    shim_free(t->driver);
    shim_free(t);
}

/* A tracked-file record when `abs` is one of the kernel files under the fake root. */
static struct tracked *classify(const char *abs)
{
    const char *env = getenv("FAKE_SYSFS_ROOT");
    if (!env || env[0] != '/')
        return NULL;
    char *root = normalize(env);
    const char *rel = below(abs, root);
    if (!rel) {
        /* A path found through /proc/self/fd is canonical; the root may not be. */
        char *real_root = canonical(root);
        const char *r = real_root ? below(abs, real_root) : NULL;
        if (!r) {
            shim_free(real_root);
            shim_free(root);
            return NULL;
        }
        shim_free(root);
        root = real_root;
        rel = r;
    }

    char *copy = xstrdup(rel);
    char *comp[8];
    size_t n = 0;
    char *save = NULL;
    const char *last = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (n < 8)
            comp[n] = c;
        n++;
    }

    struct tracked *t = check_alloc(shim_calloc(1, sizeof *t));
    int ok = 1;
    if (n == 3 && !strcmp(comp[0], "bus") && !strcmp(comp[1], "pci") &&
        !strcmp(comp[2], "drivers_probe")) {
        t->kind = K_PROBE;
    } else if (n == 3 && !strcmp(comp[0], "bus") && !strcmp(comp[1], "pci") &&
               !strcmp(comp[2], "rescan")) {
        t->kind = K_RESCAN;
    } else if (n == 5 && !strcmp(comp[0], "bus") && !strcmp(comp[1], "pci") &&
               !strcmp(comp[2], "drivers") &&
               (!strcmp(comp[4], "bind") || !strcmp(comp[4], "unbind") ||
                !strcmp(comp[4], "new_id") || !strcmp(comp[4], "remove_id"))) {
        t->kind = !strcmp(comp[4], "bind")     ? K_BIND
                  : !strcmp(comp[4], "unbind") ? K_UNBIND
                  : !strcmp(comp[4], "new_id") ? K_NEW_ID
                                               : K_REMOVE_ID;
        t->driver = xstrdup(comp[3]);
    } else if (n >= 2 && (!strcmp(last, "sriov_numvfs") ||
                          !strcmp(last, "sriov_drivers_autoprobe") || !strcmp(last, "remove"))) {
        t->kind = !strcmp(last, "sriov_numvfs")   ? K_NUMVFS
                  : !strcmp(last, "remove")       ? K_REMOVE
                                                  : K_AUTOPROBE;
        const char *end = last - 1, *dev = end;
        while (dev > rel && dev[-1] != '/')
            dev--;
        t->driver = xstrndup(dev, (size_t)(end - dev));
        t->rel = pathf("bus/pci/devices/%s/%s", t->driver, last);
    } else if (n >= 2 && !strcmp(last, "driver_override")) {
        t->kind = K_OVERRIDE;
        /* The device is its directory's name (a device's directory is named by its BDF). */
        const char *end = last - 1, *dev = end;
        while (dev > rel && dev[-1] != '/')
            dev--;
        t->rel = pathf("bus/pci/devices/%.*s/driver_override", (int)(end - dev), dev);
    } else {
        ok = 0;
    }
    if (ok) {
        t->root = root;
        t->abs = xstrdup(abs);
        t->reached = xstrdup(rel);
        if (!t->rel)
            t->rel = xstrdup(rel);
        root = NULL;
    } else {
        free_tracked(t);
        t = NULL;
    }
    shim_free(copy);
    shim_free(root);
    return t;
}

/* ---- The fd table ------------------------------------------------------------------------ */

static int is_tracked(int fd)
{
    return fd >= 0 && fd < MAX_TRACKED_FD &&
           atomic_load_explicit(&tracked_fd[fd], memory_order_acquire);
}

/* Records what fd now refers to (t NULL: nothing of ours). Takes ownership of t. */
static void set_tracked(int fd, struct tracked *t)
{
    if (fd < 0 || fd >= MAX_TRACKED_FD) {
        free_tracked(t);
        return;
    }
    if (!t && !is_tracked(fd))
        return;
    pthread_mutex_lock(&state_lock);
    free_tracked(files[fd]);
    files[fd] = t;
    atomic_store_explicit(&tracked_fd[fd], t != NULL, memory_order_release);
    pthread_mutex_unlock(&state_lock);
}

static struct tracked *copy_tracked(int fd)
{
    struct tracked *c = NULL;
    pthread_mutex_lock(&state_lock);
    const struct tracked *t = fd >= 0 && fd < MAX_TRACKED_FD ? files[fd] : NULL;
    if (t) {
        c = check_alloc(shim_calloc(1, sizeof *c));
        c->kind = t->kind;
        c->root = xstrdup(t->root);
        c->abs = xstrdup(t->abs);
        c->rel = xstrdup(t->rel);
        c->reached = xstrdup(t->reached);
        c->driver = t->driver ? xstrdup(t->driver) : NULL;
    }
    pthread_mutex_unlock(&state_lock);
    return c;
}

/* ---- Fault injection --------------------------------------------------------------------- */

/* Fires the first armed line of ROOT/fault.table ("TARGET FAULT [COUNT [SKIP]]") whose TARGET is
 * one of `targets` and whose FAULT is the literal `want` or, when want is NULL, an errno name. A
 * line with a COUNT fires that many times: the count is decremented in the file. A line with a
 * SKIP first lets that many matching events pass (decrementing SKIP), so a fault can hit, say,
 * the second write of driver_override (a restore step) and not the first. Returns the errno (or
 * 1 for a literal fault), 0 when nothing fired. */
static int fault_fire(const char *root, const char *const *targets, size_t ntargets,
                      const char *want)
{
    char *path = pathf("%s/fault.table", root);
    char *text = read_all(path);
    int fired = 0, consumed = 0;
    for (char *line = text; line && *line && !fired && !consumed;) {
        size_t len = strcspn(line, "\n");
        char *copy = xstrndup(line, len);
        char *save = NULL;
        char *target = strtok_r(copy, " \t\r", &save);
        char *fault = target ? strtok_r(NULL, " \t\r", &save) : NULL;
        char *count = fault ? strtok_r(NULL, " \t\r", &save) : NULL;
        char *skip = count ? strtok_r(NULL, " \t\r", &save) : NULL;
        char *extra = skip ? strtok_r(NULL, " \t\r", &save) : NULL;
        int wanted = 0;
        for (size_t i = 0; target && i < ntargets; i++)
            wanted |= !strcmp(target, targets[i]);
        if (wanted && fault && !extra) {
            int e = want ? !strcmp(fault, want) : errno_from_name(fault);
            if (!want && !e)
                shim_warn("kernel-shim: fault.table: unknown errno %s\n", fault);
            long left = -1;
            if (e && count) {
                char *end;
                left = strtol(count, &end, 10);
                if (*end || left < 0) {
                    shim_warn("kernel-shim: fault.table: bad count %s\n", count);
                    e = 0;
                }
            }
            long skipping = 0;
            if (e && skip) {
                char *end;
                skipping = strtol(skip, &end, 10);
                if (*end || skipping < 0) {
                    shim_warn("kernel-shim: fault.table: bad skip %s\n", skip);
                    e = 0;
                }
            }
            if (e && left != 0) {
                if (skipping == 0)
                    fired = e;
                if (count) {
                    char *counted = skipping > 0
                                        ? pathf("%s %s %ld %ld", target, fault, left, skipping - 1)
                                        : pathf("%s %s %ld", target, fault, left - 1);
                    char *rewritten = text_splice(text, (size_t)(line - text), len, counted);
                    write_file(path, "we", rewritten);
                    shim_free(rewritten);
                    shim_free(counted);
                }
                /* A skipped event is this line's: no later line sees it. */
                consumed = skipping > 0;
            }
        }
        shim_free(copy);
        line += len;
        if (*line)
            line++;
    }
    shim_free(text);
    shim_free(path);
    return fired;
}

/* Fires the race lines of ROOT/fault.table for `name`, a kernel file about to be opened for
 * writing (named as in write.log): "race:NAME PATH LINK" moves PATH (root-relative) aside to
 * PATH.raced and puts a symlink to LINK in its place, just before the open, then the line is
 * dropped. It plays an attacker who wins, once, the race between a program's lookups and its
 * open. Called with in_shim set. */
static void race_fire(const char *root, const char *name)
{
    char *path = pathf("%s/fault.table", root);
    pthread_mutex_lock(&state_lock);
    char *text = read_all(path);
    char *kept = check_alloc(shim_calloc(1, text ? strlen(text) + 1 : 1));
    int fired = 0;
    for (char *line = text; line && *line;) {
        size_t len = strcspn(line, "\n");
        char *copy = xstrndup(line, len);
        char *save = NULL;
        char *target = strtok_r(copy, " \t\r", &save);
        char *swap = target ? strtok_r(NULL, " \t\r", &save) : NULL;
        char *link = swap ? strtok_r(NULL, " \t\r", &save) : NULL;
        if (link && !strncmp(target, "race:", 5) && !strcmp(target + 5, name)) {
            char *p = pathf("%s/%s", root, swap);
            char *aside = pathf("%s.raced", p);
            if (rename(p, aside) != 0 || symlink(link, p) != 0)
                shim_warn("kernel-shim: race on %s: %s\n", p, errno_name(errno));
            shim_free(aside);
            shim_free(p);
            fired = 1;
        } else {
            strncat(kept, line, len + (line[len] == '\n'));
        }
        shim_free(copy);
        line += len;
        if (*line)
            line++;
    }
    if (fired)
        write_file(path, "we", kept);
    pthread_mutex_unlock(&state_lock);
    shim_free(kept);
    shim_free(text);
    shim_free(path);
}

/* ---- The device model -------------------------------------------------------------------- */

struct ctx {
    const char *root;
    char *real_root;
};

struct device {
    char *name;     /* BDF */
    char *dir;      /* its directory, canonical */
    char *rel;      /* the same, relative to the root */
    char *modalias; /* without newline */
    char *override; /* NULL when unset */
    char *driver;   /* bound driver, NULL when unbound */
};

static void free_device(struct device *d)
{
    shim_free(d->name);
    shim_free(d->dir);
    shim_free(d->rel);
    shim_free(d->modalias);
    shim_free(d->override);
    shim_free(d->driver);
    memset(d, 0, sizeof *d);
}

static int valid_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..") && strlen(s) < NAME_MAX;
}

/* The device named exactly `name` on the bus; ENODEV when there is none. */
static int load_device(const struct ctx *c, const char *name, struct device *d)
{
    memset(d, 0, sizeof *d);
    if (!valid_name(name) || !c->real_root)
        return ENODEV;
    char *link = pathf("%s/bus/pci/devices/%s", c->root, name);
    d->dir = canonical(link);
    shim_free(link);
    const char *rel = d->dir && is_dir(d->dir) ? below(d->dir, c->real_root) : NULL;
    if (!rel) {
        free_device(d);
        return ENODEV;
    }
    d->name = xstrdup(name);
    d->rel = xstrdup(rel);

    char *p = pathf("%s/modalias", d->dir);
    d->modalias = read_attr(p);
    shim_free(p);
    if (!d->modalias)
        d->modalias = xstrdup("");

    p = pathf("%s/driver_override", d->dir);
    d->override = read_attr(p);
    shim_free(p);
    if (d->override && (!*d->override || !strcmp(d->override, "(null)"))) {
        shim_free(d->override);
        d->override = NULL;
    }

    p = pathf("%s/driver", d->dir);
    char target[PATH_MAX];
    ssize_t n = readlink(p, target, sizeof target - 1);
    shim_free(p);
    if (n > 0) {
        target[n] = '\0';
        const char *base = strrchr(target, '/');
        d->driver = xstrdup(base ? base + 1 : target);
    }
    return 0;
}

struct pci_id {
    unsigned vendor, device, subvendor, subdevice, class_, class_mask;
};

static int parse_modalias(const char *m, struct pci_id *id)
{
    unsigned bc, sc, pi;
    if (sscanf(m, "pci:v%8Xd%8Xsv%8Xsd%8Xbc%2Xsc%2Xi%2X", &id->vendor, &id->device,
               &id->subvendor, &id->subdevice, &bc, &sc, &pi) != 7)
        return 0;
    id->class_ = bc << 16 | sc << 8 | pi;
    id->class_mask = 0;
    return 1;
}

/* A new_id/remove_id/fake_dynids line, with the kernel's defaults; the number of fields. */
static int parse_dynid(const char *s, struct pci_id *id, unsigned long *driver_data)
{
    *id = (struct pci_id){0, 0, PCI_ANY_ID, PCI_ANY_ID, 0, 0};
    unsigned long dd = 0;
    int n = sscanf(s, "%x %x %x %x %x %x %lx", &id->vendor, &id->device, &id->subvendor,
                   &id->subdevice, &id->class_, &id->class_mask, &dd);
    if (driver_data)
        *driver_data = dd;
    return n;
}

/* pci_match_one_device() */
static int id_matches(const struct pci_id *id, const struct pci_id *dev)
{
    return (id->vendor == PCI_ANY_ID || id->vendor == dev->vendor) &&
           (id->device == PCI_ANY_ID || id->device == dev->device) &&
           (id->subvendor == PCI_ANY_ID || id->subvendor == dev->subvendor) &&
           (id->subdevice == PCI_ANY_ID || id->subdevice == dev->subdevice) &&
           !((id->class_ ^ dev->class_) & id->class_mask);
}

/* Whether DRV's ID tables (dynamic, then static) match a device with this modalias. */
static int ids_match(const struct ctx *c, const char *drv, const char *modalias)
{
    int found = 0;
    struct pci_id dev;
    char *p = pathf("%s/bus/pci/drivers/%s/fake_dynids", c->root, drv);
    char *text = read_all(p);
    shim_free(p);
    if (text && parse_modalias(modalias, &dev)) {
        char *save = NULL;
        for (char *l = strtok_r(text, "\n", &save); l && !found; l = strtok_r(NULL, "\n", &save)) {
            struct pci_id id;
            found = parse_dynid(l, &id, NULL) >= 2 && id_matches(&id, &dev);
        }
    }
    shim_free(text);

    p = pathf("%s/bus/pci/drivers/%s/fake_ids", c->root, drv);
    text = read_all(p);
    shim_free(p);
    if (text) {
        char *save = NULL;
        for (char *l = strtok_r(text, "\n", &save); l && !found; l = strtok_r(NULL, "\n", &save))
            found = *l != '#' && fnmatch(l, modalias, 0) == 0;
    }
    shim_free(text);
    return found;
}

/* pci_match_device(): an override admits only the driver it names, whatever its IDs. */
static int driver_matches(const struct ctx *c, const char *drv, const struct device *d)
{
    if (d->override)
        return !strcmp(d->override, drv);
    return ids_match(c, drv, d->modalias);
}

static int make_link(const char *path, const char *target)
{
    unlink(path);
    return symlink(target, path) == 0 ? 0 : errno;
}

/* vfio_init_device(): the lowest vfioN index that no device bound to a VFIO driver holds
 * (ida_alloc), so the first device gets vfio0, the next vfio1, and a freed index is reused.
 * The allocator is ROOT/fake_vfio_ida, one byte per index ('1' taken): scanning every device's
 * vfio-dev/ instead made each bind cost O(devices) and a benchmark of 4096 binds quadratic. */
static unsigned take_vfio_index(const struct ctx *c)
{
    char *p = pathf("%s/fake_vfio_ida", c->root);
    char *ida = read_all(p);
    size_t len = ida ? strlen(ida) : 0;
    size_t i = 0;
    while (i < len && ida[i] == '1')
        i++;
    char *next = check_alloc(shim_calloc(1, (i < len ? len : i + 1) + 1));
    if (len)
        memcpy(next, ida, len);
    next[i] = '1';
    write_file(p, "we", next);
    shim_free(next);
    shim_free(ida);
    shim_free(p);
    return (unsigned)i;
}

/* vfio_release_device(): the device's vfioN index is free again. */
static void release_vfio_index(const struct ctx *c, const struct device *d)
{
    char *dir = pathf("%s/vfio-dev", d->dir);
    char **held = list_dir(dir, 0);
    char *p = pathf("%s/fake_vfio_ida", c->root);
    char *ida = read_all(p);
    for (char **h = held; ida && *h; h++) {
        unsigned i;
        char end;
        if (sscanf(*h, "vfio%u%c", &i, &end) == 1 && i < strlen(ida))
            ida[i] = '0';
    }
    if (ida)
        write_file(p, "we", ida);
    shim_free(ida);
    shim_free(p);
    free_list(held);
    shim_free(dir);
}

/* ---- devtmpfs: the VFIO nodes ------------------------------------------------------------ */

/* "../" once per component of the device's path relative to the root: from its directory (a
 * link in it) back up to the root. */
static char *up_from(const struct device *d)
{
    size_t depth = 1;
    for (const char *s = d->rel; *s; s++)
        depth += *s == '/';
    char *up = check_alloc(shim_calloc(1, depth * 3 + 1));
    for (size_t i = 0; i < depth; i++)
        strcat(up, "../");
    return up;
}

/* The number of the device's IOMMU group, from its iommu_group link; NULL when it has none. */
static char *iommu_group_of(const struct device *d)
{
    char *link = pathf("%s/iommu_group", d->dir);
    char target[PATH_MAX];
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    shim_free(link);
    if (n <= 0)
        return NULL;
    target[n] = '\0';
    const char *slash = strrchr(target, '/');
    return xstrdup(slash ? slash + 1 : target);
}

/* An empty file standing for a character device node (mode 0600, as devtmpfs makes them). */
static void make_node(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
}

/* iommu_group_alloc() + iommu_group_add_device(): a new IOMMU group holding only the device,
 * the lowest number no group has (the kernel's iommu_group_ida). Marked fake_dynamic, so that
 * it goes when its last device leaves the bus (the groups a test lays out stay), and
 * fake_noiommu for VFIO's no-IOMMU groups, which unbinding removes. Returns its number. */
static char *new_iommu_group(const struct ctx *c, const struct device *d, int noiommu)
{
    unsigned g = 0;
    char *dir = pathf("%s/kernel/iommu_groups/%u", c->root, g);
    while (exists(dir)) {
        shim_free(dir);
        dir = pathf("%s/kernel/iommu_groups/%u", c->root, ++g);
    }
    char *devices = pathf("%s/devices", dir);
    char *member = pathf("%s/%s", devices, d->name);
    char *member_target = pathf("../../../../%s", d->rel);
    char *up = up_from(d);
    char *link = pathf("%s/iommu_group", d->dir);
    char *link_target = pathf("%skernel/iommu_groups/%u", up, g);
    char *dynamic = pathf("%s/fake_dynamic", dir);
    char *marker = pathf("%s/fake_noiommu", dir);
    mkdir(dir, 0755);
    mkdir(devices, 0755);
    write_file(dynamic, "we", "");
    if (noiommu)
        write_file(marker, "we", "");
    make_link(member, member_target);
    make_link(link, link_target);
    shim_free(dir);
    shim_free(devices);
    shim_free(member);
    shim_free(member_target);
    shim_free(up);
    shim_free(link);
    shim_free(link_target);
    shim_free(dynamic);
    shim_free(marker);
    return pathf("%u", g);
}

/* vfio_noiommu_group_alloc(): with vfio's enable_unsafe_noiommu_mode on, a device that no IOMMU
 * translates gets an IOMMU group of its own from VFIO. Returns its number, or NULL (mode off). */
static char *noiommu_group(const struct ctx *c, const struct device *d)
{
    char *param = pathf("%s/module/vfio/parameters/enable_unsafe_noiommu_mode", c->root);
    char *mode = read_attr(param);
    shim_free(param);
    int on = mode && (!strcmp(mode, "Y") || !strcmp(mode, "1"));
    shim_free(mode);
    return on ? new_iommu_group(c, d, 1) : NULL;
}

/* What devtmpfs gains when a device binds to a VFIO driver, in a tree that has dev/vfio/: the
 * group's node dev/vfio/GROUP (dev/vfio/noiommu-GROUP for a no-IOMMU group), and with the
 * VFIO character device (dev/vfio/devices/ present) dev/vfio/devices/vfioN. */
static void add_vfio_nodes(const struct ctx *c, const struct device *d, unsigned index)
{
    char *vfio = pathf("%s/dev/vfio", c->root);
    if (!is_dir(vfio)) {
        shim_free(vfio);
        return;
    }
    int noiommu = 0;
    char *group = iommu_group_of(d);
    if (!group) {
        group = noiommu_group(c, d);
        noiommu = group != NULL;
    }
    if (group) {
        char *node = pathf("%s/%s%s", vfio, noiommu ? "noiommu-" : "", group);
        make_node(node);
        shim_free(node);
    }
    char *cdevs = pathf("%s/devices", vfio);
    if (is_dir(cdevs)) {
        char *node = pathf("%s/vfio%u", cdevs, index);
        make_node(node);
        shim_free(node);
    }
    shim_free(cdevs);
    shim_free(group);
    shim_free(vfio);
}

/* Whether any device of the group (by its devices/ links) is still on a VFIO driver. */
static int group_on_vfio(const struct ctx *c, const char *group)
{
    char *dir = pathf("%s/kernel/iommu_groups/%s/devices", c->root, group);
    char **members = list_dir(dir, 0);
    int held = 0;
    for (char **m = members; *m && !held; m++) {
        char *vfio_dev = pathf("%s/%s/vfio-dev", dir, *m);
        held = is_dir(vfio_dev);
        shim_free(vfio_dev);
    }
    free_list(members);
    shim_free(dir);
    return held;
}

/* What devtmpfs loses when a device leaves a VFIO driver (its vfio-dev/ already gone): its
 * dev/vfio/devices/vfioN entries (`held`, the names its vfio-dev/ had), and the group's node
 * once no device of the group is on a VFIO driver; a no-IOMMU group goes altogether. */
static void remove_vfio_nodes(const struct ctx *c, const struct device *d, char **held)
{
    char *vfio = pathf("%s/dev/vfio", c->root);
    for (char **h = held; *h; h++) {
        char *node = pathf("%s/devices/%s", vfio, *h);
        unlink(node);
        shim_free(node);
    }
    char *group = iommu_group_of(d);
    if (group) {
        char *dir = pathf("%s/kernel/iommu_groups/%s", c->root, group);
        char *marker = pathf("%s/fake_noiommu", dir);
        if (exists(marker)) {
            char *link = pathf("%s/iommu_group", d->dir);
            unlink(link);
            shim_free(link);
            rm_rf(dir);
            char *node = pathf("%s/noiommu-%s", vfio, group);
            unlink(node);
            shim_free(node);
        } else if (!group_on_vfio(c, group)) {
            char *node = pathf("%s/%s", vfio, group);
            unlink(node);
            shim_free(node);
        }
        shim_free(marker);
        shim_free(dir);
    }
    shim_free(group);
    shim_free(vfio);
}

/* The probe: fails as fault.table says, else binds (both links, vfio-dev/vfioN for VFIO
 * drivers). */
static int can_probe(const struct device *d);

static int probe(const struct ctx *c, const char *drv, struct device *d)
{
    if (!can_probe(d))
        return ENODEV;
    char *generic = pathf("probe:%s", drv);
    char *specific = pathf("probe:%s@%s", drv, d->name);
    const char *targets[] = {generic, specific};
    int err = fault_fire(c->root, targets, 2, NULL);
    shim_free(generic);
    shim_free(specific);
    if (err)
        return err;

    /* driver -> ../(one per component of the device's own path)bus/pci/drivers/DRV */
    char *up = up_from(d);
    char *target = pathf("%sbus/pci/drivers/%s", up, drv);
    char *link = pathf("%s/driver", d->dir);
    err = make_link(link, target);
    shim_free(up);
    shim_free(target);
    shim_free(link);
    if (!err) {
        link = pathf("%s/bus/pci/drivers/%s/%s", c->root, drv, d->name);
        target = pathf("../../../../%s", d->rel);
        err = make_link(link, target);
        shim_free(link);
        shim_free(target);
    }
    char *vfio = pathf("%s/bus/pci/drivers/%s/fake_vfio", c->root, drv);
    if (!err && exists(vfio)) {
        unsigned index = take_vfio_index(c);
        char *dir = pathf("%s/vfio-dev", d->dir);
        char *dev = pathf("%s/vfio-dev/vfio%u", d->dir, index);
        if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || (mkdir(dev, 0755) < 0 && errno != EEXIST))
            err = errno;
        else
            add_vfio_nodes(c, d, index);
        shim_free(dir);
        shim_free(dev);
    }
    shim_free(vfio);
    if (!err) {
        shim_free(d->driver);
        d->driver = xstrdup(drv);
    }
    return err;
}

static void remove_dangling_links(const char *dir)
{
    char **names = list_dir(dir, 0);
    for (char **n = names; *n; n++) {
        char *p = pathf("%s/%s", dir, *n);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISLNK(st.st_mode) && stat(p, &st) < 0 && errno == ENOENT)
            unlink(p);
        shim_free(p);
    }
    free_list(names);
}

/* The device (and whatever sat below it) leaves the bus, as on surprise removal. */
static void vanish(const struct ctx *c, const struct device *d)
{
    rm_rf(d->dir);
    char *p = pathf("%s/bus/pci/devices/%s", c->root, d->name);
    unlink(p);
    shim_free(p);

    p = pathf("%s/bus/pci/devices", c->root);
    remove_dangling_links(p);
    shim_free(p);
    char *drivers = pathf("%s/bus/pci/drivers", c->root);
    char **names = list_dir(drivers, 1);
    for (char **n = names; *n; n++) {
        p = pathf("%s/%s", drivers, *n);
        remove_dangling_links(p);
        shim_free(p);
    }
    free_list(names);
    shim_free(drivers);
    char *groups = pathf("%s/kernel/iommu_groups", c->root);
    names = list_dir(groups, 1);
    for (char **n = names; *n; n++) {
        p = pathf("%s/%s/devices", groups, *n);
        remove_dangling_links(p);
        char **left = list_dir(p, 0);
        char *dynamic = pathf("%s/%s/fake_dynamic", groups, *n);
        if (!*left && exists(dynamic)) { /* its last device gone: the group is released */
            char *group = pathf("%s/%s", groups, *n);
            rm_rf(group);
            shim_free(group);
        }
        shim_free(dynamic);
        free_list(left);
        shim_free(p);
    }
    free_list(names);
    shim_free(groups);
}

/* device_release_driver(): the links go, and what a VFIO driver made with them. */
static void release_driver(const struct ctx *c, struct device *d)
{
    char *p = pathf("%s/driver", d->dir);
    unlink(p);
    shim_free(p);
    p = pathf("%s/bus/pci/drivers/%s/%s", c->root, d->driver, d->name);
    unlink(p);
    shim_free(p);
    release_vfio_index(c, d);
    p = pathf("%s/vfio-dev", d->dir);
    char **held = list_dir(p, 0);
    rm_rf(p);
    shim_free(p);
    remove_vfio_nodes(c, d, held);
    free_list(held);
    shim_free(d->driver);
    d->driver = NULL;
}

/* An unbind: the driver released, then a "vanish:BDF after-unbind" fault fired. */
static void unbind_device(const struct ctx *c, struct device *d)
{
    release_driver(c, d);
    char *target = pathf("vanish:%s", d->name);
    const char *targets[] = {target};
    if (fault_fire(c->root, targets, 1, "after-unbind"))
        vanish(c, d);
    shim_free(target);
}

/* ---- The stores -------------------------------------------------------------------------- */

/* The device name in a bind/unbind/drivers_probe write: sysfs_streq() allows one newline. */
static void strip_newline(char *s)
{
    size_t len = strlen(s);
    if (len && s[len - 1] == '\n')
        s[len - 1] = '\0';
}

static int store_override(const struct tracked *t, const char *s, size_t count)
{
    if (count >= SYSFS_PAGE - 1)
        return EINVAL;
    size_t len = strcspn(s, "\n");
    char *content = len ? pathf("%.*s\n", (int)len, s) : xstrdup("(null)\n");
    int err = write_file(t->abs, "we", content);
    shim_free(content);
    return err;
}

static int store_bind(const struct ctx *c, const char *drv, char *s)
{
    strip_newline(s);
    struct device d;
    int err = load_device(c, s, &d);
    /* bind_store(): the match first, then device_driver_attach() refuses a bound device. */
    if (!err && !driver_matches(c, drv, &d))
        err = ENODEV;
    if (!err && d.driver)
        err = EBUSY;
    if (!err)
        err = probe(c, drv, &d);
    free_device(&d);
    return err;
}

static int store_unbind(const struct ctx *c, const char *drv, char *s)
{
    strip_newline(s);
    struct device d;
    int err = load_device(c, s, &d);
    if (!err && (!d.driver || strcmp(d.driver, drv) != 0))
        err = ENODEV;
    if (!err)
        unbind_device(c, &d);
    free_device(&d);
    return err;
}

/* device_attach(): every matching driver in turn until one probes; success even when none. */
static void attach_any(const struct ctx *c, struct device *d)
{
    char *dir = pathf("%s/bus/pci/drivers", c->root);
    char **names = list_dir(dir, 1);
    for (char **n = names; *n; n++)
        if (driver_matches(c, *n, d) && probe(c, *n, d) == 0)
            break;
    free_list(names);
    shim_free(dir);
}

static int store_probe(const struct ctx *c, char *s)
{
    strip_newline(s);
    struct device d;
    int err = load_device(c, s, &d);
    if (!err && !d.driver)
        attach_any(c, &d);
    free_device(&d);
    return err;
}

static int store_new_id(const struct ctx *c, const char *drv, const char *s)
{
    struct pci_id id;
    unsigned long driver_data;
    int fields = parse_dynid(s, &id, &driver_data);
    if (fields < 2)
        return EINVAL;
    if (fields != 7) {
        /* new_id_store() refuses an ID the driver already matches (on a device that has it). */
        struct pci_id fake = {id.vendor & 0xffff, id.device & 0xffff, id.subvendor & 0xffff,
                              id.subdevice & 0xffff, id.class_, 0};
        char *modalias = pathf("pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X", fake.vendor,
                               fake.device, fake.subvendor, fake.subdevice,
                               fake.class_ >> 16 & 0xff, fake.class_ >> 8 & 0xff,
                               fake.class_ & 0xff);
        int present = ids_match(c, drv, modalias);
        shim_free(modalias);
        if (present)
            return EEXIST;
    }

    char *line;
    if (fields == 2)
        line = pathf("%04x %04x\n", id.vendor, id.device);
    else
        line = pathf("%04x %04x %04x %04x %06x %06x %lx\n", id.vendor, id.device, id.subvendor,
                     id.subdevice, id.class_, id.class_mask, driver_data);
    char *p = pathf("%s/bus/pci/drivers/%s/fake_dynids", c->root, drv);
    int err = write_file(p, "ae", line);
    shim_free(p);
    shim_free(line);
    if (err)
        return err;

    /* driver_attach(): every unbound device the driver now matches; probe failures ignored. */
    char *dir = pathf("%s/bus/pci/devices", c->root);
    char **names = list_dir(dir, 0);
    for (char **n = names; *n; n++) {
        struct device d;
        if (load_device(c, *n, &d) == 0 && !d.driver && driver_matches(c, drv, &d))
            probe(c, drv, &d);
        free_device(&d);
    }
    free_list(names);
    shim_free(dir);
    return 0;
}

static int store_remove_id(const struct ctx *c, const char *drv, const char *s)
{
    struct pci_id want;
    if (parse_dynid(s, &want, NULL) < 2)
        return EINVAL;
    char *p = pathf("%s/bus/pci/drivers/%s/fake_dynids", c->root, drv);
    char *text = read_all(p);
    int err = ENODEV;
    for (char *line = text; line && *line;) {
        size_t len = strcspn(line, "\n");
        char *copy = xstrndup(line, len);
        struct pci_id id;
        if (parse_dynid(copy, &id, NULL) >= 2 && id.vendor == want.vendor &&
            id.device == want.device &&
            (want.subvendor == PCI_ANY_ID || id.subvendor == want.subvendor) &&
            (want.subdevice == PCI_ANY_ID || id.subdevice == want.subdevice) &&
            !((id.class_ ^ want.class_) & want.class_mask)) {
            char *rest = text_splice(text, (size_t)(line - text), len + (line[len] != '\0'), "");
            write_file(p, "we", rest);
            shim_free(rest);
            err = 0;
            shim_free(copy);
            break;
        }
        shim_free(copy);
        line += len;
        if (*line)
            line++;
    }
    shim_free(text);
    shim_free(p);
    return err;
}

/* ---- SR-IOV ------------------------------------------------------------------------------ */

/* pci_iov_device_can_probe(): a VF without driver_override is probed only while its PF's
 * sriov_drivers_autoprobe is on. */
static int can_probe(const struct device *d)
{
    if (d->override)
        return 1;
    char *link = pathf("%s/physfn", d->dir);
    int vf = exists(link);
    shim_free(link);
    if (!vf)
        return 1;
    char *p = pathf("%s/physfn/sriov_drivers_autoprobe", d->dir);
    char *v = read_attr(p);
    shim_free(p);
    int on = !v || strcmp(v, "0") != 0;
    shim_free(v);
    return on;
}

/* A number from a fake file, or `dflt` when there is none. */
static unsigned long read_number(const char *dir, const char *name, unsigned long dflt)
{
    char *p = pathf("%s/%s", dir, name);
    char *v = read_attr(p);
    shim_free(p);
    unsigned long n = v ? strtoul(v, NULL, 0) : dflt;
    shim_free(v);
    return n;
}

/* kstrtobool() */
static int store_autoprobe(const struct tracked *t, const char *s)
{
    int on;
    if (s[0] == '1' || s[0] == 'y' || s[0] == 'Y' || (!strncasecmp(s, "on", 2)))
        on = 1;
    else if (s[0] == '0' || s[0] == 'n' || s[0] == 'N' || (!strncasecmp(s, "of", 2)))
        on = 0;
    else
        return EINVAL;
    return write_file(t->abs, "we", on ? "1\n" : "0\n");
}

/* sriov_disable(): every VF leaves the bus, unbound first, and the PF's virtfnN links go. */
static void remove_vfs(const struct ctx *c, const struct device *pf)
{
    char **names = list_dir(pf->dir, 0);
    for (char **n = names; *n; n++) {
        if (strncmp(*n, "virtfn", 6) != 0)
            continue;
        char *link = pathf("%s/%s", pf->dir, *n);
        char target[PATH_MAX];
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len > 0) {
            target[len] = '\0';
            const char *base = strrchr(target, '/');
            struct device vf;
            if (load_device(c, base ? base + 1 : target, &vf) == 0) {
                if (vf.driver)
                    unbind_device(c, &vf);
                vanish(c, &vf);
            }
            free_device(&vf);
        }
        unlink(link);
        shim_free(link);
    }
    free_list(names);
}

/* sriov_enable(): VF i at routing ID PF + offset + i * stride, beside the PF, then probed. */
static int create_vfs(const struct ctx *c, const struct device *pf, unsigned n)
{
    unsigned domain, bus, dev, fn;
    if (sscanf(pf->name, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) != 4)
        return EINVAL;
    unsigned long offset = read_number(pf->dir, "fake_sriov_offset", 1);
    unsigned long stride = read_number(pf->dir, "fake_sriov_stride", 1);
    char *p = pathf("%s/fake_vf_modalias", pf->dir);
    char *modalias = read_attr(p);
    shim_free(p);
    struct pci_id id;
    if (!modalias && parse_modalias(pf->modalias, &id)) {
        /* the PF's, device ID + 1 */
        const char *d = strstr(pf->modalias, "d");
        modalias = pathf("%.*s%08X%s", (int)(d + 1 - pf->modalias), pf->modalias,
                         (id.device + 1) & 0xffff, d + 9);
    }
    if (!modalias)
        modalias = xstrdup(pf->modalias);
    size_t parent_len = (size_t)(strrchr(pf->rel, '/') - pf->rel);
    int err = 0;
    char **made = check_alloc(shim_calloc(n + 1, sizeof *made));
    for (unsigned i = 0; i < n && !err; i++) {
        unsigned long rid = (bus << 8 | dev << 3 | fn) + offset + stride * i;
        char *name = pathf("%04x:%02lx:%02lx.%lx", domain, rid >> 8 & 0xff, rid >> 3 & 0x1f,
                           rid & 7);
        char *rel = pathf("%.*s/%s", (int)parent_len, pf->rel, name);
        char *dir = pathf("%s/%s", c->real_root, rel);
        if (mkdir(dir, 0755) < 0) {
            err = errno;
        } else {
            char *file = pathf("%s/modalias", dir);
            char *content = pathf("%s\n", modalias);
            err = write_file(file, "we", content);
            shim_free(content);
            shim_free(file);
            file = pathf("%s/driver_override", dir);
            err = err ? err : write_file(file, "we", "(null)\n");
            shim_free(file);
            char *target = pathf("../%s", pf->name);
            file = pathf("%s/physfn", dir);
            err = err ? err : make_link(file, target);
            shim_free(file);
            shim_free(target);
            target = pathf("../%s", name);
            file = pathf("%s/virtfn%u", pf->dir, i);
            err = err ? err : make_link(file, target);
            shim_free(file);
            shim_free(target);
            target = pathf("../../../%s", rel);
            file = pathf("%s/bus/pci/devices/%s", c->root, name);
            err = err ? err : make_link(file, target);
            shim_free(file);
            shim_free(target);
        }
        made[i] = name;
        shim_free(rel);
        shim_free(dir);
    }
    shim_free(modalias);
    if (!err) {
        char *count = pathf("%u\n", n);
        p = pathf("%s/sriov_numvfs", pf->dir);
        err = write_file(p, "we", count);
        shim_free(p);
        shim_free(count);
    }
    /* pci_bus_add_device() -> device_attach() for each new VF; where the PF is translated by
     * an IOMMU (it has a group), the IOMMU first gives each VF a group of its own, as on the
     * real kernels with QEMU's VFs (kernel-tests). */
    char *pf_group = iommu_group_of(pf);
    for (unsigned i = 0; i < n && !err; i++) {
        struct device vf;
        if (load_device(c, made[i], &vf) == 0) {
            if (pf_group)
                shim_free(new_iommu_group(c, &vf, 0));
            attach_any(c, &vf);
        }
        free_device(&vf);
    }
    shim_free(pf_group);
    if (err)
        remove_vfs(c, pf);
    for (unsigned i = 0; i < n; i++)
        shim_free(made[i]);
    shim_free(made);
    return err;
}

/* sriov_numvfs_store(), its checks in its order. */
static int store_numvfs(const struct ctx *c, const char *bdf, char *s)
{
    strip_newline(s);
    char *end = NULL;
    errno = 0;
    unsigned long n = strtoul(s, &end, 0);
    if (!*s || *s == '-' || *end || errno || n > 0xffff)
        return EINVAL;
    struct device pf;
    int err = load_device(c, bdf, &pf);
    if (err)
        return err;
    unsigned long total = read_number(pf.dir, "sriov_totalvfs", 0);
    unsigned long current = read_number(pf.dir, "sriov_numvfs", 0);
    char *configure =
        pf.driver ? pathf("%s/bus/pci/drivers/%s/fake_sriov_configure", c->root, pf.driver) : NULL;
    if (n > total)
        err = ERANGE;
    else if (n == current)
        err = 0;
    else if (!configure || !exists(configure))
        err = ENOENT;
    else if (n == 0) {
        remove_vfs(c, &pf);
        char *p = pathf("%s/sriov_numvfs", pf.dir);
        err = write_file(p, "we", "0\n");
        shim_free(p);
    } else if (current)
        err = EBUSY;
    else
        err = create_vfs(c, &pf, (unsigned)n);
    shim_free(configure);
    free_device(&pf);
    return err;
}

/* ---- Hot removal and rescan ------------------------------------------------------------- */

/* Rewrites an attribute the device has; leaves alone one it has not. */
static void reset_attr(const struct device *d, const char *name, const char *content)
{
    char *p = pathf("%s/%s", d->dir, name);
    if (exists(p))
        write_file(p, "we", content);
    shim_free(p);
}

/* Each regular file below `path` replaced by a copy: the fds open on the old one see it
 * removed. Links are not followed. */
static void renew_files(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISREG(st.st_mode)) {
        char *content = read_all(path);
        if (content && unlink(path) == 0 && write_file(path, "we", content) == 0)
            chmod(path, st.st_mode & 07777);
        shim_free(content);
    } else if (S_ISDIR(st.st_mode)) {
        char **names = list_dir(path, 0);
        for (char **n = names; *n; n++) {
            char *p = pathf("%s/%s", path, *n);
            renew_files(p);
            shim_free(p);
        }
        free_list(names);
    }
}

/* pci_stop_and_remove_bus_device(), as `echo 1 > remove` does it: the devices below it (behind
 * a bridge) go first, and a PF's VFs (its driver's remove disables SR-IOV), then the device is
 * unbound, without the after-unbind
 * fault (that is an unbind's), and leaves the bus with what sat below it (vanish()). A device
 * that is no VF is still there behind the bus, for a rescan to find: its directory is kept
 * aside as ROOT/fake_removed/BDF, with its path in fake_removed_from and what a new pci_dev
 * starts from (driver_override unset, no VFs, sriov_drivers_autoprobe on), its files new (an fd
 * open on an old one stays dead). A device not on the bus is left alone. */
static void hot_remove(const struct ctx *c, const char *bdf)
{
    struct device d;
    if (load_device(c, bdf, &d) != 0)
        return;
    char **below_it = list_dir(d.dir, 1);
    for (char **n = below_it; *n; n++) {
        struct device child;
        char *dir = pathf("%s/%s", d.dir, *n);
        if (load_device(c, *n, &child) == 0 && !strcmp(child.dir, dir))
            hot_remove(c, *n);
        free_device(&child);
        shim_free(dir);
    }
    free_list(below_it);
    remove_vfs(c, &d);
    if (d.driver)
        release_driver(c, &d);
    char *physfn = pathf("%s/physfn", d.dir);
    if (!exists(physfn)) {
        char *aside = pathf("%s/fake_removed", c->root);
        char *kept = pathf("%s/%s", aside, d.name);
        char *from = pathf("%s/fake_removed_from", d.dir);
        reset_attr(&d, "driver_override", "(null)\n");
        reset_attr(&d, "sriov_numvfs", "0\n");
        reset_attr(&d, "sriov_drivers_autoprobe", "1\n");
        mkdir(aside, 0755);
        rm_rf(kept);
        if (write_file(from, "we", d.rel) != 0 || rename(d.dir, kept) != 0)
            shim_warn("kernel-shim: keeping %s aside: %s\n", d.name, errno_name(errno));
        else
            renew_files(kept);
        shim_free(from);
        shim_free(kept);
        shim_free(aside);
    }
    shim_free(physfn);
    vanish(c, &d);
    free_device(&d);
}

/* One device kept aside by hot_remove() back where it was, on the bus and in its IOMMU group,
 * and probed as a new device is (device_attach()); 0 when it cannot be yet (the directory above
 * it is not there: a bridge not back yet). */
static int readd(const struct ctx *c, const char *aside, const char *name)
{
    char *kept = pathf("%s/%s", aside, name);
    char *from_file = pathf("%s/fake_removed_from", kept);
    char *from = read_attr(from_file);
    char *dir = from ? pathf("%s/%s", c->root, from) : NULL;
    char *parent = dir ? xstrndup(dir, (size_t)(strrchr(dir, '/') - dir)) : NULL;
    int back = dir && is_dir(parent) && !exists(dir) && unlink(from_file) == 0 &&
               rename(kept, dir) == 0;
    if (back) {
        char *link = pathf("%s/bus/pci/devices/%s", c->root, name);
        char *target = pathf("../../../%s", from);
        make_link(link, target);
        shim_free(link);
        shim_free(target);
        struct device d;
        if (load_device(c, name, &d) == 0) {
            char *group = iommu_group_of(&d);
            char *members =
                group ? pathf("%s/kernel/iommu_groups/%s/devices", c->root, group) : NULL;
            if (members && is_dir(members)) {
                link = pathf("%s/%s", members, d.name);
                target = pathf("../../../../%s", d.rel);
                make_link(link, target);
                shim_free(link);
                shim_free(target);
            } else if (group) { /* its group was released meanwhile: it has none */
                link = pathf("%s/iommu_group", d.dir);
                unlink(link);
                shim_free(link);
            }
            shim_free(members);
            shim_free(group);
            attach_any(c, &d);
        }
        free_device(&d);
    }
    shim_free(parent);
    shim_free(dir);
    shim_free(from);
    shim_free(from_file);
    shim_free(kept);
    return back;
}

/* pci_rescan_bus(): every device kept aside by removals comes back (a bridge before the
 * devices behind it). */
static void rescan(const struct ctx *c)
{
    char *aside = pathf("%s/fake_removed", c->root);
    int progress = 1;
    while (progress) {
        progress = 0;
        char **names = list_dir(aside, 1);
        for (char **n = names; *n; n++)
            progress |= readd(c, aside, *n);
        free_list(names);
    }
    shim_free(aside);
}

/* remove_store() and rescan_store(): kstrtoul(), then nothing for 0. */
static int store_remove_or_rescan(const struct ctx *c, const struct tracked *t, char *s)
{
    strip_newline(s);
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (!*s || *s == '-' || *end || errno)
        return EINVAL;
    if (v && t->kind == K_REMOVE)
        hot_remove(c, t->driver);
    else if (v)
        rescan(c);
    return 0;
}

/* One store, under state_lock; returns 0 or the errno. */
static int apply(int fd, const struct tracked *t, const char *buf, size_t count)
{
    /* kernfs_fop_write_iter(): a removed attribute answers ENODEV to its open fds, also once a
     * rescan has made the device's files anew (hot_remove() gave them new inodes). */
    struct stat st;
    if (!exists(t->abs) || (fstat(fd, &st) == 0 && st.st_nlink == 0))
        return ENODEV;

    /* A fault on bus/pci/devices/BDF/driver_override applies whichever path is written. */
    const char *targets[2] = {t->rel, t->reached};
    int err = fault_fire(t->root, targets, 2, NULL);
    if (err)
        return err;

    struct ctx c = {t->root, canonical(t->root)};
    char *s = xstrndup(buf, count); /* the store sees a C string: it ends at the first NUL */
    switch (t->kind) {
    case K_OVERRIDE:
        err = store_override(t, s, count);
        break;
    case K_BIND:
        err = store_bind(&c, t->driver, s);
        break;
    case K_UNBIND:
        err = store_unbind(&c, t->driver, s);
        break;
    case K_PROBE:
        err = store_probe(&c, s);
        break;
    case K_NEW_ID:
        err = store_new_id(&c, t->driver, s);
        break;
    case K_REMOVE_ID:
        err = store_remove_id(&c, t->driver, s);
        break;
    case K_NUMVFS:
        err = store_numvfs(&c, t->driver, s);
        break;
    case K_AUTOPROBE:
        err = store_autoprobe(t, s);
        break;
    case K_REMOVE:
    case K_RESCAN:
        err = store_remove_or_rescan(&c, t, s);
        break;
    }
    shim_free(s);
    shim_free(c.real_root);
    return err;
}

/* ROOT/write.log: "REL_PATH<TAB>VALUE<TAB>RESULT", VALUE escaped C-style (\n, \t, \\, \xHH). */
static void log_write(const struct tracked *t, const char *buf, size_t count, int err)
{
    const char *result = err ? errno_name(err) : "ok";
    size_t rel = strlen(t->rel);
    char *line = check_alloc(shim_malloc(rel + 1 + 4 * count + strlen(result) + 3));
    memcpy(line, t->rel, rel);
    char *o = line + rel;
    *o++ = '\t';
    for (size_t i = 0; i < count; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\n' || ch == '\t' || ch == '\\') {
            *o++ = '\\';
            *o++ = ch == '\n' ? 'n' : ch == '\t' ? 't' : '\\';
        } else if (ch < 0x20 || ch >= 0x7f) {
            o += snprintf(o, 5, "\\x%02x", ch);
        } else {
            *o++ = (char)ch;
        }
    }
    snprintf(o, strlen(result) + 3, "\t%s\n", result);
    char *p = pathf("%s/write.log", t->root);
    write_file(p, "ae", line);
    shim_free(p);
    shim_free(line);
}

/* ---- PTK_KILL_AFTER_WRITE and PTK_REMOVE_AFTER_WRITE --------------------------------------- */

/* A knob counts the writes (write.log's lines) this process makes while its variable is set,
 * from the start of the process (a forked child starts again from 0) or from the last time the
 * process set or unset it (setenv(), putenv(), unsetenv(), clearenv(), caught below). It fires
 * once, after the write it names. The counts are kept under state_lock. */
struct knob {
    const char *name;
    unsigned long count;
};

static struct knob kill_knob = {"PTK_KILL_AFTER_WRITE", 0};
static struct knob remove_knob = {"PTK_REMOVE_AFTER_WRITE", 0};

static void restart_knobs(void)
{
    kill_knob.count = 0;
    remove_knob.count = 0;
}

/* Counts a write; 1 when it is the one the knob names ("N", or for `bdf` "N:BDF", *bdf then the
 * BDF, else NULL). A value of another form ends the process with status 99, as a failed setup
 * of the test kit does. */
static int knob_fires(struct knob *k, const char **bdf)
{
    const char *v = getenv(k->name);
    if (!v)
        return 0;
    k->count++;
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || errno || n == 0 ||
        (*end && (!bdf || *end != ':' || !end[1]))) {
        shim_warn("kernel-shim: %s=%s: not N%s (a count of writes from 1)\n", k->name, v,
                  bdf ? " or N:BDF" : "");
        _exit(99);
    }
    if (bdf)
        *bdf = *end ? end + 1 : NULL;
    return k->count == n;
}

/* The process set or unset the variable `name` (up to `len` bytes): its knob counts again. */
static void knob_changed(const char *name, size_t len)
{
    struct knob *knobs[] = {&kill_knob, &remove_knob};
    for (size_t i = 0; name && i < sizeof knobs / sizeof knobs[0]; i++) {
        if (strlen(knobs[i]->name) == len && !strncmp(name, knobs[i]->name, len)) {
            pthread_mutex_lock(&state_lock);
            knobs[i]->count = 0;
            pthread_mutex_unlock(&state_lock);
        }
    }
}

/* The device a write concerns: the one whose file it is, or the one named in a bind, unbind or
 * drivers_probe; NULL for new_id, remove_id and rescan. */
static char *concerned_device(const struct tracked *t, const char *buf, size_t len)
{
    switch (t->kind) {
    case K_OVERRIDE: {
        const char *bdf = t->rel + strlen("bus/pci/devices/");
        return xstrndup(bdf, strcspn(bdf, "/"));
    }
    case K_NUMVFS:
    case K_AUTOPROBE:
    case K_REMOVE:
        return xstrdup(t->driver);
    case K_BIND:
    case K_UNBIND:
    case K_PROBE: {
        char *s = xstrndup(buf, len);
        strip_newline(s);
        return s;
    }
    default:
        return NULL;
    }
}

/* After a write has been logged: the knobs' removal, then their kill (with state_lock held, so
 * that no other thread's write takes effect in between). */
static void after_write(const struct tracked *t, const char *buf, size_t len)
{
    const char *bdf = NULL;
    if (knob_fires(&remove_knob, &bdf)) {
        char *dev = bdf ? xstrdup(bdf) : concerned_device(t, buf, len);
        if (dev) {
            struct ctx c = {t->root, canonical(t->root)};
            hot_remove(&c, dev);
            shim_free(c.real_root);
        } else {
            shim_warn("kernel-shim: PTK_REMOVE_AFTER_WRITE: %s concerns no device "
                      "(name one: N:BDF)\n", t->rel);
        }
        shim_free(dev);
    }
    if (knob_fires(&kill_knob, NULL)) {
        kill(getpid(), SIGKILL);
        for (;;)
            pause();
    }
}

/* Whether a VMM holds the device whose fake_vmm_holds is `marker`, or else one of the VFs
 * (virtfnN links) of the PF `pf`. */
static int vmm_holds(const char *marker, const char *pf)
{
    if (marker)
        return exists(marker);
    char **names = list_dir(pf, 0);
    int held = 0;
    for (char **n = names; *n && !held; n++) {
        if (strncmp(*n, "virtfn", 6) != 0)
            continue;
        char *p = pathf("%s/%s/fake_vmm_holds", pf, *n);
        held = exists(p);
        shim_free(p);
    }
    free_list(names);
    return held;
}

/* vfio_unregister_group_dev(): unbinding a VFIO device that a process holds (a VMM) asks that
 * process to let go and waits until it does. A device with the file BDF/fake_vmm_holds is so
 * held: its unbind write blocks (without the shim's lock, as the kernel holds only that device)
 * until a test removes the file. */
static void wait_while_a_vmm_holds(int fd, const void *buf, size_t count)
{
    pthread_mutex_lock(&state_lock);
    const struct tracked *t = files[fd];
    char *marker = NULL, *pf = NULL;
    if (t && t->kind == K_UNBIND) {
        const char *nl = memchr(buf, '\n', count);
        size_t len = nl ? (size_t)(nl - (const char *)buf) : count;
        if (len > 64)
            len = 64;
        marker = pathf("%s/bus/pci/devices/%.*s/fake_vmm_holds", t->root, (int)len,
                       (const char *)buf);
    } else if (t && t->kind == K_NUMVFS && count >= 1 && ((const char *)buf)[0] == '0') {
        /* Removing the VFs: each VF is removed, so one that a VMM holds is waited for. */
        pf = pathf("%s/bus/pci/devices/%s", t->root, t->driver);
    }
    pthread_mutex_unlock(&state_lock);
    if (!marker && !pf)
        return;
    while (vmm_holds(marker, pf))
        usleep(10000);
    shim_free(marker);
    shim_free(pf);
}

static ssize_t emulate(int fd, const void *buf, size_t count)
{
    wait_while_a_vmm_holds(fd, buf, count);
    pthread_mutex_lock(&state_lock);
    const struct tracked *t = files[fd];
    if (!t) { /* closed meanwhile by another thread */
        pthread_mutex_unlock(&state_lock);
        return real.write(fd, buf, count);
    }
    in_shim = 1;
    /* sysfs_kf_write(): an empty write never reaches the store; a store sees at most a page. */
    size_t len = count < SYSFS_PAGE ? count : SYSFS_PAGE;
    int err = len ? apply(fd, t, buf, len) : 0;
    log_write(t, buf, count, err);
    after_write(t, buf, len);
    in_shim = 0;
    pthread_mutex_unlock(&state_lock);
    if (err) {
        errno = err;
        return -1;
    }
    return (ssize_t)len;
}

/* ---- The intercepted calls --------------------------------------------------------------- */

enum opener { O_OPEN, O_OPEN64, O_OPENAT, O_OPENAT64, O_OPENAT2 };

/* `how` is openat2's, with its flags replaced by `flags`. */
static int call_open(enum opener which, int dirfd, const char *path, int flags, mode_t mode,
                     const struct open_how *how)
{
    switch (which) {
    case O_OPEN:
        return real.open(path, flags, mode);
    case O_OPEN64:
        return real.open64(path, flags, mode);
    case O_OPENAT:
        return real.openat(dirfd, path, flags, mode);
    case O_OPENAT64:
        return real.openat64(dirfd, path, flags, mode);
    default: {
        struct open_how h = *how;
        h.flags = (uint64_t)(unsigned)flags;
        return (int)real.syscall(SYS_openat2, dirfd, path, &h, sizeof h);
    }
    }
}

static int needs_mode(int flags)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/* The kernel file an open reached, or NULL: found through /proc/self/fd, so named by where the
 * file is, not by the path that led there. */
static struct tracked *classify_fd(int fd)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0 || target[0] != '/')
        return NULL;
    target[n] = '\0';
    return classify(target);
}

/* The block layer's answer to an O_EXCL open (without O_CREAT) of a block device node under the
 * fake root, given without ever opening the device the node names: the errno of the fault line
 * "open-excl:MAJ:MIN ERRNO" when one fires (EBUSY: something holds the disk exclusively), else
 * success, an O_PATH descriptor of the node (fstat() works on it, read() does not). Returns 1
 * with *fd set (and errno, on failure) when it answered, 0 when the open is not one of these.
 * Called with in_shim set. */
static int block_node_open(enum opener which, int dirfd, const char *path, int flags,
                           const struct open_how *how, int *fd)
{
    const char *env = getenv("FAKE_SYSFS_ROOT");
    struct stat st;
    if (!env || env[0] != '/' || fstatat(dirfd, path, &st, 0) != 0 || !S_ISBLK(st.st_mode))
        return 0;
    char *abs = absolute(dirfd, path);
    char *node = abs ? canonical(abs) : NULL;
    char *root = canonical(env);
    int under = node && root && below(node, root);
    shim_free(abs);
    shim_free(node);
    if (!under) {
        shim_free(root);
        return 0;
    }
    char target[64];
    snprintf(target, sizeof target, "open-excl:%u:%u", major(st.st_rdev), minor(st.st_rdev));
    const char *targets[] = {target};
    int err = fault_fire(root, targets, 1, NULL);
    shim_free(root);
    if (err) {
        *fd = -1;
        errno = err;
    } else {
        *fd = call_open(which, dirfd, path, O_PATH | (flags & O_CLOEXEC), 0, how);
    }
    return 1;
}

static int intercept_open(enum opener which, int dirfd, const char *path, int flags, mode_t mode,
                          const struct open_how *how)
{
    init();
    if (!in_shim && path && (flags & O_EXCL) && !(flags & O_CREAT)) {
        in_shim = 1;
        int fd, answered = block_node_open(which, dirfd, path, flags, how, &fd);
        int err = errno;
        in_shim = 0;
        if (answered) {
            errno = err;
            return fd;
        }
    }
    if (in_shim || !path || (flags & O_ACCMODE) == O_RDONLY || (flags & O_PATH))
        return call_open(which, dirfd, path, flags, mode, how);

    in_shim = 1;
    struct tracked *t = NULL;
    char *abs = absolute(dirfd, path);
    int fd, err = 0;
    if (abs && is_real_sys(abs)) {
        shim_warn("kernel-shim: refusing to open %s for writing: tests never write the "
                  "real /sys\n", abs);
        err = EACCES;
    } else if (abs) {
        t = classify(abs); /* what the path names, before anything is opened */
    }
    if (t && (flags & O_CREAT) && !exists(t->abs))
        err = EACCES; /* sysfs directories have no create() */
    else if (t && (flags & O_CREAT) && (flags & O_EXCL))
        err = EEXIST;
    shim_free(abs);

    if (err) {
        fd = -1;
    } else {
        if (t)
            race_fire(t->root, t->rel);
        /* sysfs ignores truncation; the fake file must keep its contents. */
        int real_flags = t ? flags & ~(O_CREAT | O_EXCL | O_TRUNC) : flags;
        fd = call_open(which, dirfd, path, real_flags, mode, how);
        err = errno;
    }
    free_tracked(t);
    if (fd >= 0) {
        /* The kernel acts on the file the open reached, whatever the path named. */
        t = classify_fd(fd);
        if (fd >= MAX_TRACKED_FD && t) {
            free_tracked(t);
            real.close(fd);
            fd = -1;
            err = EMFILE;
        } else {
            set_tracked(fd, t);
        }
    }
    in_shim = 0;
    errno = err;
    return fd;
}

#define MODE_ARG(flags, last)                                                                  \
    mode_t mode = 0;                                                                           \
    if (needs_mode(flags)) {                                                                   \
        va_list ap;                                                                            \
        va_start(ap, last);                                                                    \
        mode = va_arg(ap, mode_t);                                                             \
        va_end(ap);                                                                            \
    }

EXPORT int open(const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    return intercept_open(O_OPEN, AT_FDCWD, path, flags, mode, NULL);
}

EXPORT int open64(const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    return intercept_open(O_OPEN64, AT_FDCWD, path, flags, mode, NULL);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    return intercept_open(O_OPENAT, dirfd, path, flags, mode, NULL);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    return intercept_open(O_OPENAT64, dirfd, path, flags, mode, NULL);
}

/* What _FORTIFY_SOURCE builds call instead of open() when flags are not constant. */
EXPORT int __open_2(const char *path, int flags)
{
    return intercept_open(O_OPEN, AT_FDCWD, path, flags, 0, NULL);
}

EXPORT int __open64_2(const char *path, int flags)
{
    return intercept_open(O_OPEN64, AT_FDCWD, path, flags, 0, NULL);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    return intercept_open(O_OPENAT, dirfd, path, flags, 0, NULL);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    return intercept_open(O_OPENAT64, dirfd, path, flags, 0, NULL);
}

EXPORT ssize_t write(int fd, const void *buf, size_t count)
{
    init();
    if (!in_shim && is_tracked(fd))
        return emulate(fd, buf, count);
    return real.write(fd, buf, count);
}

/* Offsets mean nothing to a sysfs attribute's store; vectors arrive as one buffer. */
EXPORT ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    init();
    if (!in_shim && is_tracked(fd))
        return emulate(fd, buf, count);
    return real.pwrite(fd, buf, count, offset);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset)
{
    init();
    if (!in_shim && is_tracked(fd))
        return emulate(fd, buf, count);
    return real.pwrite64(fd, buf, count, offset);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    init();
    if (in_shim || !is_tracked(fd) || iovcnt < 0)
        return real.writev(fd, iov, iovcnt);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    char *buf = check_alloc(shim_malloc(total + 1));
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    ssize_t n = emulate(fd, buf, total);
    int err = errno;
    shim_free(buf);
    errno = err;
    return n;
}

EXPORT int close(int fd)
{
    init();
    if (!in_shim)
        set_tracked(fd, NULL); /* before the fd number can be reused */
    return real.close(fd);
}

EXPORT int dup(int fd)
{
    init();
    int new_fd = real.dup(fd);
    if (!in_shim && new_fd >= 0) {
        int err = errno;
        set_tracked(new_fd, copy_tracked(fd));
        errno = err;
    }
    return new_fd;
}

EXPORT int dup2(int fd, int new_fd)
{
    init();
    int r = real.dup2(fd, new_fd);
    if (!in_shim && r >= 0 && fd != new_fd) {
        int err = errno;
        set_tracked(r, copy_tracked(fd));
        errno = err;
    }
    return r;
}

EXPORT int dup3(int fd, int new_fd, int flags)
{
    init();
    int r = real.dup3(fd, new_fd, flags);
    if (!in_shim && r >= 0) {
        int err = errno;
        set_tracked(r, copy_tracked(fd));
        errno = err;
    }
    return r;
}

/* openat2 reaches the kernel only through syscall(), a variadic function: the six possible
 * arguments are read as longs (what the x86-64 and AArch64 calling conventions pass them as)
 * and handed on unchanged for every other call, futex included. A caller that passes fewer
 * (openat2 takes four) leaves the last one to be read from its own stack frame, where the
 * value is ignored: that read is deliberate, so AddressSanitizer is told not to check it. */
__attribute__((no_sanitize("address")))
EXPORT long syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    init();
    const struct open_how *how = (const struct open_how *)a[2];
    if (number != SYS_openat2 || in_shim || !how || (size_t)a[3] < sizeof *how)
        return real.syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
    /* An open_how of another size, or flags beyond an int: handed on untouched, for the
     * kernel to judge (the library passes neither). */
    if (how->flags > UINT32_MAX || (size_t)a[3] != sizeof *how)
        return real.syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
    return intercept_open(O_OPENAT2, (int)a[0], (const char *)a[1], (int)how->flags,
                          (mode_t)how->mode, how);
}

/* The knobs' variables set or unset: their counts start again (PTK_KILL_AFTER_WRITE). */
EXPORT int setenv(const char *name, const char *value, int overwrite)
{
    init();
    int r = real.setenv(name, value, overwrite);
    int err = errno;
    if (r == 0)
        knob_changed(name, strlen(name));
    errno = err;
    return r;
}

EXPORT int unsetenv(const char *name)
{
    init();
    int r = real.unsetenv(name);
    int err = errno;
    if (r == 0)
        knob_changed(name, strlen(name));
    errno = err;
    return r;
}

EXPORT int putenv(char *string)
{
    init();
    int r = real.putenv(string);
    int err = errno;
    if (r == 0)
        knob_changed(string, strcspn(string, "="));
    errno = err;
    return r;
}

EXPORT int clearenv(void)
{
    init();
    int r = real.clearenv();
    pthread_mutex_lock(&state_lock);
    restart_knobs();
    pthread_mutex_unlock(&state_lock);
    return r;
}
