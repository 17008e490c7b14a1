/* Logging: one line per event to stderr, "time level [role] message".
 * The macros test the level before formatting, so a disabled debug line
 * costs one comparison. */
#ifndef ME_LOG_H
#define ME_LOG_H

enum { ME_LOG_DEBUG = 0, ME_LOG_INFO = 1, ME_LOG_WARN = 2, ME_LOG_ERROR = 3 };

extern int me_log_level;

void me_log_set_role(const char *role);
/* "debug" | "info" | "warn" | "error"; returns -1 for anything else. */
int me_log_level_from_name(const char *name);
void me_log_write(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define ME_LOG(level, ...)                                                   \
    do { if ((level) >= me_log_level)                                        \
             me_log_write((level), __FILE__, __LINE__, __VA_ARGS__); } while (0)
#define me_debug(...) ME_LOG(ME_LOG_DEBUG, __VA_ARGS__)
#define me_info(...)  ME_LOG(ME_LOG_INFO, __VA_ARGS__)
#define me_warn(...)  ME_LOG(ME_LOG_WARN, __VA_ARGS__)
#define me_error(...) ME_LOG(ME_LOG_ERROR, __VA_ARGS__)

#endif
