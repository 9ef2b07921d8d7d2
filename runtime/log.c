/* log: leveled logging to stderr, one write(2) per line. */
#include "runtime/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A line longer than this is cut; the cut is marked with "...". */
#define LOG_LINE_BYTES_MAX 4096

static _Atomic int log_min_level = LOG_LEVEL_INFO;

static const char *const log_level_names[] = {
    [LOG_LEVEL_DEBUG] = "debug",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_ERROR] = "error",
};

static const char *const log_level_tags[] = {
    [LOG_LEVEL_DEBUG] = "DEBUG",
    [LOG_LEVEL_INFO] = "INFO ",
    [LOG_LEVEL_WARN] = "WARN ",
    [LOG_LEVEL_ERROR] = "ERROR",
};

void log_set_level(log_level_t level) {
    atomic_store(&log_min_level, (int)level);
}

bool log_is_enabled(log_level_t level) {
    return (int)level >= atomic_load(&log_min_level);
}

int log_parse_level(const char *name, log_level_t *out) {
    for (int i = LOG_LEVEL_DEBUG; i <= LOG_LEVEL_ERROR; i++) {
        if (strcmp(name, log_level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* Writes the UTC time with milliseconds, e.g. "2026-12-03T13:20:00.123Z". */
static size_t log_format_time(char *buf, size_t size) {
    struct timespec now;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(buf + n, size - n, ".%03ldZ", now.tv_nsec / 1000000);
    return n + (m > 0 ? (size_t)m : 0);
}

/* Bazel and editors give paths like "kvnode/main.c"; keep them short. */
static const char *log_short_path(const char *file) {
    const char *p = strstr(file, "basalt/");
    return p ? p + strlen("basalt/") : file;
}

void log_write(log_level_t level, const char *file, int line, const char *fmt, ...) {
    char buf[LOG_LINE_BYTES_MAX];
    size_t n;
    int m;
    va_list ap;

    if (!log_is_enabled(level))
        return;

    n = log_format_time(buf, sizeof(buf));
    m = snprintf(buf + n, sizeof(buf) - n, " %s %s:%d ", log_level_tags[level],
                 log_short_path(file), line);
    n += m > 0 ? (size_t)m : 0;

    va_start(ap, fmt);
    m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);

    /* Leave room for the newline; mark a cut line so nobody trusts its end. */
    if (m < 0 || n + (size_t)m >= sizeof(buf) - 1) {
        n = sizeof(buf) - 5;
        memcpy(buf + n, "...", 3);
        n += 3;
    } else {
        n += (size_t)m;
    }
    buf[n++] = '\n';

    /* A failed write to stderr has nowhere to be reported. */
    ssize_t unused = write(STDERR_FILENO, buf, n);
    (void)unused;
}
