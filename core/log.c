/* Logging: one line per message, written with a single write(2) so lines
 * from many threads never interleave; and the access log, one JSON object
 * per line, appended with a single write as well. */

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096 /* longer messages are cut, marked with "..." */

static _Atomic int current_level = LOG_INFO;

/* The access log fd; -1 = off. Writers hold the read side while they
 * write so that a reopen (SIGHUP) never closes an fd under them. */
static int access_fd = -1;
static atomic_bool access_on; /* lets callers skip building a line */
static pthread_rwlock_t access_lock = PTHREAD_RWLOCK_INITIALIZER;

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

enum log_level log_level_parse(const char *name)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {{"error", LOG_ERROR},
                 {"warn", LOG_WARN},
                 {"warning", LOG_WARN},
                 {"info", LOG_INFO},
                 {"debug", LOG_DEBUG}};

    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0)
            return names[i].level;
    return LOG_INFO;
}

int log_enabled(enum log_level level)
{
    return (int)level <=
           atomic_load_explicit(&current_level, memory_order_relaxed);
}

static const char *level_name(enum log_level level)
{
    switch (level) {
    case LOG_ERROR:
        return "ERROR";
    case LOG_WARN:
        return "WARN";
    case LOG_INFO:
        return "INFO";
    case LOG_DEBUG:
        return "DEBUG";
    }
    return "?";
}

/* Writes all of buf with as few write() calls as the kernel allows; one
 * in practice (stderr lines are short; regular files take it whole). */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* 2024-05-01T12:00:00.123Z */
static size_t format_time(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return n + (m > 0 ? (size_t)m : 0);
}

/* Appends msg to line[len..cap) and returns the new length. A message must
 * stay one line: a CR or LF from request data would let a client forge log
 * lines, so control bytes are shown escaped. */
static size_t append_escaped(char *line, size_t len, size_t cap,
                             const char *msg)
{
    for (const unsigned char *p = (const unsigned char *)msg;
         *p && len + 2 <= cap; p++) {
        if (*p == '\n' || *p == '\r') {
            line[len++] = '\\';
            line[len++] = *p == '\n' ? 'n' : 'r';
        } else if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            line[len++] = '?';
        } else {
            line[len++] = (char)*p;
        }
    }
    return len;
}

void log_vmsg(enum log_level level, const char *component, const char *fmt,
              va_list ap)
{
    char msg[LINE_MAX_BYTES];
    char line[LINE_MAX_BYTES + 64];
    const size_t body_cap = sizeof line - 5; /* room for "...\n" */

    if (!log_enabled(level))
        return;
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        return;
    size_t len = format_time(line, sizeof line);
    int m = snprintf(line + len, sizeof line - len, " %s [%s] ",
                     level_name(level), component ? component : "core");
    if (m < 0)
        return;
    len = append_escaped(line, len + (size_t)m, body_cap, msg);
    if ((size_t)n >= sizeof msg || len + 2 > body_cap) {
        memcpy(line + len, "...", 3); /* the message was cut */
        len += 3;
    }
    line[len++] = '\n';
    write_all(STDERR_FILENO, line, len);
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, component, fmt, ap);
    va_end(ap);
}

/* ---- access log ---- */

static void close_fd(int fd)
{
    if (fd > STDERR_FILENO)
        close(fd);
}

int access_log_open(const char *path)
{
    int fd = -1;

    if (path && strcmp(path, "-") == 0) {
        fd = STDERR_FILENO;
    } else if (path && path[0]) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            int saved = errno;
            log_msg(LOG_ERROR, "log", "cannot open access log %s: %s", path,
                    strerror(saved));
            errno = saved;
            return -1; /* the old access log stays open */
        }
    }
    pthread_rwlock_wrlock(&access_lock);
    int old = access_fd;
    access_fd = fd;
    atomic_store(&access_on, fd >= 0);
    pthread_rwlock_unlock(&access_lock);
    close_fd(old);
    return 0;
}

bool access_log_enabled(void)
{
    return atomic_load_explicit(&access_on, memory_order_relaxed);
}

void access_log_write(const char *json_line, size_t len)
{
    struct iovec iov[2];
    int parts = 1;

    if (!json_line || len == 0)
        return;
    /* The newline goes out in the same writev(), so a line is never split
     * between two appends. */
    iov[0].iov_base = (void *)json_line;
    iov[0].iov_len = len;
    if (json_line[len - 1] != '\n') {
        iov[1].iov_base = "\n";
        iov[1].iov_len = 1;
        parts = 2;
    }
    pthread_rwlock_rdlock(&access_lock);
    if (access_fd >= 0) {
        ssize_t n;
        do
            n = writev(access_fd, iov, parts);
        while (n < 0 && errno == EINTR);
        /* Only a pipe or a full disk writes part of it; finish the line. */
        if (n >= 0 && (size_t)n < len + (size_t)(parts - 1)) {
            size_t done = (size_t)n;
            if (done < len)
                write_all(access_fd, json_line + done, len - done);
            if (parts == 2)
                write_all(access_fd, "\n", 1);
        }
    }
    pthread_rwlock_unlock(&access_lock);
}

void access_log_close(void)
{
    access_log_open("");
}

size_t access_log_field_len(const char *s, size_t len)
{
    if (len <= ACCESS_LOG_FIELD_MAX)
        return len;
    len = ACCESS_LOG_FIELD_MAX;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
        len--; /* s[len] continues the character: cut before it starts */
    return len;
}
