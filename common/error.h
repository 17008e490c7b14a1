/* Error codes shared by every module: negative errno-style integers, with
 * a readable string from me_strerror() and a mapping onto the wire's gRPC
 * status codes. Fallible functions return 0 or one of these. */
#ifndef ME_ERROR_H
#define ME_ERROR_H

#include <stddef.h>

#include "include/metaembed.h"  /* ME_CODE_*: the status codes */

#define ME_ERRORS(X)                                                        \
    X(ME_EINVAL,    -1,  "invalid argument",            ME_CODE_INVALID_ARGUMENT) \
    X(ME_ENOTFOUND, -2,  "not found",                   ME_CODE_NOT_FOUND)        \
    X(ME_EEXIST,    -3,  "already exists",              ME_CODE_ALREADY_EXISTS)   \
    X(ME_ENOMEM,    -4,  "out of memory",               ME_CODE_RESOURCE_EXHAUSTED) \
    X(ME_ETOOBIG,   -5,  "limit exceeded",              ME_CODE_RESOURCE_EXHAUSTED) \
    X(ME_EIO,       -6,  "I/O error",                   ME_CODE_INTERNAL)         \
    X(ME_ETIMEDOUT, -7,  "deadline exceeded",           ME_CODE_DEADLINE_EXCEEDED) \
    X(ME_EUNAVAIL,  -8,  "unavailable",                 ME_CODE_UNAVAILABLE)      \
    X(ME_EPROTO,    -9,  "malformed message",           ME_CODE_INVALID_ARGUMENT) \
    X(ME_EUNIMPL,   -10, "not implemented",             ME_CODE_UNIMPLEMENTED)    \
    X(ME_ECORRUPT,  -11, "corrupt data",                ME_CODE_DATA_LOSS)        \
    X(ME_EINTERNAL, -12, "internal error",              ME_CODE_INTERNAL)         \
    X(ME_ERANGE,    -13, "out of range",                ME_CODE_OUT_OF_RANGE)     \
    X(ME_ESTALE,    -14, "superseded by a newer version", ME_CODE_FAILED_PRECONDITION)

enum {
    ME_OK = 0,
#define ME__ERR_ENUM(name, val, str, status) name = val,
    ME_ERRORS(ME__ERR_ENUM)
#undef ME__ERR_ENUM
};

/* The one wording of a missing collection, for every daemon and client
 * (printf format, one %s: the name); callers append their own hint. */
#define ME_NO_COLLECTION "collection '%s' does not exist"
/* The hint a daemon adds: it cannot know which interface asked. */
#define ME_NO_COLLECTION_HINT " (create it first, or check the name: list the collections to see them)"

const char *me_strerror(int err);
/* snprintf into a caller's error buffer; a NULL or empty buffer is fine. */
void me_set_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The wire status code for an error (0 → OK). */
int me_error_status(int err);
/* Name of a status code, e.g. "INVALID_ARGUMENT". */
const char *me_status_name(int status);

#endif
