/* workload: the mixes of operations kvbench runs.
 *
 * YCSB's core workloads, with their standard proportions and distributions:
 *   a  update heavy   50% read, 50% update               zipfian
 *   b  read mostly    95% read, 5% update                zipfian
 *   c  read only      100% read                          zipfian
 *   d  read latest    95% read, 5% insert                latest
 *   e  short ranges   95% scan (1-100 records), 5% insert zipfian
 *   f  read-modify-write 50% read, 50% read-modify-write zipfian
 * and two plain modes, as etcd's own benchmark has: put (every operation
 * writes a record; uniform, or sequential with --sequential-keys) and get
 * (every operation reads one; uniform).
 */
#ifndef BASALT_TOOLS_KVBENCH_WORKLOAD_H
#define BASALT_TOOLS_KVBENCH_WORKLOAD_H

#include <stdbool.h>

#include "tools/kvbench/distribution.h"

/* YCSB's longest short scan (workload e), in records. */
#define WORKLOAD_SCAN_LENGTH_MAX 100

typedef enum {
    OP_READ,
    OP_UPDATE,
    OP_INSERT,
    OP_SCAN,
    OP_READ_MODIFY_WRITE,
    OP_KINDS,
} op_kind;

typedef struct {
    const char *name; /* "a".."f", "put", "get" */
    const char *about;
    double proportion[OP_KINDS]; /* summing to 1 */
    dist_kind distribution;
} workload;

/* The workload of a name; NULL when there is none. */
const workload *workload_find(const char *name);
/* Every name, for usage messages: "a, b, c, d, e, f, put, get". */
const char *workload_names(void);

/* "read", "update", "insert", "scan", "read-modify-write". */
const char *op_name(op_kind kind);

/* The next operation, drawn by the workload's proportions. */
op_kind workload_next_op(const workload *w, bench_rng *r);

/* Whether the workload creates records (so reads must only pick records
 * whose insert was acknowledged). */
bool workload_inserts(const workload *w);

#endif
