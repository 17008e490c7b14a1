#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int me_log_level = ME_LOG_INFO;
static char g_role[32] = "metaembed";

void me_log_set_role(const char *role) { snprintf(g_role, sizeof g_role, "%s", role); }

int me_log_level_from_name(const char *name) {
    static const char *names[] = { "debug", "info", "warn", "error" };
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

void me_log_write(int level, const char *file, int line, const char *fmt, ...) {
    static const char *tags[] = { "DEBUG", "INFO", "WARN", "ERROR" };
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line so lines from several threads do not interleave. */
    if (level == ME_LOG_DEBUG)
        fprintf(stderr, "%s.%03dZ %s [%s] %s (%s:%d)\n", ts, (int)(tv.tv_usec / 1000),
                tags[level], g_role, msg, file, line);
    else
        fprintf(stderr, "%s.%03dZ %s [%s] %s\n", ts, (int)(tv.tv_usec / 1000),
                tags[level], g_role, msg);
}
