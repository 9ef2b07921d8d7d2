/* runner: logical clients driving a target through one phase of a run.
 *
 * Each of `clients` logical clients keeps one operation in flight and starts
 * the next from the callback of the last (a closed loop), so thousands of
 * requests are in flight on `threads` threads, each with its own completion
 * queue. With a target rate, each client starts its operations on a fixed
 * schedule instead, and an operation's latency counts from when it was due,
 * not from when it could start: a stalled server then shows in the
 * percentiles instead of hiding behind fewer requests (coordinated
 * omission).
 *
 * Phases: `load` inserts records 0..records-1 once each; `run` draws the
 * workload's operations until `operations` are done or `duration_ms` has
 * passed. Inserts of the run phase take new record numbers, and reads only
 * pick records whose insert has ended, as YCSB does.
 */
#ifndef BASALT_TOOLS_KVBENCH_RUNNER_H
#define BASALT_TOOLS_KVBENCH_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/status.h>

#include "tools/kvbench/distribution.h"
#include "tools/kvbench/histogram.h"
#include "tools/kvbench/target.h"
#include "tools/kvbench/workload.h"

/* Limits of the flags that size a run. */
#define RUNNER_CLIENTS_MAX     4096
#define RUNNER_THREADS_MAX     16
#define RUNNER_KEY_BYTES_MIN   20 /* "user" and 16 hex digits */
#define RUNNER_KEY_BYTES_MAX   4096
#define RUNNER_VALUE_BYTES_MAX (1024 * 1024)
/* Status codes counted apart (gRPC's 0..16). */
#define RUNNER_STATUS_CODES 17
/* Bytes of an error message kept per operation kind, as an example. */
#define RUNNER_ERROR_SAMPLE_BYTES 256

typedef enum {
    PHASE_LOAD,
    PHASE_RUN,
} run_phase;

typedef struct {
    target *target;
    const workload *workload;
    dist_kind distribution;
    uint64_t records;
    uint64_t operations;  /* run phase: 0 means no count limit */
    uint64_t duration_ms; /* run phase: 0 means no time limit */
    double rate;          /* operations per second over all clients; 0: flat out */
    int clients, conns, threads;
    uint32_t key_bytes, value_bytes;
    bool eventual;        /* reads and scans at eventual consistency */
    bool sequential_keys; /* keys sort as records do; puts go 0, 1, 2... */
    int64_t timeout_ms;   /* per request */
    uint64_t seed;
} run_config;

typedef struct {
    uint64_t done;  /* operations ended, ok or not */
    double seconds; /* from the first start to the last end */
    histogram *latency[OP_KINDS];
    uint64_t errors[OP_KINDS][RUNNER_STATUS_CODES];
    uint64_t not_found[OP_KINDS]; /* reads and scans that found nothing */
    char error_sample[OP_KINDS][RUNNER_ERROR_SAMPLE_BYTES];
} phase_result;

/* Runs one phase; fills `out` (free with phase_result_free). Returns 0, or
 * an error (out of memory) with nothing run. */
int runner_run(const run_config *c, run_phase phase, phase_result *out);
void phase_result_free(phase_result *r);

uint64_t phase_errors(const phase_result *r, op_kind kind);

/* Record n's key: "user" and 16 hex digits (of n itself for sequential
 * keys, of its hash otherwise), padded with '0' to key_bytes. */
void runner_format_key(uint64_t record, bool sequential, uint32_t key_bytes, uint8_t *out);

#endif
