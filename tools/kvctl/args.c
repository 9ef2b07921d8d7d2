/* args: kvctl's flags with getopt_long. */
#include "tools/kvctl/args.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/parse.h"

int kvctl_parse_duration_ms(const char *text, int64_t *ms) {
    char with_unit[32];
    uint64_t parsed;

    /* A bare number is seconds. */
    if (text[0] != '\0' && text[strspn(text, "0123456789")] == '\0') {
        if (strlen(text) + 2 > sizeof(with_unit))
            return -1;
        snprintf(with_unit, sizeof(with_unit), "%ss", text);
        text = with_unit;
    }
    if (parse_duration_ms(text, 1, KVCTL_TIMEOUT_MS_MAX, &parsed) != 0)
        return -1;
    *ms = (int64_t)parsed;
    return 0;
}

static int kvctl_parse_consistency(const char *text, Basalt__V1__Consistency *out) {
    if (strcmp(text, "strong") == 0)
        *out = BASALT__V1__CONSISTENCY__CONSISTENCY_STRONG;
    else if (strcmp(text, "eventual") == 0)
        *out = BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL;
    else
        return -1;
    return 0;
}

static void kvctl_args_init(kvctl_args *a) {
    const char *env = getenv(KVCTL_ENDPOINTS_ENV);

    memset(a, 0, sizeof(*a));
    a->endpoints = env && env[0] ? env : KVCTL_ENDPOINT_DEFAULT;
    a->output = KVCTL_OUTPUT_TABLE;
    a->timeout_ms = KVCTL_TIMEOUT_MS_DEFAULT;
    a->consistency = BASALT__V1__CONSISTENCY__CONSISTENCY_STRONG;
}

/* Applies one flag; returns 0 or -1 with `why` filled. */
static int kvctl_apply_flag(kvctl_args *a, int opt, const char *value, char *why, size_t why_size) {
    uint64_t n;

    switch (opt) {
    case 'e':
        a->endpoints = value;
        return 0;
    case 'o':
        if (strcmp(value, "table") == 0)
            a->output = KVCTL_OUTPUT_TABLE;
        else if (strcmp(value, "json") == 0)
            a->output = KVCTL_OUTPUT_JSON;
        else
            break;
        return 0;
    case 't':
        a->timeout_given = true;
        if (kvctl_parse_duration_ms(value, &a->timeout_ms) == 0)
            return 0;
        break;
    case 'c':
        a->flags_given |= KVCTL_FLAG_CONSISTENCY;
        if (kvctl_parse_consistency(value, &a->consistency) == 0)
            return 0;
        break;
    case 'l':
        a->flags_given |= KVCTL_FLAG_LIMIT;
        /* Up to UINT32_MAX: the server enforces the scan maximum, so the
         * user sees its message. */
        if (parse_u64(value, 0, UINT32_MAX, &n) == 0) {
            a->limit = (uint32_t)n;
            return 0;
        }
        break;
    case 'a':
        a->flags_given |= KVCTL_FLAG_AFTER;
        a->after = true;
        return 0;
    case 'h':
        a->help = true;
        return 0;
    default:
        snprintf(why, why_size, "unknown flag or missing value");
        return -1;
    }
    snprintf(why, why_size, "invalid value '%s' for --%s", value,
             opt == 'o'   ? "output (table or json)"
             : opt == 't' ? "timeout (e.g. 500ms, 5s, 1m)"
             : opt == 'c' ? "consistency (strong or eventual)"
                          : "limit (a whole number)");
    return -1;
}

const char *kvctl_flag_name(unsigned flag) {
    if (flag & KVCTL_FLAG_CONSISTENCY)
        return "--consistency";
    if (flag & KVCTL_FLAG_LIMIT)
        return "--limit";
    return "--after";
}

int kvctl_parse_args(int argc, char **argv, kvctl_args *a, char *why, size_t why_size) {
    static const struct option options[] = {
        {"endpoints", required_argument, NULL, 'e'},
        {"output", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 't'},
        {"consistency", required_argument, NULL, 'c'},
        {"limit", required_argument, NULL, 'l'},
        {"after", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    kvctl_args_init(a);
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == '?') {
            snprintf(why, why_size, "unknown flag '%s' or missing value", argv[optind - 1]);
            return -1;
        }
        if (kvctl_apply_flag(a, opt, optarg, why, why_size) != 0)
            return -1;
    }
    if (optind < argc)
        a->command = argv[optind++];
    for (; optind < argc; optind++) {
        if (a->positional_count == KVCTL_POSITIONALS_MAX) {
            snprintf(why, why_size, "too many arguments");
            return -1;
        }
        a->positionals[a->positional_count++] = argv[optind];
    }
    return 0;
}
