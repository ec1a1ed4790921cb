#define _GNU_SOURCE
#include "fakesys.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fakesys: ");
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

char *fs_path(const char *root, const char *rel)
{
    return xasprintf("%s/%s", root, rel);
}

void fs_mkdirs(const char *root, const char *rel)
{
    char *p = fs_path(root, rel);
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

void fs_write(const char *root, const char *rel, const char *content)
{
    char *p = fs_path(root, rel);
    FILE *f = fopen(p, "w");
    if (!f)
        die("fopen %s", p);
    fputs(content, f);
    fclose(f);
    free(p);
}

char *fs_read(const char *root, const char *rel)
{
    char *p = fs_path(root, rel);
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

void fs_symlink(const char *root, const char *rel, const char *target)
{
    char *p = fs_path(root, rel);
    if (symlink(target, p) < 0)
        die("symlink %s", p);
    free(p);
}

char *fs_new(void)
{
    const char *tmp = getenv("TMPDIR");
    char *root = xasprintf("%s/pcibind-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        die("mkdtemp %s", root);
    fs_mkdirs(root, "bus/pci/devices");
    fs_mkdirs(root, "bus/pci/drivers");
    fs_mkdirs(root, "devices/pci0000:00");
    fs_mkdirs(root, "module");
    fs_mkdirs(root, "kernel/iommu_groups");
    fs_write(root, "modprobe.table", "");
    setenv("FAKE_SYSFS_ROOT", root, 1);
    return root;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void fs_destroy(char *root)
{
    if (!root)
        return;
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(root);
}

static void driver_dir(const char *root, const char *driver)
{
    char *rel = xasprintf("bus/pci/drivers/%s", driver);
    fs_mkdirs(root, rel);
    static const char *const files[] = {"bind", "unbind", "new_id", "remove_id", "uevent"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *f = xasprintf("%s/%s", rel, files[i]);
        fs_write(root, f, "");
        free(f);
    }
    free(rel);
}

static void module_link(const char *root, const char *module, const char *driver)
{
    char *rel = xasprintf("bus/pci/drivers/%s/module", driver);
    char *target = xasprintf("../../../../module/%s", module);
    fs_symlink(root, rel, target);
    free(rel);
    free(target);
}

void fs_module(const char *root, const char *module)
{
    char *rel = xasprintf("module/%s", module);
    fs_mkdirs(root, rel);
    free(rel);
}

void fs_loaded_driver(const char *root, const char *module, const char *driver)
{
    driver_dir(root, driver);
    fs_module(root, module);
    char *dir = xasprintf("module/%s/drivers", module);
    fs_mkdirs(root, dir);
    char *rel = xasprintf("%s/pci:%s", dir, driver);
    char *target = xasprintf("../../../bus/pci/drivers/%s", driver);
    fs_symlink(root, rel, target);
    module_link(root, module, driver);
    free(dir);
    free(rel);
    free(target);
}

void fs_builtin_driver(const char *root, const char *driver, const char *module)
{
    driver_dir(root, driver);
    if (module) {
        fs_module(root, module);
        char *rel = xasprintf("module/%s/version", module);
        fs_write(root, rel, "1.0\n");
        free(rel);
    }
}

void fs_driver_with_module_link_only(const char *root, const char *module, const char *driver)
{
    driver_dir(root, driver);
    fs_module(root, module);
    module_link(root, module, driver);
}

void fs_device(const char *root, const char *bdf, const char *modalias, const char *driver)
{
    char *dev = xasprintf("devices/pci0000:00/%s", bdf);
    fs_mkdirs(root, dev);
    char *f = xasprintf("%s/modalias", dev);
    char *line = xasprintf("%s\n", modalias);
    fs_write(root, f, line);
    free(f);
    free(line);
    f = xasprintf("%s/driver_override", dev);
    fs_write(root, f, "(null)\n");
    free(f);

    char *link = xasprintf("bus/pci/devices/%s", bdf);
    char *target = xasprintf("../../../devices/pci0000:00/%s", bdf);
    fs_symlink(root, link, target);
    free(link);
    free(target);

    if (driver) {
        link = xasprintf("%s/driver", dev);
        target = xasprintf("../../../bus/pci/drivers/%s", driver);
        fs_symlink(root, link, target);
        free(link);
        free(target);
        link = xasprintf("bus/pci/drivers/%s/%s", driver, bdf);
        target = xasprintf("../../../../devices/pci0000:00/%s", bdf);
        fs_symlink(root, link, target);
        free(link);
        free(target);
    }
    free(dev);
}

void fs_modprobe_table(const char *root, const char *line)
{
    char *p = fs_path(root, "modprobe.table");
    FILE *f = fopen(p, "a");
    if (!f)
        die("fopen %s", p);
    fprintf(f, "%s\n", line);
    fclose(f);
    free(p);
}

char *fs_modprobe_log(const char *root)
{
    char *log = fs_read(root, "modprobe.log");
    return log ? log : strdup("");
}
