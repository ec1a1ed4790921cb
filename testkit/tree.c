/* The tree builder of the test kit: pcibind-testkit.h documents every function. */
#define _GNU_SOURCE
#include "pcibind-testkit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pcibind-testkit: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, ": %s\n", strerror(errno));
    va_end(ap);
    exit(99);
}

static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        die("vasprintf");
    va_end(ap);
    return s;
}

char *ptk_path(const char *root, const char *rel)
{
    return xasprintf("%s/%s", root, rel);
}

void ptk_mkdirs(const char *root, const char *rel)
{
    char *p = ptk_path(root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST)
                die("mkdir %s", p);
            *s = '/';
        }
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        die("mkdir %s", p);
    free(p);
}

void ptk_write(const char *root, const char *rel, const char *content)
{
    char *p = ptk_path(root, rel);
    FILE *f = fopen(p, "w");
    if (!f)
        die("fopen %s", p);
    fputs(content, f);
    fclose(f);
    free(p);
}

char *ptk_read(const char *root, const char *rel)
{
    char *p = ptk_path(root, rel);
    FILE *f = fopen(p, "r");
    free(p);
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    int c;
    while ((c = fgetc(f)) != EOF)
        fputc(c, mem);
    fclose(f);
    fclose(mem);
    return buf;
}

void ptk_symlink(const char *root, const char *rel, const char *target)
{
    char *p = ptk_path(root, rel);
    if (symlink(target, p) < 0)
        die("symlink %s", p);
    free(p);
}

int ptk_block_node(const char *root, const char *name, unsigned major, unsigned minor)
{
    char *rel = xasprintf("dev/%s", name);
    char *parent = strdup(rel);
    if (!parent)
        die("strdup");
    *strrchr(parent, '/') = '\0';
    ptk_mkdirs(root, parent);
    ptk_mkdirs(root, "dev/block");
    free(parent);
    char *p = ptk_path(root, rel);
    int made = mknod(p, S_IFBLK | 0600, makedev(major, minor));
    if (made < 0 && errno != EPERM)
        die("mknod %s", p);
    free(p);
    if (made == 0) {
        char *link = xasprintf("dev/block/%u:%u", major, minor);
        char *target = xasprintf("../%s", name);
        ptk_symlink(root, link, target);
        free(target);
        free(link);
    }
    free(rel);
    return made < 0 ? -1 : 0;
}

void ptk_init(const char *root)
{
    if (mkdir(root, 0755) < 0 && errno != EEXIST)
        die("mkdir %s", root);
    ptk_mkdirs(root, "bus/pci/devices");
    ptk_mkdirs(root, "bus/pci/drivers");
    ptk_mkdirs(root, "devices/pci0000:00");
    ptk_mkdirs(root, "module");
    ptk_mkdirs(root, "kernel/iommu_groups");
    ptk_write(root, "bus/pci/drivers_probe", "");
    ptk_write(root, "bus/pci/rescan", "");
    ptk_write(root, "modprobe.table", "");
}

char *ptk_new(void)
{
    const char *tmp = getenv("TMPDIR");
    char *root = xasprintf("%s/pcibind-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        die("mkdtemp %s", root);
    ptk_init(root);
    if (setenv("FAKE_SYSFS_ROOT", root, 1) < 0)
        die("setenv FAKE_SYSFS_ROOT");
    return root;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void ptk_destroy(char *root)
{
    if (!root)
        return;
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(root);
}

/* A driver directory's files, in the directory rel. */
static void driver_files(const char *root, const char *rel)
{
    ptk_mkdirs(root, rel);
    static const char *const files[] = {"bind", "unbind", "new_id", "remove_id", "uevent"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *f = xasprintf("%s/%s", rel, files[i]);
        ptk_write(root, f, "");
        free(f);
    }
}

static void driver_dir(const char *root, const char *driver)
{
    char *rel = xasprintf("bus/pci/drivers/%s", driver);
    driver_files(root, rel);
    free(rel);
}

static void module_link(const char *root, const char *module, const char *driver)
{
    char *rel = xasprintf("bus/pci/drivers/%s/module", driver);
    char *target = xasprintf("../../../../module/%s", module);
    ptk_symlink(root, rel, target);
    free(rel);
    free(target);
}

void ptk_module(const char *root, const char *module)
{
    char *rel = xasprintf("module/%s", module);
    ptk_mkdirs(root, rel);
    free(rel);
}

void ptk_loaded_driver(const char *root, const char *module, const char *driver)
{
    driver_dir(root, driver);
    ptk_module(root, module);
    char *dir = xasprintf("module/%s/drivers", module);
    ptk_mkdirs(root, dir);
    char *rel = xasprintf("%s/pci:%s", dir, driver);
    char *target = xasprintf("../../../bus/pci/drivers/%s", driver);
    ptk_symlink(root, rel, target);
    module_link(root, module, driver);
    free(dir);
    free(rel);
    free(target);
}

void ptk_register_driver(const char *root, const char *module, const char *driver, int vfio,
                         const char *ids)
{
    /* Made complete beside the tree, then renamed into bus/pci/drivers/ in one step. */
    char *stage = xasprintf(".registering-%s", driver);
    driver_files(root, stage);
    char *rel = xasprintf("%s/module", stage);
    char *target = xasprintf("../../../../module/%s", module);
    ptk_symlink(root, rel, target);
    free(rel);
    free(target);
    if (vfio) {
        rel = xasprintf("%s/fake_vfio", stage);
        ptk_write(root, rel, "");
        free(rel);
    }
    if (ids) {
        rel = xasprintf("%s/fake_ids", stage);
        char *line = xasprintf("%s\n", ids);
        ptk_write(root, rel, line);
        free(rel);
        free(line);
    }
    ptk_module(root, module);
    char *from = ptk_path(root, stage);
    rel = xasprintf("bus/pci/drivers/%s", driver);
    char *to = ptk_path(root, rel);
    if (rename(from, to) < 0)
        die("rename %s %s", from, to);
    free(from);
    free(to);
    free(rel);
    free(stage);
    char *dir = xasprintf("module/%s/drivers", module);
    ptk_mkdirs(root, dir);
    rel = xasprintf("%s/pci:%s", dir, driver);
    target = xasprintf("../../../bus/pci/drivers/%s", driver);
    ptk_symlink(root, rel, target);
    free(dir);
    free(rel);
    free(target);
}

void ptk_builtin_driver(const char *root, const char *driver, const char *module)
{
    driver_dir(root, driver);
    if (module) {
        ptk_module(root, module);
        char *rel = xasprintf("module/%s/version", module);
        ptk_write(root, rel, "1.0\n");
        free(rel);
    }
}

void ptk_driver_with_module_link_only(const char *root, const char *module, const char *driver)
{
    driver_dir(root, driver);
    ptk_module(root, module);
    module_link(root, module, driver);
}

/* "../" once per component of rel: the way from rel's directory back up to the root. */
static char *up_from(const char *rel)
{
    size_t depth = 1;
    for (const char *s = rel; *s; s++)
        depth += *s == '/';
    char *up = calloc(depth * 3 + 1, 1);
    if (!up)
        die("calloc");
    for (size_t i = 0; i < depth; i++)
        strcat(up, "../");
    return up;
}

/* DEV/NAME -> the root-relative path TO, as a link relative to the device's directory (the
 * kernel's links: driver, iommu_group). */
static void link_from_device(const char *root, const char *dev, const char *name, const char *to)
{
    char *up = up_from(dev);
    char *link = xasprintf("%s/%s", dev, name);
    char *target = xasprintf("%s%s", up, to);
    ptk_symlink(root, link, target);
    free(up);
    free(link);
    free(target);
}

void ptk_device_under(const char *root, const char *parent, const char *bdf, const char *modalias,
                      const char *driver)
{
    char *dev = xasprintf("%s/%s", parent, bdf);
    ptk_mkdirs(root, dev);
    char *f = xasprintf("%s/modalias", dev);
    char *line = xasprintf("%s\n", modalias);
    ptk_write(root, f, line);
    free(f);
    free(line);
    f = xasprintf("%s/driver_override", dev);
    ptk_write(root, f, "(null)\n");
    free(f);

    char *link = xasprintf("bus/pci/devices/%s", bdf);
    char *target = xasprintf("../../../%s", dev);
    ptk_symlink(root, link, target);
    free(link);
    free(target);

    if (driver) {
        char *to = xasprintf("bus/pci/drivers/%s", driver);
        link_from_device(root, dev, "driver", to);
        free(to);
        link = xasprintf("bus/pci/drivers/%s/%s", driver, bdf);
        target = xasprintf("../../../../%s", dev);
        ptk_symlink(root, link, target);
        free(link);
        free(target);
    }
    free(dev);
}

void ptk_device(const char *root, const char *bdf, const char *modalias, const char *driver)
{
    ptk_device_under(root, "devices/pci0000:00", bdf, modalias, driver);
}

void ptk_iommu_group(const char *root, unsigned group, const char *bdf)
{
    char *bus_link = xasprintf("%s/bus/pci/devices/%s", root, bdf);
    char target[PATH_MAX];
    ssize_t n = readlink(bus_link, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    if (strncmp(target, "../../../", 9) != 0)
        die("ptk_iommu_group: %s is no device link made by ptk_device()", bus_link);
    free(bus_link);
    const char *dev = target + 9;
    char *members = xasprintf("kernel/iommu_groups/%u/devices", group);
    ptk_mkdirs(root, members);
    char *link = xasprintf("%s/%s", members, bdf);
    char *to = xasprintf("../../../../%s", dev);
    ptk_symlink(root, link, to);
    free(link);
    free(to);
    to = xasprintf("kernel/iommu_groups/%u", group);
    link_from_device(root, dev, "iommu_group", to);
    free(to);
    free(members);
}

char *ptk_modprobe_log(const char *root)
{
    char *log = ptk_read(root, "modprobe.log");
    return log ? log : strdup("");
}

static void append_line(const char *root, const char *rel, const char *line)
{
    char *p = ptk_path(root, rel);
    FILE *f = fopen(p, "a");
    if (!f)
        die("fopen %s", p);
    fprintf(f, "%s\n", line);
    fclose(f);
    free(p);
}

void ptk_modprobe_table(const char *root, const char *line)
{
    append_line(root, "modprobe.table", line);
}

void ptk_driver_ids(const char *root, const char *driver, const char *pattern)
{
    char *rel = xasprintf("bus/pci/drivers/%s/fake_ids", driver);
    append_line(root, rel, pattern);
    free(rel);
}

void ptk_vfio_driver(const char *root, const char *module, const char *driver)
{
    ptk_loaded_driver(root, module, driver);
    char *rel = xasprintf("bus/pci/drivers/%s/fake_vfio", driver);
    ptk_write(root, rel, "");
    free(rel);
}

void ptk_fault(const char *root, const char *line)
{
    append_line(root, "fault.table", line);
}

char *ptk_write_log(const char *root)
{
    char *log = ptk_read(root, "write.log");
    return log ? log : strdup("");
}

/* The canonical path of rel under root, NULL when it does not resolve. */
static char *resolve(const char *root, const char *rel)
{
    char *p = ptk_path(root, rel);
    char *r = realpath(p, NULL);
    free(p);
    return r;
}

int ptk_is_bound_to(const char *root, const char *bdf, const char *driver)
{
    char *rel = xasprintf("bus/pci/devices/%s", bdf);
    char *dev = resolve(root, rel);
    free(rel);
    if (!dev)
        return 0;

    char *link = xasprintf("%s/driver", dev);
    char target[PATH_MAX];
    ssize_t n = readlink(link, target, sizeof target - 1);
    free(link);
    int ok;
    if (!driver) {
        /* No driver link, and no driver lists the device. */
        ok = n < 0;
        char *drivers = ptk_path(root, "bus/pci/drivers");
        DIR *d = opendir(drivers);
        struct dirent *e;
        while (ok && d && (e = readdir(d))) {
            struct stat st;
            char *p = xasprintf("%s/%s/%s", drivers, e->d_name, bdf);
            ok = lstat(p, &st) < 0;
            free(p);
        }
        if (d)
            closedir(d);
        free(drivers);
    } else if (n <= 0) {
        ok = 0;
    } else {
        target[n] = '\0';
        const char *base = strrchr(target, '/');
        ok = strcmp(base ? base + 1 : target, driver) == 0;
        /* The driver link must lead to the driver's directory, which must lead back. */
        rel = xasprintf("bus/pci/drivers/%s", driver);
        char *drv_dir = resolve(root, rel);
        free(rel);
        link = xasprintf("%s/driver", dev);
        char *via_link = realpath(link, NULL);
        free(link);
        ok = ok && drv_dir && via_link && strcmp(drv_dir, via_link) == 0;
        free(drv_dir);
        free(via_link);
        rel = xasprintf("bus/pci/drivers/%s/%s", driver, bdf);
        char *back = resolve(root, rel);
        free(rel);
        ok = ok && back && strcmp(back, dev) == 0;
        free(back);
    }
    free(dev);
    return ok;
}

char *ptk_override(const char *root, const char *bdf)
{
    char *rel = xasprintf("bus/pci/devices/%s/driver_override", bdf);
    char *s = ptk_read(root, rel);
    free(rel);
    if (s) {
        size_t len = strlen(s);
        if (len && s[len - 1] == '\n')
            s[len - 1] = '\0';
    }
    return s;
}

/* ## Hot removal and crashes */

/* Writes "1\n" to REL with open() and write(), which the kernel shim intercepts (fopen()'s
 * open inside libc it would not see). */
static void write_through_shim(const char *root, const char *rel)
{
    char *p = ptk_path(root, rel);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        die("open %s", p);
    if (write(fd, "1\n", 2) != 2)
        die("write %s", p);
    close(fd);
    free(p);
}

void ptk_remove(const char *root, const char *bdf)
{
    char *rel = xasprintf("bus/pci/devices/%s/remove", bdf);
    char *p = ptk_path(root, rel);
    struct stat st;
    if (lstat(p, &st) < 0) {
        char *dir = xasprintf("bus/pci/devices/%s", bdf);
        char *d = ptk_path(root, dir);
        if (stat(d, &st) < 0)
            die("%s", d);
        free(d);
        free(dir);
        ptk_write(root, rel, "");
    }
    write_through_shim(root, rel);
    free(p);
    free(rel);
}

void ptk_rescan(const char *root)
{
    char *p = ptk_path(root, "bus/pci/rescan");
    struct stat st;
    if (lstat(p, &st) < 0)
        ptk_write(root, "bus/pci/rescan", "");
    free(p);
    write_through_shim(root, "bus/pci/rescan");
}

int ptk_run_killed_after(unsigned n, void (*fn)(void *), void *arg)
{
    if (n == 0) {
        errno = EINVAL;
        die("ptk_run_killed_after(0, ...)");
    }
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        char value[32];
        snprintf(value, sizeof value, "%u", n);
        if (setenv("PTK_KILL_AFTER_WRITE", value, 1) < 0)
            die("setenv PTK_KILL_AFTER_WRITE");
        fn(arg);
        fflush(NULL);
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 99) {
        fprintf(stderr, "pcibind-testkit: the child of ptk_run_killed_after() exited with 99\n");
        exit(99);
    }
    return status;
}
