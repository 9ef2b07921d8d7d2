/* log: the one leveled logger of every Basalt program, writing to stderr.
 *
 * Lines look like "2026-12-03T13:20:00.123Z INFO  kvnode/main.c:42 listening on ...".
 * Messages are lower-case and carry the ids that matter (node, shard, term).
 * Thread-safe: each line goes out in a single write(2), so lines never mix.
 */
#ifndef BASALT_RUNTIME_LOG_H
#define BASALT_RUNTIME_LOG_H

#include <stdbool.h>

typedef enum {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_ERROR = 3,
} log_level_t;

/* Lines below `level` are dropped. The default is LOG_LEVEL_INFO. */
void log_set_level(log_level_t level);

/* True when a line at `level` would be written. */
bool log_is_enabled(log_level_t level);

/* Parses "debug", "info", "warn" or "error" into *out. Returns 0, or -1 for
 * any other name (and leaves *out alone). */
int log_parse_level(const char *name, log_level_t *out);

/* Writes one line. Use the macros below, which fill in file and line. */
void log_write(log_level_t level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...)  log_write(LOG_LEVEL_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LEVEL_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __FILE__, __LINE__, __VA_ARGS__)

#endif
