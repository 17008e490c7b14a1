/* Files the project ships (models, the bundled data) found without
 * depending on the working directory: the repository the binary belongs
 * to (walking up from the current directory, then from the binary's
 * folder, to the folder with Makefile and encoder/ side by side), then an
 * installed tree (PREFIX/share/metaembed beside PREFIX/bin, where `make
 * install` puts the models). */
#ifndef ME_PATHS_H
#define ME_PATHS_H

#include <stddef.h>

/* 1 when p names a regular file. */
int me_path_is_file(const char *p);

/* The repository root found from dir (walking up), into out: 1 found, 0 not. */
int me_repo_root_from(const char *dir, char *out, size_t cap);

/* The folder of the running binary (readlink /proc/self/exe): 0 or ME_ENOTFOUND. */
int me_exe_dir(char *out, size_t cap);

/* rel (e.g. "models/x.safetensors") under the repository root, or under
 * PREFIX/share/metaembed: 0 with the path in out, or ME_ENOTFOUND. */
int me_find_shipped(const char *rel, char *out, size_t cap);

/* A model path as given (--model): itself when it is a file; a relative one
 * that is not a file here is looked up as a shipped file. ME_ENOTFOUND with
 * an error that says where it looked and to give --model. */
int me_resolve_model(const char *given, char *out, size_t cap, char *err, size_t errcap);

#endif
