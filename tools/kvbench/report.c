/* report: tables and JSON from merged histograms. */
#include "tools/kvbench/report.h"

#include <stdio.h>

#include "runtime/rpc_client.h"

/* The percentiles reported, and their JSON names. */
static const struct {
    double percent;
    const char *name;
} report_percentiles[] = {
    {50, "p50"},
    {90, "p90"},
    {99, "p99"},
    {99.9, "p999"},
};

#define PERCENTILES (sizeof(report_percentiles) / sizeof(report_percentiles[0]))

const char *phase_name(run_phase phase) {
    return phase == PHASE_LOAD ? "load" : "run";
}

static uint64_t phase_all_errors(const phase_result *r) {
    uint64_t n = 0;

    for (int k = 0; k < OP_KINDS; k++)
        n += phase_errors(r, (op_kind)k);
    return n;
}

static double phase_rate(const phase_result *r) {
    return r->seconds > 0 ? (double)r->done / r->seconds : 0;
}

/* ---- table ---- */

void report_table_header(const kvbench_options *o) {
    const run_config *c = &o->run;

    printf("kvbench: %s, workload %s (%s), %s keys, %s reads\n", o->target_spec, c->workload->name,
           c->workload->about, dist_name(c->distribution), c->eventual ? "eventual" : "strong");
    printf("kvbench: %d clients over %d connections on %d threads, %llu records of %u+%u bytes, "
           "seed %llu\n",
           c->clients, c->conns, c->threads, (unsigned long long)c->records, c->key_bytes,
           c->value_bytes, (unsigned long long)c->seed);
}

static void report_table_errors(const phase_result *r, op_kind k) {
    for (int s = 1; s < RUNNER_STATUS_CODES; s++) {
        if (r->errors[k][s] > 0)
            printf("  %s errors: %llu %s\n", op_name(k), (unsigned long long)r->errors[k][s],
                   rpc_status_name((grpc_status_code)s));
    }
    if (phase_errors(r, k) > 0)
        printf("  %s error, for example: %s\n", op_name(k), r->error_sample[k]);
}

void report_table_phase(run_phase phase, const phase_result *r) {
    printf("\n%s: %llu operations in %.2f s, %.0f ops/s, %llu errors\n", phase_name(phase),
           (unsigned long long)r->done, r->seconds, phase_rate(r),
           (unsigned long long)phase_all_errors(r));
    printf("  %-17s %9s %7s %9s %9s %9s %9s %9s %9s  (ms)\n", "operation", "count", "errors", "min",
           "p50", "p90", "p99", "p99.9", "max");
    for (int k = 0; k < OP_KINDS; k++) {
        const histogram *h = r->latency[k];
        if (h->count == 0)
            continue;
        printf("  %-17s %9llu %7llu %9.3f", op_name((op_kind)k), (unsigned long long)h->count,
               (unsigned long long)phase_errors(r, (op_kind)k), (double)h->min / 1e6);
        for (size_t p = 0; p < PERCENTILES; p++)
            printf(" %9.3f", (double)histogram_percentile(h, report_percentiles[p].percent) / 1e6);
        printf(" %9.3f\n", (double)h->max / 1e6);
    }
    for (int k = 0; k < OP_KINDS; k++) {
        report_table_errors(r, (op_kind)k);
        if (r->not_found[k] > 0)
            printf("  %s: %llu found nothing\n", op_name((op_kind)k),
                   (unsigned long long)r->not_found[k]);
    }
}

/* ---- JSON ---- */

json_t *report_json_run(const kvbench_options *o) {
    const run_config *c = &o->run;

    return json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:I,s:i,s:i,s:f,s:I,s:[]}", "target",
                     o->target_spec, "workload", c->workload->name, "distribution",
                     dist_name(c->distribution), "consistency", c->eventual ? "eventual" : "strong",
                     "clients", c->clients, "conns", c->conns, "threads", c->threads, "records",
                     (json_int_t)c->records, "key_bytes", (int)c->key_bytes, "value_bytes",
                     (int)c->value_bytes, "rate", c->rate, "seed", (json_int_t)c->seed, "phases");
}

static json_t *report_json_latency(const histogram *h) {
    json_t *lat = json_pack("{s:f,s:f,s:f}", "min", (double)h->min / 1e3, "mean",
                            histogram_mean(h) / 1e3, "max", (double)h->max / 1e3);

    for (size_t p = 0; lat && p < PERCENTILES; p++)
        json_object_set_new(
            lat, report_percentiles[p].name,
            json_real((double)histogram_percentile(h, report_percentiles[p].percent) / 1e3));
    return lat;
}

static json_t *report_json_op(const phase_result *r, op_kind k) {
    json_t *by_status = json_object();

    for (int s = 1; by_status && s < RUNNER_STATUS_CODES; s++) {
        if (r->errors[k][s] > 0)
            json_object_set_new(by_status, rpc_status_name((grpc_status_code)s),
                                json_integer((json_int_t)r->errors[k][s]));
    }
    return json_pack("{s:I,s:I,s:I,s:o,s:o*,s:s}", "count", (json_int_t)r->latency[k]->count,
                     "errors", (json_int_t)phase_errors(r, k), "not_found",
                     (json_int_t)r->not_found[k], "errors_by_status", by_status, "latency_us",
                     report_json_latency(r->latency[k]), "error_sample", r->error_sample[k]);
}

int report_json_phase(json_t *run, run_phase phase, const phase_result *r) {
    json_t *ops = json_object();

    for (int k = 0; ops && k < OP_KINDS; k++) {
        if (r->latency[k]->count > 0 &&
            json_object_set_new(ops, op_name((op_kind)k), report_json_op(r, (op_kind)k)) != 0) {
            json_decref(ops);
            return -1;
        }
    }
    json_t *p = json_pack("{s:s,s:I,s:f,s:f,s:I,s:o}", "phase", phase_name(phase), "operations",
                          (json_int_t)r->done, "seconds", r->seconds, "ops_per_sec", phase_rate(r),
                          "errors", (json_int_t)phase_all_errors(r), "ops", ops);
    return p ? json_array_append_new(json_object_get(run, "phases"), p) : -1;
}
