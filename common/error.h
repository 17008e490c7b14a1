/* Error codes shared by every module: negative errno-style integers, with
 * a readable string from me_strerror() and a mapping onto the wire's gRPC
 * status codes. Fallible functions return 0 or one of these. */
#ifndef ME_ERROR_H
#define ME_ERROR_H

#include <stddef.h>

#define ME_ERRORS(X)                                                        \
    X(ME_EINVAL,    -1,  "invalid argument",            3  /* INVALID_ARGUMENT */) \
    X(ME_ENOTFOUND, -2,  "not found",                   5  /* NOT_FOUND */)        \
    X(ME_EEXIST,    -3,  "already exists",              6  /* ALREADY_EXISTS */)   \
    X(ME_ENOMEM,    -4,  "out of memory",               8  /* RESOURCE_EXHAUSTED */) \
    X(ME_ETOOBIG,   -5,  "limit exceeded",              8  /* RESOURCE_EXHAUSTED */) \
    X(ME_EIO,       -6,  "I/O error",                   13 /* INTERNAL */)         \
    X(ME_ETIMEDOUT, -7,  "deadline exceeded",           4  /* DEADLINE_EXCEEDED */) \
    X(ME_EUNAVAIL,  -8,  "unavailable",                 14 /* UNAVAILABLE */)      \
    X(ME_EPROTO,    -9,  "malformed message",           3  /* INVALID_ARGUMENT */) \
    X(ME_EUNIMPL,   -10, "not implemented",             12 /* UNIMPLEMENTED */)    \
    X(ME_ECORRUPT,  -11, "corrupt data",                15 /* DATA_LOSS */)        \
    X(ME_EINTERNAL, -12, "internal error",              13 /* INTERNAL */)         \
    X(ME_ERANGE,    -13, "out of range",                11 /* OUT_OF_RANGE */)

enum {
    ME_OK = 0,
#define ME__ERR_ENUM(name, val, str, status) name = val,
    ME_ERRORS(ME__ERR_ENUM)
#undef ME__ERR_ENUM
};

/* gRPC status codes (same numbers as proto/metaembed.proto StatusCode). */
enum {
    ME_STATUS_OK = 0,
    ME_STATUS_INVALID_ARGUMENT = 3,
    ME_STATUS_DEADLINE_EXCEEDED = 4,
    ME_STATUS_FAILED_PRECONDITION = 9,
    ME_STATUS_NOT_FOUND = 5,
    ME_STATUS_ALREADY_EXISTS = 6,
    ME_STATUS_RESOURCE_EXHAUSTED = 8,
    ME_STATUS_OUT_OF_RANGE = 11,
    ME_STATUS_UNIMPLEMENTED = 12,
    ME_STATUS_INTERNAL = 13,
    ME_STATUS_UNAVAILABLE = 14,
    ME_STATUS_DATA_LOSS = 15,
};

const char *me_strerror(int err);
/* snprintf into a caller's error buffer; a NULL or empty buffer is fine. */
void me_set_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The wire status code for an error (0 → OK). */
int me_error_status(int err);
/* Name of a status code, e.g. "INVALID_ARGUMENT". */
const char *me_status_name(int status);

#endif
