#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>

const char *me_strerror(int err) {
    switch (err) {
    case ME_OK: return "ok";
#define ME__ERR_STR(name, val, str, status) case name: return str;
    ME_ERRORS(ME__ERR_STR)
#undef ME__ERR_STR
    default: return "unknown error";
    }
}

int me_error_status(int err) {
    switch (err) {
    case ME_OK: return ME_CODE_OK;
#define ME__ERR_STATUS(name, val, str, status) case name: return status;
    ME_ERRORS(ME__ERR_STATUS)
#undef ME__ERR_STATUS
    default: return ME_CODE_INTERNAL;
    }
}

const char *me_status_name(int status) {
    static const char *names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    };
    if (status < 0 || status >= (int)(sizeof names / sizeof names[0])) return "UNKNOWN";
    return names[status];
}

void me_set_err(char *err, size_t cap, const char *fmt, ...) {
    if (!err || !cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}
