/* replica_log: a raft_storage over RocksDB.
 *
 * Invariants (memory mirrors what is staged, written before raft_advance):
 *   truncated_index <= applied <= hs.commit <= last_index
 *   log keys exist exactly for (truncated_index, last_index]
 *   the entry at truncated_index is known only by its term (truncated_term)
 *   runs hold the term of every entry in (truncated_index, last_index]
 *   tail holds copies of the entries in [tail_first, last_index], all after
 *   truncated_index (or none: tail_n 0)
 *
 * Raft asks for an entry's term on every append, response and ReadIndex.
 * Terms change only at elections, so the whole log's terms fit in a few
 * runs kept in memory, and no such question reads RocksDB. Entries not yet
 * applied are kept in memory too (the tail): applying them and sending them
 * to followers, every turn of every busy shard, would otherwise read them
 * back with a RocksDB iterator each time. A follower far behind still gets
 * its entries from RocksDB.
 */
#include "kvnode/replica_log.h"

#include <stdlib.h>
#include <string.h>

#include "kvnode/keys.h"
#include "runtime/error.h"
#include "runtime/log.h"

#define RLOG_ENTRY_HEADER_BYTES 9  /* term LE 8, type 1 */
#define RLOG_HARD_STATE_BYTES   24 /* term, vote, commit */
#define RLOG_APPLY_STATE_BYTES  24 /* applied, truncated index, truncated term */
/* Bounds of the unapplied entries kept in memory, per replica: more than a
 * busy shard gathers between two applies, little beside RocksDB's memtable. */
#define RLOG_TAIL_ENTRIES_MAX 4096
#define RLOG_TAIL_BYTES_MAX   (8u << 20)

/* Entries from `first` on have `term`, up to the next run's first. */
typedef struct {
    raft_index_t first;
    raft_term_t term;
} rlog_term_run;

struct rlog {
    kvs *store;
    uint64_t shard_id;
    raft_hard_state hs;
    raft_conf_state conf;
    raft_index_t applied;
    raft_index_t truncated_index;
    raft_term_t truncated_term;
    raft_index_t last_index;
    rlog_term_run *runs; /* by first, ascending; terms strictly increase */
    size_t n_runs;
    size_t cap_runs;
    raft_entry *tail; /* tail[i] is entry tail_first + i; data malloc'd */
    raft_index_t tail_first;
    size_t tail_n;
    size_t tail_cap;
    uint64_t tail_bytes;
};

/* ---- unapplied entries in memory ---- */

/* Drops the tail's entries from index `from` on (0: all of them). */
static void rlog_tail_cut_from(rlog *log, raft_index_t from) {
    while (log->tail_n > 0 && log->tail_first + log->tail_n - 1 >= from) {
        raft_entry *e = &log->tail[--log->tail_n];
        log->tail_bytes -= e->len;
        free(e->data);
    }
}

/* Drops the tail's entries up to and including `through`. */
static void rlog_tail_drop_through(rlog *log, raft_index_t through) {
    size_t drop = 0;

    while (drop < log->tail_n && log->tail_first + drop <= through) {
        log->tail_bytes -= log->tail[drop].len;
        free(log->tail[drop].data);
        drop++;
    }
    if (drop == 0)
        return;
    memmove(log->tail, log->tail + drop, (log->tail_n - drop) * sizeof(*log->tail));
    log->tail_n -= drop;
    log->tail_first += drop;
}

/* Keeps a copy of `e`, the log's new last entry. When the tail cannot take
 * it (full, or out of memory) the tail is emptied: reads go to RocksDB until
 * the next entry starts it afresh. */
static void rlog_tail_push(rlog *log, const raft_entry *e) {
    if (log->tail_n > 0 && e->index != log->tail_first + log->tail_n)
        rlog_tail_cut_from(log, 0);
    if (log->tail_n == RLOG_TAIL_ENTRIES_MAX || log->tail_bytes + e->len > RLOG_TAIL_BYTES_MAX) {
        rlog_tail_cut_from(log, 0);
        return;
    }
    if (log->tail_n == log->tail_cap) {
        size_t cap = log->tail_cap ? 2 * log->tail_cap : 16;
        raft_entry *grown = realloc(log->tail, cap * sizeof(*grown));
        if (grown == NULL) {
            rlog_tail_cut_from(log, 0);
            return;
        }
        log->tail = grown;
        log->tail_cap = cap;
    }
    if (raft_entry_copy(&log->tail[log->tail_n], e) != RAFT_OK) {
        rlog_tail_cut_from(log, 0);
        return;
    }
    if (log->tail_n == 0)
        log->tail_first = e->index;
    log->tail_n++;
    log->tail_bytes += e->len;
}

/* Copies of entries [lo, hi) from the tail, as raft_storage.entries gives
 * them (stopping past max_bytes, but at least one). Returns false, having
 * done nothing, when the tail does not hold them all; else *rc says how the
 * copying went. */
static bool rlog_tail_entries(const rlog *log, raft_index_t lo, raft_index_t hi, uint64_t max_bytes,
                              raft_entry **out, size_t *n, int *rc) {
    uint64_t bytes = 0;

    if (log->tail_n == 0 || lo < log->tail_first || hi > log->tail_first + log->tail_n)
        return false;
    *rc = RAFT_ERR_NOMEM;
    *out = calloc((size_t)(hi - lo), sizeof(raft_entry));
    if (*out == NULL)
        return true;
    for (raft_index_t i = lo; i < hi; i++) {
        const raft_entry *e = &log->tail[i - log->tail_first];
        if (*n > 0 && bytes + e->len > max_bytes)
            break;
        if (raft_entry_copy(&(*out)[*n], e) != RAFT_OK) {
            raft_entries_free(*out, *n);
            *out = NULL;
            *n = 0;
            return true;
        }
        bytes += e->len;
        (*n)++;
    }
    *rc = RAFT_OK;
    return true;
}

/* ---- terms in memory ---- */

/* Records that the entry at `index`, the log's new last, has `term`.
 * Returns false when out of memory. */
static bool rlog_runs_push(rlog *log, raft_index_t index, raft_term_t term) {
    if (log->n_runs > 0 && log->runs[log->n_runs - 1].term == term)
        return true;
    if (log->n_runs == log->cap_runs) {
        size_t cap = log->cap_runs ? 2 * log->cap_runs : 8;
        rlog_term_run *runs = realloc(log->runs, cap * sizeof(*runs));
        if (runs == NULL)
            return false;
        log->runs = runs;
        log->cap_runs = cap;
    }
    log->runs[log->n_runs++] = (rlog_term_run){index, term};
    return true;
}

/* Forgets the terms of entries from `index` on (they are being replaced). */
static void rlog_runs_cut_from(rlog *log, raft_index_t index) {
    while (log->n_runs > 0 && log->runs[log->n_runs - 1].first >= index)
        log->n_runs--;
}

/* Forgets the runs that end at or before `index` (compacted away). */
static void rlog_runs_drop_through(rlog *log, raft_index_t index) {
    size_t drop = 0;
    while (drop + 1 < log->n_runs && log->runs[drop + 1].first <= index + 1)
        drop++;
    if (drop > 0) {
        memmove(log->runs, log->runs + drop, (log->n_runs - drop) * sizeof(*log->runs));
        log->n_runs -= drop;
    }
}

/* The term of a stored entry, truncated_index < index <= last_index. The
 * newest entries are the ones asked about: search from the end. */
static raft_term_t rlog_runs_term(const rlog *log, raft_index_t index) {
    size_t i = log->n_runs;
    while (i > 0 && log->runs[i - 1].first > index)
        i--;
    return i > 0 ? log->runs[i - 1].term : 0;
}

/* ---- loading ---- */

static int rlog_load_fixed(rlog *log, keys_kind kind, uint64_t out[3]) {
    uint8_t key[KEYS_SHARD_BYTES];
    bool found;
    char *v;
    size_t len;
    int rc;

    keys_shard(key, log->shard_id, kind);
    rc = kvs_get(log->store, KVS_CF_RAFT, key, sizeof(key), &found, &v, &len);
    if (rc != 0)
        return rc;
    memset(out, 0, 3 * sizeof(uint64_t));
    if (!found)
        return 0;
    if (len != 24) {
        log_error("shard %llu: raft state of kind %d is %zu bytes, not 24",
                  (unsigned long long)log->shard_id, (int)kind, len);
        free(v);
        return BS_ERR_CORRUPTION;
    }
    for (int i = 0; i < 3; i++)
        out[i] = keys_get_u64_le((const uint8_t *)v + 8 * i);
    free(v);
    return 0;
}

typedef struct {
    rlog *log;
    raft_index_t last;
    int err;
} rlog_loading;

static int rlog_load_entry(const char *key, size_t key_len, const char *value, size_t value_len,
                           void *ctx) {
    rlog_loading *l = ctx;
    raft_index_t index;

    if (key_len != KEYS_LOG_BYTES)
        return 0;
    index = keys_get_u64_be((const uint8_t *)key + KEYS_SHARD_BYTES);
    if (value_len < RLOG_ENTRY_HEADER_BYTES || (l->last != 0 && index != l->last + 1)) {
        log_error("shard %llu: log entry %llu is malformed or follows a hole",
                  (unsigned long long)l->log->shard_id, (unsigned long long)index);
        l->err = BS_ERR_CORRUPTION;
        return 1;
    }
    if (!rlog_runs_push(l->log, index, keys_get_u64_le((const uint8_t *)value))) {
        l->err = BS_ERR_NOMEM;
        return 1;
    }
    l->last = index;
    return 0;
}

/* The last log index and every entry's term: scans the shard's log (once,
 * at start). */
static int rlog_load_entries(rlog *log) {
    uint8_t lo[KEYS_LOG_BYTES], hi[KEYS_SHARD_BYTES];
    rlog_loading l = {.log = log};
    raft_index_t last;
    bool more;

    keys_log(lo, log->shard_id, log->truncated_index + 1);
    keys_shard(hi, log->shard_id, KEYS_LOG + 1);
    int rc = kvs_scan(log->store, KVS_CF_RAFT, lo, sizeof(lo), hi, sizeof(hi), UINT32_MAX,
                      rlog_load_entry, &l, &more);
    if (l.err != 0)
        return l.err;
    if (rc != 0)
        return rc;
    last = l.last;
    if (last != 0 && log->runs[0].first != log->truncated_index + 1) {
        log_error("shard %llu: log starts at %llu, not after its truncation point %llu",
                  (unsigned long long)log->shard_id, (unsigned long long)log->runs[0].first,
                  (unsigned long long)log->truncated_index);
        return BS_ERR_CORRUPTION;
    }
    /* A crash between installing a snapshot and writing past it leaves no
     * entries after the truncation point: the log ends there. */
    log->last_index = last > log->truncated_index ? last : log->truncated_index;
    return 0;
}

int rlog_open(kvs *store, uint64_t shard_id, rlog **out) {
    rlog *log = calloc(1, sizeof(*log));
    uint64_t hs[3], as[3];
    int rc;

    *out = NULL;
    if (log == NULL)
        return BS_ERR_NOMEM;
    log->store = store;
    log->shard_id = shard_id;
    if ((rc = rlog_load_fixed(log, KEYS_HARD_STATE, hs)) != 0 ||
        (rc = rlog_load_fixed(log, KEYS_APPLY_STATE, as)) != 0) {
        free(log);
        return rc;
    }
    log->hs = (raft_hard_state){hs[0], hs[1], hs[2]};
    log->applied = as[0];
    log->truncated_index = as[1];
    log->truncated_term = as[2];
    if ((rc = rlog_load_entries(log)) != 0) {
        rlog_free(log);
        return rc;
    }
    if (log->applied < log->truncated_index || log->hs.commit > log->last_index) {
        log_error("shard %llu: raft state is inconsistent (applied %llu, truncated %llu, commit "
                  "%llu, last %llu)",
                  (unsigned long long)shard_id, (unsigned long long)log->applied,
                  (unsigned long long)log->truncated_index, (unsigned long long)log->hs.commit,
                  (unsigned long long)log->last_index);
        rlog_free(log);
        return BS_ERR_CORRUPTION;
    }
    *out = log;
    return 0;
}

void rlog_free(rlog *log) {
    if (log == NULL)
        return;
    free(log->runs);
    rlog_tail_cut_from(log, 0);
    free(log->tail);
    free(log);
}

void rlog_set_conf(rlog *log, const raft_conf_state *conf) {
    log->conf = *conf;
}

/* ---- raft_storage ---- */

static int rlog_initial_state(void *ctx, raft_hard_state *hs, raft_conf_state *conf) {
    rlog *log = ctx;
    *hs = log->hs;
    *conf = log->conf;
    return RAFT_OK;
}

static int rlog_decode_entry(const rlog *log, raft_index_t index, const char *value, size_t len,
                             raft_entry *e) {
    if (len < RLOG_ENTRY_HEADER_BYTES || (uint8_t)value[8] > RAFT_ENTRY_CONF_CHANGE) {
        log_error("shard %llu: log entry %llu is malformed (%zu bytes)",
                  (unsigned long long)log->shard_id, (unsigned long long)index, len);
        return RAFT_ERR_CORRUPT;
    }
    e->term = keys_get_u64_le((const uint8_t *)value);
    e->index = index;
    e->type = (raft_entry_type)(uint8_t)value[8];
    e->len = (uint32_t)(len - RLOG_ENTRY_HEADER_BYTES);
    e->data = NULL;
    if (e->len > 0) {
        e->data = malloc(e->len);
        if (e->data == NULL)
            return RAFT_ERR_NOMEM;
        memcpy(e->data, value + RLOG_ENTRY_HEADER_BYTES, e->len);
    }
    return RAFT_OK;
}

typedef struct {
    const rlog *log;
    raft_entry *out;
    size_t n;
    size_t cap;
    raft_index_t next;
    uint64_t bytes;
    uint64_t max_bytes;
    int err;
} rlog_collect;

static int rlog_collect_entry(const char *key, size_t key_len, const char *value, size_t value_len,
                              void *ctx) {
    rlog_collect *c = ctx;
    raft_index_t index = keys_get_u64_be((const uint8_t *)key + KEYS_SHARD_BYTES);

    if (key_len != KEYS_LOG_BYTES || index != c->next) {
        log_error("shard %llu: log has a hole at %llu", (unsigned long long)c->log->shard_id,
                  (unsigned long long)c->next);
        c->err = RAFT_ERR_CORRUPT;
        return 1;
    }
    if (c->n > 0 && c->bytes + value_len > c->max_bytes)
        return 1; /* enough */
    c->err = rlog_decode_entry(c->log, index, value, value_len, &c->out[c->n]);
    if (c->err != RAFT_OK)
        return 1;
    c->bytes += c->out[c->n].len;
    c->n++;
    c->next++;
    return 0;
}

static int rlog_entries(void *ctx, raft_index_t lo, raft_index_t hi, uint64_t max_bytes,
                        raft_entry **out, size_t *n) {
    rlog *log = ctx;
    uint8_t from[KEYS_LOG_BYTES], to[KEYS_LOG_BYTES];
    rlog_collect c = {.log = log, .next = lo, .max_bytes = max_bytes, .err = RAFT_OK};
    bool more;

    *out = NULL;
    *n = 0;
    if (lo <= log->truncated_index)
        return RAFT_ERR_COMPACTED;
    if (hi > log->last_index + 1)
        return RAFT_ERR_UNAVAILABLE;
    if (lo >= hi)
        return RAFT_OK;
    int rc_tail;
    if (rlog_tail_entries(log, lo, hi, max_bytes, out, n, &rc_tail))
        return rc_tail;
    c.cap = (size_t)(hi - lo);
    c.out = calloc(c.cap, sizeof(raft_entry));
    if (c.out == NULL)
        return RAFT_ERR_NOMEM;
    keys_log(from, log->shard_id, lo);
    keys_log(to, log->shard_id, hi);
    int rc = kvs_scan(log->store, KVS_CF_RAFT, from, sizeof(from), to, sizeof(to), (uint32_t)c.cap,
                      rlog_collect_entry, &c, &more);
    if (c.err == RAFT_OK && rc != 0 && rc != 1)
        c.err = RAFT_ERR_CORRUPT;
    if (c.err == RAFT_OK && c.n == 0) {
        log_error("shard %llu: log entry %llu is missing", (unsigned long long)log->shard_id,
                  (unsigned long long)lo);
        c.err = RAFT_ERR_CORRUPT;
    }
    if (c.err != RAFT_OK) {
        raft_entries_free(c.out, c.n);
        return c.err;
    }
    *out = c.out;
    *n = c.n;
    return RAFT_OK;
}

static int rlog_term(void *ctx, raft_index_t i, raft_term_t *term) {
    rlog *log = ctx;

    *term = 0;
    if (i == log->truncated_index) {
        *term = log->truncated_term;
        return RAFT_OK;
    }
    if (i < log->truncated_index)
        return RAFT_ERR_COMPACTED;
    if (i > log->last_index)
        return RAFT_ERR_UNAVAILABLE;
    *term = rlog_runs_term(log, i);
    return RAFT_OK;
}

static raft_index_t rlog_first(void *ctx) {
    return ((rlog *)ctx)->truncated_index + 1;
}

static raft_index_t rlog_last(void *ctx) {
    return ((rlog *)ctx)->last_index;
}

/* The snapshot a lagging follower would get: the replica's applied state,
 * which the host streams separately. */
static int rlog_snapshot(void *ctx, raft_snapshot *snap) {
    rlog *log = ctx;

    memset(snap, 0, sizeof(*snap));
    snap->index = log->applied;
    snap->conf = log->conf;
    return rlog_term(log, log->applied, &snap->term);
}

raft_storage rlog_interface(rlog *log) {
    raft_storage s = {
        .ctx = log,
        .initial_state = rlog_initial_state,
        .entries = rlog_entries,
        .term = rlog_term,
        .first_index = rlog_first,
        .last_index = rlog_last,
        .snapshot = rlog_snapshot,
    };
    return s;
}

/* ---- staging writes ---- */

static void rlog_stage_fixed(rlog *log, kvs_batch *batch, keys_kind kind, uint64_t a, uint64_t b,
                             uint64_t c) {
    uint8_t key[KEYS_SHARD_BYTES], value[24];

    keys_shard(key, log->shard_id, kind);
    keys_put_u64_le(value, a);
    keys_put_u64_le(value + 8, b);
    keys_put_u64_le(value + 16, c);
    kvs_batch_put(batch, KVS_CF_RAFT, key, sizeof(key), value, sizeof(value));
}

static void rlog_stage_delete_entries(rlog *log, kvs_batch *batch, raft_index_t from,
                                      raft_index_t to) {
    uint8_t key[KEYS_LOG_BYTES];

    for (raft_index_t i = from; i <= to; i++) {
        keys_log(key, log->shard_id, i);
        kvs_batch_delete(batch, KVS_CF_RAFT, key, sizeof(key));
    }
}

static void rlog_stage_apply_state(rlog *log, kvs_batch *batch) {
    rlog_stage_fixed(log, batch, KEYS_APPLY_STATE, log->applied, log->truncated_index,
                     log->truncated_term);
}

void rlog_stage_initial(kvs_batch *batch, uint64_t shard_id, raft_index_t index, raft_term_t term) {
    rlog log = {.shard_id = shard_id};

    rlog_stage_fixed(&log, batch, KEYS_HARD_STATE, term, 0, index);
    rlog_stage_fixed(&log, batch, KEYS_APPLY_STATE, index, index, term);
}

void rlog_stage_snapshot(rlog *log, kvs_batch *batch, const raft_snapshot *snap) {
    /* The snapshot replaces the whole log. */
    rlog_stage_delete_entries(log, batch, log->truncated_index + 1, log->last_index);
    log->n_runs = 0;
    rlog_tail_cut_from(log, 0);
    log->truncated_index = snap->index;
    log->truncated_term = snap->term;
    log->last_index = snap->index;
    log->applied = snap->index;
    log->conf = snap->conf;
    if (log->hs.commit < snap->index)
        log->hs.commit = snap->index;
    rlog_stage_apply_state(log, batch);
    rlog_stage_fixed(log, batch, KEYS_HARD_STATE, log->hs.term, log->hs.vote, log->hs.commit);
}

int rlog_stage_compact(rlog *log, kvs_batch *batch, raft_index_t index) {
    raft_term_t term;

    if (index <= log->truncated_index || index > log->applied ||
        rlog_term(log, index, &term) != RAFT_OK)
        return BS_ERR_INVALID_ARGUMENT;
    rlog_stage_delete_entries(log, batch, log->truncated_index + 1, index);
    log->truncated_index = index;
    log->truncated_term = term;
    rlog_runs_drop_through(log, index);
    rlog_tail_drop_through(log, index);
    rlog_stage_apply_state(log, batch);
    return 0;
}

static void rlog_stage_entries(rlog *log, kvs_batch *batch, const raft_entry *ents, size_t n) {
    uint8_t key[KEYS_LOG_BYTES];

    if (n == 0)
        return;
    /* Entries from ents[0] on replace whatever the log held there. */
    if (ents[0].index <= log->last_index)
        rlog_stage_delete_entries(log, batch, ents[0].index, log->last_index);
    rlog_runs_cut_from(log, ents[0].index);
    rlog_tail_cut_from(log, ents[0].index);
    for (size_t i = 0; i < n; i++) {
        uint8_t *value = malloc(RLOG_ENTRY_HEADER_BYTES + ents[i].len);
        if (value == NULL || !rlog_runs_push(log, ents[i].index, ents[i].term)) {
            log_error("out of memory staging log entries: stopping");
            abort(); /* a half-persisted log must never be acknowledged */
        }
        keys_put_u64_le(value, ents[i].term);
        value[8] = (uint8_t)ents[i].type;
        if (ents[i].len > 0)
            memcpy(value + RLOG_ENTRY_HEADER_BYTES, ents[i].data, ents[i].len);
        keys_log(key, log->shard_id, ents[i].index);
        kvs_batch_put(batch, KVS_CF_RAFT, key, sizeof(key), value,
                      RLOG_ENTRY_HEADER_BYTES + ents[i].len);
        free(value);
        rlog_tail_push(log, &ents[i]);
    }
    log->last_index = ents[n - 1].index;
}

void rlog_stage_ready(rlog *log, kvs_batch *batch, const raft_ready *rd) {
    if (rd->has_snapshot)
        rlog_stage_snapshot(log, batch, &rd->snapshot);
    rlog_stage_entries(log, batch, rd->entries, rd->n_entries);
    if (rd->has_hard_state) {
        log->hs = rd->hard_state;
        rlog_stage_fixed(log, batch, KEYS_HARD_STATE, log->hs.term, log->hs.vote, log->hs.commit);
    }
}

void rlog_stage_applied(rlog *log, kvs_batch *batch, raft_index_t applied) {
    log->applied = applied;
    rlog_tail_drop_through(log, applied);
    rlog_stage_apply_state(log, batch);
}

raft_index_t rlog_applied(const rlog *log) {
    return log->applied;
}

raft_index_t rlog_last_index(const rlog *log) {
    return log->last_index;
}

raft_index_t rlog_first_index(const rlog *log) {
    return log->truncated_index + 1;
}

raft_hard_state rlog_hard_state(const rlog *log) {
    return log->hs;
}
