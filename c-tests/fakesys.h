/* Fake sysfs trees for the C tests, laid out like the kernel's:
 *   devices/pci0000:00/BDF/{modalias,driver_override,driver -> ...}
 *   bus/pci/devices/BDF -> ../../../devices/pci0000:00/BDF
 *   bus/pci/drivers/DRV/{bind,unbind,new_id,remove_id,module -> ../../../../module/MOD}
 *   module/MOD/drivers/pci:DRV -> ../../../bus/pci/drivers/DRV
 * plus two files of our own at the root for the fake modprobe: modprobe.table (what each module
 * registers when loaded) and modprobe.log (one line per run, with its argv). */
#ifndef FAKESYS_H
#define FAKESYS_H

/* A new empty tree in a temp dir; the caller frees the path with fs_destroy(). Also exports
 * FAKE_SYSFS_ROOT so the fake modprobe (a child process) finds the tree. */
char *fs_new(void);
void fs_destroy(char *root);

/* A loadable module, loaded, that registers PCI driver DRV (both links). */
void fs_loaded_driver(const char *root, const char *module, const char *driver);
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

/* Adds a line to modprobe.table: "MOD DRV" (loading registers DRV), "MOD -" (loads, registers
 * no PCI driver), "MOD =" (built in: succeeds, changes nothing), "MOD !TEXT" (fails: TEXT on
 * stderr, exit 1). Modules not in the table fail as "not found". */
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
