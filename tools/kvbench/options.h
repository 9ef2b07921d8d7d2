/* options: kvbench's command line, checked whole before anything runs. */
#ifndef BASALT_TOOLS_KVBENCH_OPTIONS_H
#define BASALT_TOOLS_KVBENCH_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tools/kvbench/runner.h"

#define KVBENCH_TARGET_DEFAULT "basalt://127.0.0.1:7379"
/* Largest --records and --operations. */
#define KVBENCH_COUNT_MAX (UINT64_C(1) << 40)
/* Longest --duration and --timeout. */
#define KVBENCH_DURATION_MS_MAX (24ull * 3600 * 1000)
/* Highest --rate, operations per second. */
#define KVBENCH_RATE_MAX 10000000

typedef enum {
    OUTPUT_TABLE,
    OUTPUT_JSON,
} output_format;

typedef struct {
    const char *target_spec;
    run_config run; /* target left NULL: main opens it */
    bool phase_load, phase_run;
    bool seed_given;
    output_format output;
    bool help;
} kvbench_options;

/* Fills `o` from argv (defaults for what is not given). Returns 0, or -1
 * with a reason in `why` for anything wrong: an unknown flag, a value out of
 * range, a stray argument. */
int options_parse(int argc, char **argv, kvbench_options *o, char *why, size_t why_size);

void options_usage(FILE *out);

#endif
