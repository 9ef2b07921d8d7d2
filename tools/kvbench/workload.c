/* workload: the table of mixes, and the draw of the next operation. */
#include "tools/kvbench/workload.h"

#include <stddef.h>
#include <string.h>

/* Proportions in op_kind order: read, update, insert, scan, read-modify-write. */
static const workload workloads[] = {
    {"a", "update heavy: 50% read, 50% update", {0.5, 0.5, 0, 0, 0}, DIST_ZIPFIAN},
    {"b", "read mostly: 95% read, 5% update", {0.95, 0.05, 0, 0, 0}, DIST_ZIPFIAN},
    {"c", "read only: 100% read", {1, 0, 0, 0, 0}, DIST_ZIPFIAN},
    {"d", "read latest: 95% read, 5% insert", {0.95, 0, 0.05, 0, 0}, DIST_LATEST},
    {"e", "short ranges: 95% scan, 5% insert", {0, 0, 0.05, 0.95, 0}, DIST_ZIPFIAN},
    {"f", "read-modify-write: 50% read, 50% read-modify-write", {0.5, 0, 0, 0, 0.5}, DIST_ZIPFIAN},
    {"put", "every operation puts a record", {0, 1, 0, 0, 0}, DIST_UNIFORM},
    {"get", "every operation gets a record", {1, 0, 0, 0, 0}, DIST_UNIFORM},
};

#define WORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

const workload *workload_find(const char *name) {
    for (size_t i = 0; i < WORKLOADS; i++) {
        if (strcmp(workloads[i].name, name) == 0)
            return &workloads[i];
    }
    return NULL;
}

const char *workload_names(void) {
    return "a, b, c, d, e, f, put, get";
}

const char *op_name(op_kind kind) {
    static const char *const names[OP_KINDS] = {
        [OP_READ] = "read",
        [OP_UPDATE] = "update",
        [OP_INSERT] = "insert",
        [OP_SCAN] = "scan",
        [OP_READ_MODIFY_WRITE] = "read-modify-write",
    };
    return (unsigned)kind < OP_KINDS ? names[kind] : "?";
}

op_kind workload_next_op(const workload *w, bench_rng *r) {
    double u = rng_unit(r), below = 0;
    op_kind last = OP_READ;

    for (int k = 0; k < OP_KINDS; k++) {
        if (w->proportion[k] <= 0)
            continue;
        below += w->proportion[k];
        last = (op_kind)k;
        if (u < below)
            return last;
    }
    return last; /* rounding: the proportions summed to a hair under 1 */
}

bool workload_inserts(const workload *w) {
    return w->proportion[OP_INSERT] > 0;
}
