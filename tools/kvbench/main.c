/* kvbench: YCSB workloads, and etcd-style put and get, against Basalt or
 * etcd. See `kvbench --help` and docs/performance.md.
 *
 * Exit codes: 0 when the run ended with no failed operation, 1 when some
 * failed (the report says which and why), 2 for usage.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tools/kvbench/options.h"
#include "tools/kvbench/report.h"
#include "tools/kvbench/runner.h"

#define KVBENCH_EXIT_OK     0
#define KVBENCH_EXIT_ERRORS 1
#define KVBENCH_EXIT_USAGE  2

static uint64_t kvbench_errors(const phase_result *r) {
    uint64_t n = 0;

    for (int k = 0; k < OP_KINDS; k++)
        n += phase_errors(r, (op_kind)k);
    return n;
}

/* Runs one phase and reports it; adds its failed operations to *errors.
 * Returns 0, or -1 when it could not run. */
static int kvbench_phase(const kvbench_options *o, run_phase phase, json_t *json,
                         uint64_t *errors) {
    phase_result r;

    if (o->output == OUTPUT_TABLE)
        fprintf(stderr, "kvbench: %s phase...\n", phase_name(phase));
    if (runner_run(&o->run, phase, &r) != 0) {
        fprintf(stderr, "kvbench: out of memory setting up the %s phase\n", phase_name(phase));
        return -1;
    }
    *errors += kvbench_errors(&r);
    int rc = 0;
    if (json != NULL)
        rc = report_json_phase(json, phase, &r);
    else
        report_table_phase(phase, &r);
    phase_result_free(&r);
    return rc;
}

static int kvbench_run(kvbench_options *o) {
    json_t *json = NULL;
    uint64_t errors = 0;
    int rc = 0;

    if (o->output == OUTPUT_JSON && (json = report_json_run(o)) == NULL)
        return -1;
    if (o->output == OUTPUT_TABLE)
        report_table_header(o);
    if (o->phase_load)
        rc = kvbench_phase(o, PHASE_LOAD, json, &errors);
    if (rc == 0 && o->phase_run)
        rc = kvbench_phase(o, PHASE_RUN, json, &errors);
    if (rc == 0 && json != NULL) {
        rc = json_dumpf(json, stdout, JSON_COMPACT) == 0 ? 0 : -1;
        putchar('\n');
    }
    json_decref(json);
    if (rc != 0)
        return -1;
    return errors > 0 ? 1 : 0;
}

int main(int argc, char **argv) {
    kvbench_options o;
    char why[256];

    if (options_parse(argc, argv, &o, why, sizeof(why)) != 0) {
        fprintf(stderr, "kvbench: %s\n", why);
        return KVBENCH_EXIT_USAGE;
    }
    if (o.help) {
        options_usage(stdout);
        return KVBENCH_EXIT_OK;
    }
    o.run.target = target_open(o.target_spec, o.run.conns, why, sizeof(why));
    if (o.run.target == NULL) {
        fprintf(stderr, "kvbench: --target: %s\n", why);
        return KVBENCH_EXIT_USAGE;
    }
    if (o.output == OUTPUT_TABLE)
        fprintf(stderr, "kvbench: seed %llu (--seed replays the run's draws)\n",
                (unsigned long long)o.run.seed);
    int rc = kvbench_run(&o);
    target_close(o.run.target);
    if (rc < 0) {
        fprintf(stderr, "kvbench: the run failed (out of memory or output error)\n");
        return KVBENCH_EXIT_ERRORS;
    }
    return rc == 0 ? KVBENCH_EXIT_OK : KVBENCH_EXIT_ERRORS;
}
