/* args: kvctl's command line, parsed into one struct.
 *
 * Global flags (--endpoints, --output, --timeout) and command flags
 * (--consistency, --limit) may stand anywhere after "kvctl"; the first word
 * that is not a flag names the command and the rest are its arguments. "--"
 * ends the flags, so keys that start with "-" can be given.
 */
#ifndef BASALT_TOOLS_KVCTL_ARGS_H
#define BASALT_TOOLS_KVCTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basalt/v1/kv.pb-c.h"

#define KVCTL_ENDPOINT_DEFAULT   "127.0.0.1:7379"
#define KVCTL_ENDPOINTS_ENV      "BASALT_ENDPOINTS"
#define KVCTL_TIMEOUT_MS_DEFAULT 5000
/* kvctl split's timeout when --timeout is not given. */
#define KVCTL_SPLIT_TIMEOUT_MS 15000
/* kvctl move's and node drain's (the whole wait), when --timeout is not
 * given: a move copies a shard (64 MB by default) by snapshot. */
#define KVCTL_MOVE_TIMEOUT_MS  (5 * 60 * 1000)
#define KVCTL_DRAIN_TIMEOUT_MS (30 * 60 * 1000)
/* Longest --timeout accepted: one hour. */
#define KVCTL_TIMEOUT_MS_MAX  (3600 * 1000)
#define KVCTL_POSITIONALS_MAX 8

typedef enum { KVCTL_OUTPUT_TABLE, KVCTL_OUTPUT_JSON } kvctl_output;

/* Flags a command may take besides the global ones. */
enum {
    KVCTL_FLAG_CONSISTENCY = 1 << 0,
    KVCTL_FLAG_LIMIT = 1 << 1,
    KVCTL_FLAG_AFTER = 1 << 2,
};

typedef struct {
    const char *endpoints;
    kvctl_output output;
    int64_t timeout_ms;
    bool timeout_given;
    bool help;
    const char *command; /* NULL when none was given */
    const char *positionals[KVCTL_POSITIONALS_MAX];
    int positional_count;
    unsigned flags_given; /* KVCTL_FLAG_* seen on the line */
    Basalt__V1__Consistency consistency;
    uint32_t limit;
    bool after; /* scan: START itself is excluded */
} kvctl_args;

/* "--consistency", ... for one KVCTL_FLAG_* bit. */
const char *kvctl_flag_name(unsigned flag);

/* Parses argv (which getopt may reorder). Returns 0, or -1 with a message in
 * `why` for a usage error. Environment: BASALT_ENDPOINTS is the default of
 * --endpoints. */
int kvctl_parse_args(int argc, char **argv, kvctl_args *args, char *why, size_t why_size);

/* Parses "250ms", "5s", "2m" or a bare number of seconds into milliseconds.
 * Returns 0, or -1 for anything else, zero, or more than KVCTL_TIMEOUT_MS_MAX. */
int kvctl_parse_duration_ms(const char *text, int64_t *ms);

#endif
