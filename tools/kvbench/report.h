/* report: a phase's results as a table for people or as JSON for scripts.
 *
 * Table: one line of throughput, then per operation kind its count, errors,
 * latency min/p50/p90/p99/p99.9/max in milliseconds, and the errors by gRPC
 * status with an example message. JSON (one object per run, on stdout):
 *   {"target", "workload", "distribution", "consistency", "clients", "conns",
 *    "threads", "records", "key_bytes", "value_bytes", "seed",
 *    "phases": [{"phase", "operations", "seconds", "ops_per_sec", "errors",
 *                "ops": {KIND: {"count", "errors", "not_found",
 *                               "errors_by_status": {CODE: n},
 *                               "latency_us": {"min", "mean", "p50", "p90", "p99",
 *                                              "p999", "max"}}}}]}
 */
#ifndef BASALT_TOOLS_KVBENCH_REPORT_H
#define BASALT_TOOLS_KVBENCH_REPORT_H

#include <jansson.h>

#include "tools/kvbench/options.h"
#include "tools/kvbench/runner.h"

const char *phase_name(run_phase phase);

/* The run's settings, printed before the phases. */
void report_table_header(const kvbench_options *o);
void report_table_phase(run_phase phase, const phase_result *r);

/* The run's settings as a JSON object with an empty "phases" array. */
json_t *report_json_run(const kvbench_options *o);
/* Appends a phase to the run object's "phases"; -1 when out of memory. */
int report_json_phase(json_t *run, run_phase phase, const phase_result *r);

#endif
