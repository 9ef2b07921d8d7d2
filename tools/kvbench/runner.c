/* runner: the closed (or scheduled) loop of every logical client.
 *
 * Threads: each pool's thread runs the callbacks of the clients it owns and
 * records their results in that pool's own counters, so recording takes no
 * lock; the timer's thread only starts operations that were due later. The
 * counters are merged once every client has stopped.
 */
#include "tools/kvbench/runner.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/async_timer.h"
#include "runtime/error.h"

/* Values start at one of this many offsets into one random buffer, so
 * writes differ without a buffer per request. */
#define RUNNER_VALUE_OFFSETS 64
/* Inserts whose end is tracked at once; more than can be in flight. */
#define RUNNER_ACK_WINDOW (2 * RUNNER_CLIENTS_MAX)

typedef struct runner runner;

typedef struct {
    runner *r;
    rpc_async_pool *pool;
    int stats; /* index of the pool, and of its counters */
    int conn;
    bench_rng rng;
    zipfian zipf;
    target_call call;
    op_kind op;
    uint64_t record;
    bool rmw_writing; /* a read-modify-write has read, and now writes */
    bool rmw_found;   /* what its read found */
    uint64_t due_ns;  /* when the operation was due (or started) */
    uint8_t *key;
} bench_client;

/* Touched only on its pool's thread while the phase runs. */
typedef struct {
    histogram latency[OP_KINDS];
    uint64_t errors[OP_KINDS][RUNNER_STATUS_CODES];
    uint64_t not_found[OP_KINDS];
    uint64_t done;
    uint64_t last_end_ns;
    char error_sample[OP_KINDS][RUNNER_ERROR_SAMPLE_BYTES];
} thread_stats;

struct runner {
    const run_config *c;
    run_phase phase;
    rpc_async_pool *pools[RUNNER_THREADS_MAX];
    thread_stats *stats[RUNNER_THREADS_MAX];
    async_timer *timer;
    bench_client *clients;
    uint8_t *values;
    uint64_t interval_ns; /* between one client's operations, with a rate */
    uint64_t start_ns, end_ns;
    atomic_uint_fast64_t claimed;     /* operations taken by clients */
    atomic_uint_fast64_t insert_next; /* the next new record number */
    atomic_uint_fast64_t put_next;    /* sequential puts: the next, modulo records */
    atomic_uint_fast64_t acked;       /* records [0, acked) have been inserted */

    pthread_mutex_t lock; /* over what follows */
    pthread_cond_t stopped;
    int active;                    /* clients still running */
    bool ended[RUNNER_ACK_WINDOW]; /* inserts at and past `acked` that ended */
};

static uint64_t runner_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void runner_format_key(uint64_t record, bool sequential, uint32_t key_bytes, uint8_t *out) {
    char head[RUNNER_KEY_BYTES_MIN + 1];

    snprintf(head, sizeof(head), "user%016" PRIx64, sequential ? record : record_scramble(record));
    memcpy(out, head, RUNNER_KEY_BYTES_MIN);
    memset(out + RUNNER_KEY_BYTES_MIN, '0', key_bytes - RUNNER_KEY_BYTES_MIN);
}

/* ---- inserts ---- */

/* Record `record` (taken from insert_next) has ended: once every record
 * before it has too, reads may pick it. A failed insert counts as ended, or
 * one failure would freeze the reads' range for the rest of the run. */
static void runner_insert_ended(runner *r, uint64_t record) {
    pthread_mutex_lock(&r->lock);
    uint64_t acked = atomic_load(&r->acked);
    assert(record >= acked && record - acked < RUNNER_ACK_WINDOW);
    r->ended[record % RUNNER_ACK_WINDOW] = true;
    while (r->ended[acked % RUNNER_ACK_WINDOW]) {
        r->ended[acked % RUNNER_ACK_WINDOW] = false;
        acked++;
    }
    atomic_store(&r->acked, acked);
    pthread_mutex_unlock(&r->lock);
}

/* How many records reads may pick from. */
static uint64_t runner_readable(runner *r) {
    if (r->phase == PHASE_RUN && workload_inserts(r->c->workload))
        return atomic_load(&r->acked);
    return r->c->records;
}

/* ---- one operation ---- */

static void client_result_cb(void *ctx, const target_result *result);

/* Draws what the next operation does and to which record. */
static void client_choose(bench_client *cl) {
    runner *r = cl->r;
    const run_config *c = r->c;

    cl->rmw_writing = false;
    if (r->phase == PHASE_LOAD) {
        cl->op = OP_INSERT;
        cl->record = atomic_fetch_add(&r->insert_next, 1);
        return;
    }
    cl->op = workload_next_op(c->workload, &cl->rng);
    if (cl->op == OP_INSERT)
        cl->record = atomic_fetch_add(&r->insert_next, 1);
    else if (cl->op == OP_UPDATE && c->sequential_keys)
        cl->record = atomic_fetch_add(&r->put_next, 1) % c->records;
    else
        cl->record = dist_next(c->distribution, &cl->zipf, &cl->rng, runner_readable(r));
}

static int client_write(bench_client *cl) {
    const run_config *c = cl->r->c;
    const uint8_t *value = cl->r->values + rng_below(&cl->rng, RUNNER_VALUE_OFFSETS);

    return target_write(&cl->call, cl->pool, cl->conn, cl->key, c->key_bytes, value, c->value_bytes,
                        c->timeout_ms);
}

/* Starts the chosen operation; 0, or an error with nothing started. */
static int client_issue(bench_client *cl) {
    const run_config *c = cl->r->c;

    runner_format_key(cl->record, c->sequential_keys, c->key_bytes, cl->key);
    switch (cl->op) {
    case OP_READ:
    case OP_READ_MODIFY_WRITE:
        return target_read(&cl->call, cl->pool, cl->conn, cl->key, c->key_bytes, c->eventual,
                           c->timeout_ms);
    case OP_SCAN: {
        uint32_t count = 1 + (uint32_t)rng_below(&cl->rng, WORKLOAD_SCAN_LENGTH_MAX);
        return target_scan(&cl->call, cl->pool, cl->conn, cl->key, c->key_bytes, count, c->eventual,
                           c->timeout_ms);
    }
    case OP_UPDATE:
    case OP_INSERT:
    default:
        return client_write(cl);
    }
}

/* ---- the loop ---- */

static void client_stop(bench_client *cl) {
    runner *r = cl->r;

    pthread_mutex_lock(&r->lock);
    if (--r->active == 0)
        pthread_cond_signal(&r->stopped);
    pthread_mutex_unlock(&r->lock);
}

/* Whether the phase has room for one more operation; takes it. */
static bool runner_claim(runner *r) {
    const run_config *c = r->c;

    if (r->phase == PHASE_LOAD)
        return atomic_fetch_add(&r->claimed, 1) < c->records;
    if (c->duration_ms > 0 && runner_now_ns() >= r->end_ns)
        return false;
    return c->operations == 0 || atomic_fetch_add(&r->claimed, 1) < c->operations;
}

static void client_start(bench_client *cl) {
    client_choose(cl);
    if (client_issue(cl) != 0) {
        fprintf(stderr, "kvbench: out of memory starting a call; client %td stops\n",
                cl - cl->r->clients);
        client_stop(cl);
    }
}

static void client_start_cb(void *ctx) {
    client_start(ctx);
}

/* Takes the next operation and starts it now, or when it is due. */
static void client_next(bench_client *cl) {
    runner *r = cl->r;

    if (!runner_claim(r)) {
        client_stop(cl);
        return;
    }
    uint64_t now = runner_now_ns();
    if (r->interval_ns == 0) {
        cl->due_ns = now;
    } else {
        cl->due_ns += r->interval_ns;
        if (r->c->duration_ms > 0 && cl->due_ns >= r->end_ns) {
            client_stop(cl); /* due after the end: the run is over for it */
            return;
        }
        if (cl->due_ns > now) {
            uint64_t wait_ms = (cl->due_ns - now + 999999) / 1000000;
            if (async_timer_after(r->timer, wait_ms, client_start_cb, cl) == 0)
                return;
        }
    }
    client_start(cl);
}

static void client_record(bench_client *cl, const target_result *result, bool found) {
    thread_stats *st = cl->r->stats[cl->stats];
    uint64_t now = runner_now_ns();

    histogram_record(&st->latency[cl->op], now - cl->due_ns);
    st->done++;
    st->last_end_ns = now;
    if (result->code != GRPC_STATUS_OK) {
        unsigned code = (unsigned)result->code < RUNNER_STATUS_CODES ? result->code : 2;
        st->errors[cl->op][code]++;
        if (st->error_sample[cl->op][0] == '\0')
            snprintf(st->error_sample[cl->op], RUNNER_ERROR_SAMPLE_BYTES, "%s",
                     result->message[0] ? result->message : "(no message)");
    } else if ((cl->op == OP_READ || cl->op == OP_SCAN || cl->op == OP_READ_MODIFY_WRITE) &&
               !found) {
        st->not_found[cl->op]++;
    }
}

static void client_result_cb(void *ctx, const target_result *result) {
    bench_client *cl = ctx;

    if (cl->op == OP_READ_MODIFY_WRITE && !cl->rmw_writing && result->code == GRPC_STATUS_OK) {
        cl->rmw_writing = true;
        cl->rmw_found = result->found;
        if (client_write(cl) == 0)
            return;
    }
    client_record(cl, result, cl->rmw_writing ? cl->rmw_found : result->found);
    if (cl->op == OP_INSERT && cl->r->phase == PHASE_RUN)
        runner_insert_ended(cl->r, cl->record);
    client_next(cl);
}

/* ---- setup ---- */

static void runner_free(runner *r) {
    for (int i = 0; i < RUNNER_THREADS_MAX; i++) {
        rpc_async_pool_destroy(r->pools[i]);
        free(r->stats[i]);
    }
    async_timer_destroy(r->timer);
    if (r->clients != NULL) {
        for (int i = 0; i < r->c->clients; i++)
            free(r->clients[i].key);
    }
    free(r->clients);
    free(r->values);
    pthread_cond_destroy(&r->stopped);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static int runner_make_clients(runner *r, const zipfian *zipf) {
    const run_config *c = r->c;

    r->clients = calloc((size_t)c->clients, sizeof(bench_client));
    if (r->clients == NULL)
        return BS_ERR_NOMEM;
    for (int i = 0; i < c->clients; i++) {
        bench_client *cl = &r->clients[i];
        cl->r = r;
        cl->stats = i % c->threads;
        cl->pool = r->pools[cl->stats];
        cl->conn = i % c->conns;
        /* Each client its own stream, all of them from the run's seed. */
        rng_seed(&cl->rng, c->seed * 1000003u + (uint64_t)i * 2 + (r->phase == PHASE_RUN));
        cl->zipf = *zipf;
        cl->call = (target_call){.target = c->target, .cb = client_result_cb, .ctx = cl};
        if ((cl->key = malloc(c->key_bytes)) == NULL)
            return BS_ERR_NOMEM;
    }
    return 0;
}

static runner *runner_new(const run_config *c, run_phase phase) {
    runner *r = calloc(1, sizeof(*r));
    bench_rng rng;
    zipfian zipf;

    if (r == NULL)
        return NULL;
    r->c = c;
    r->phase = phase;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->stopped, NULL);
    atomic_init(&r->claimed, 0);
    /* Run-phase inserts take records past the loaded ones. */
    atomic_init(&r->insert_next, phase == PHASE_RUN ? c->records : 0);
    atomic_init(&r->put_next, 0);
    atomic_init(&r->acked, c->records);
    /* The sum behind zipfian draws is computed once, here, and copied. */
    zipfian_init(&zipf, c->records > 0 ? c->records : 1, ZIPFIAN_THETA);
    bool ok = (r->timer = async_timer_create()) != NULL &&
              (r->values = malloc(c->value_bytes + RUNNER_VALUE_OFFSETS)) != NULL;
    for (int i = 0; ok && i < c->threads; i++)
        ok = (r->pools[i] = rpc_async_pool_create()) != NULL &&
             (r->stats[i] = calloc(1, sizeof(thread_stats))) != NULL;
    if (!ok || runner_make_clients(r, &zipf) != 0) {
        runner_free(r);
        return NULL;
    }
    for (int i = 0; i < c->threads; i++) {
        for (int k = 0; k < OP_KINDS; k++)
            histogram_init(&r->stats[i]->latency[k]);
    }
    rng_seed(&rng, c->seed);
    for (size_t i = 0; i < c->value_bytes + RUNNER_VALUE_OFFSETS; i++)
        r->values[i] = (uint8_t)('a' + rng_below(&rng, 26));
    if (c->rate > 0)
        r->interval_ns = (uint64_t)(1e9 * c->clients / c->rate);
    return r;
}

/* ---- results ---- */

static int runner_collect(runner *r, phase_result *out) {
    uint64_t last_end = r->start_ns;

    memset(out, 0, sizeof(*out));
    for (int k = 0; k < OP_KINDS; k++) {
        if ((out->latency[k] = malloc(sizeof(histogram))) == NULL) {
            phase_result_free(out);
            return BS_ERR_NOMEM;
        }
        histogram_init(out->latency[k]);
    }
    for (int i = 0; i < r->c->threads; i++) {
        const thread_stats *st = r->stats[i];
        out->done += st->done;
        if (st->last_end_ns > last_end)
            last_end = st->last_end_ns;
        for (int k = 0; k < OP_KINDS; k++) {
            histogram_merge(out->latency[k], &st->latency[k]);
            out->not_found[k] += st->not_found[k];
            for (int s = 0; s < RUNNER_STATUS_CODES; s++)
                out->errors[k][s] += st->errors[k][s];
            if (out->error_sample[k][0] == '\0')
                memcpy(out->error_sample[k], st->error_sample[k], RUNNER_ERROR_SAMPLE_BYTES);
        }
    }
    out->seconds = (double)(last_end - r->start_ns) / 1e9;
    return 0;
}

int runner_run(const run_config *c, run_phase phase, phase_result *out) {
    runner *r = runner_new(c, phase);

    if (r == NULL)
        return BS_ERR_NOMEM;
    r->start_ns = runner_now_ns();
    r->end_ns = r->start_ns + c->duration_ms * 1000000u;
    r->active = c->clients;
    for (int i = 0; i < c->clients; i++) {
        /* With a rate, the clients' schedules are spread over one interval. */
        r->clients[i].due_ns =
            r->start_ns - r->interval_ns + r->interval_ns * (uint64_t)i / (uint64_t)c->clients;
        client_next(&r->clients[i]);
    }
    pthread_mutex_lock(&r->lock);
    while (r->active > 0)
        pthread_cond_wait(&r->stopped, &r->lock);
    pthread_mutex_unlock(&r->lock);
    int rc = runner_collect(r, out);
    runner_free(r);
    return rc;
}

void phase_result_free(phase_result *r) {
    for (int k = 0; k < OP_KINDS; k++) {
        free(r->latency[k]);
        r->latency[k] = NULL;
    }
}

uint64_t phase_errors(const phase_result *r, op_kind kind) {
    uint64_t n = 0;

    for (int s = 1; s < RUNNER_STATUS_CODES; s++)
        n += r->errors[kind][s];
    return n;
}
