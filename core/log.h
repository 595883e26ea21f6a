/* Logging. Lines go to stderr as `time level [component] message`.
 * Nothing that could carry a secret (provider keys, client keys, the
 * Authorization header) is ever passed here: callers log key *hashes* and
 * upstream *names*, never header values. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(enum log_level level);
enum log_level log_level_parse(const char *name); /* unknown → LOG_INFO */
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *component, const char *fmt,
              va_list ap);

/* Access log: one JSON object per line; "" disables, "-" is stderr. */
int access_log_open(const char *path);
void access_log_write(const char *json_line, size_t len);
/* Longest value of one access-log field: a client-chosen string (a model
 * name, a header) must not turn one line into megabytes. */
#define ACCESS_LOG_FIELD_MAX 256
/* len cut to ACCESS_LOG_FIELD_MAX bytes, never inside a UTF-8 sequence. */
size_t access_log_field_len(const char *s, size_t len);
/* False when the access log is off: callers skip building lines. */
bool access_log_enabled(void);
void access_log_close(void);

#endif
