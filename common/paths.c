/* Finding shipped files independently of the working directory: see paths.h. */
#include "common/paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

int me_path_is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int me_repo_root_from(const char *dir, char *out, size_t cap) {
    char d[PATH_MAX], probe[PATH_MAX + 16];
    if (!realpath(dir, d)) return 0;
    for (;;) {
        snprintf(probe, sizeof probe, "%s/encoder", d);
        int has_enc = is_dir(probe);
        snprintf(probe, sizeof probe, "%s/Makefile", d);
        if (has_enc && me_path_is_file(probe)) {
            snprintf(out, cap, "%s", d);
            return 1;
        }
        char *slash = strrchr(d, '/');
        if (!slash || slash == d) return 0;
        *slash = 0;
    }
}

int me_exe_dir(char *out, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return ME_ENOTFOUND;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return ME_ENOTFOUND;
    *slash = 0;
    snprintf(out, cap, "%s", exe);
    return 0;
}

/* Joins base/rel into out when that is a file. */
static int try_under(const char *base, const char *rel, char *out, size_t cap) {
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    if (!me_path_is_file(p)) return 0;
    snprintf(out, cap, "%s", p);
    return 1;
}

int me_find_shipped(const char *rel, char *out, size_t cap) {
    char root[PATH_MAX], exe[PATH_MAX];
    if (me_repo_root_from(".", root, sizeof root) && try_under(root, rel, out, cap)) return 0;
    if (me_exe_dir(exe, sizeof exe) != 0) return ME_ENOTFOUND;
    if (me_repo_root_from(exe, root, sizeof root) && try_under(root, rel, out, cap)) return 0;
    char share[PATH_MAX + 32];
    snprintf(share, sizeof share, "%s/../share/metaembed", exe);
    return try_under(share, rel, out, cap) ? 0 : ME_ENOTFOUND;
}

int me_resolve_model(const char *given, char *out, size_t cap, char *err, size_t errcap) {
    if (me_path_is_file(given)) {
        snprintf(out, cap, "%s", given);
        return 0;
    }
    if (given[0] != '/' && me_find_shipped(given, out, cap) == 0) return 0;
    char cwd[PATH_MAX], exe[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "?");
    if (me_exe_dir(exe, sizeof exe) != 0) snprintf(exe, sizeof exe, "?");
    if (given[0] == '/')
        me_set_err(err, errcap, "cannot open %s: no such file (give --model PATH to a model file)", given);
    else
        me_set_err(err, errcap, "cannot open %s: not found in %s, in the metaembed repository, nor in "
                   "%s/../share/metaembed ('make install' puts the shipped models there); give --model PATH "
                   "to a model file", given, cwd, exe);
    return ME_ENOTFOUND;
}
