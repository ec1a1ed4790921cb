/* The context the writing tests use on a fake tree: module loading through `modprobe` (NULL =
 * never), lock files in STATE/locks, proc files from STATE/proc, alias tables from
 * `modules_dir` (NULL = STATE/lib-modules). STATE is usually the tree's root. */
#ifndef TESTCTX_H
#define TESTCTX_H

#include "fakesys.h"
#include "harness.h"

static inline pcibind_ctx *test_context(const char *root, const char *state, const char *modprobe,
                                        const char *modules_dir)
{
    pcibind_ctx *ctx = NULL;
    fs_mkdirs(state, "locks");
    fs_mkdirs(state, "proc/net");
    fs_mkdirs(state, "proc/self");
    CHECK_RC(pcibind_ctx_new(root, 0, &ctx), PCIBIND_OK);
    CHECK_RC(pcibind_ctx_set_modprobe(ctx, modprobe), PCIBIND_OK);
    char *locks = fs_path(state, "locks");
    CHECK_RC(pcibind_ctx_set_lock_dir(ctx, locks), PCIBIND_OK);
    free(locks);
    char *proc = fs_path(state, "proc");
    CHECK_RC(pcibind_ctx_set_proc_root(ctx, proc), PCIBIND_OK);
    free(proc);
    char *modules = modules_dir ? strdup(modules_dir) : fs_path(state, "lib-modules");
    CHECK_RC(pcibind_ctx_set_modules_dir(ctx, modules), PCIBIND_OK);
    free(modules);
    return ctx;
}

#endif
