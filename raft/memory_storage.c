/* memory_storage: the log as an array whose first slot stands for the last
 * compacted entry (its index and term only). */
#include "raft/memory_storage.h"

#include <stdlib.h>
#include <string.h>

struct memory_storage {
    raft_hard_state hs;
    raft_conf_state conf;
    raft_snapshot snap; /* index/term also in ents[0] */
    raft_entry *ents;   /* ents[0]: the compaction point, no data */
    size_t n;
    size_t cap;
};

static raft_index_t ms_offset(const memory_storage *ms) {
    return ms->ents[0].index;
}

static raft_index_t ms_last(const memory_storage *ms) {
    return ms->ents[0].index + ms->n - 1;
}

static int ms_reserve(memory_storage *ms, size_t n) {
    if (n <= ms->cap)
        return RAFT_OK;
    size_t cap = ms->cap ? ms->cap * 2 : 64;
    while (cap < n)
        cap *= 2;
    raft_entry *p = realloc(ms->ents, cap * sizeof(*p));
    if (p == NULL)
        return RAFT_ERR_NOMEM;
    ms->ents = p;
    ms->cap = cap;
    return RAFT_OK;
}

memory_storage *memory_storage_new(const raft_conf_state *conf) {
    memory_storage *ms = calloc(1, sizeof(*ms));

    if (ms == NULL || ms_reserve(ms, 64) != RAFT_OK) {
        free(ms);
        return NULL;
    }
    memset(&ms->ents[0], 0, sizeof(ms->ents[0]));
    ms->n = 1;
    ms->conf = *conf;
    ms->snap.conf = *conf;
    return ms;
}

static void ms_free_range(memory_storage *ms, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) {
        free(ms->ents[i].data);
        ms->ents[i].data = NULL;
    }
}

void memory_storage_free(memory_storage *ms) {
    if (ms == NULL)
        return;
    ms_free_range(ms, 0, ms->n);
    free(ms->ents);
    free(ms->snap.data);
    free(ms);
}

/* ---- the raft_storage interface ---- */

static int ms_initial_state(void *ctx, raft_hard_state *hs, raft_conf_state *conf) {
    memory_storage *ms = ctx;
    *hs = ms->hs;
    *conf = ms->conf;
    return RAFT_OK;
}

static int ms_entries(void *ctx, raft_index_t lo, raft_index_t hi, uint64_t max_bytes,
                      raft_entry **out, size_t *n) {
    memory_storage *ms = ctx;
    uint64_t bytes = 0;

    *out = NULL;
    *n = 0;
    if (lo <= ms_offset(ms))
        return RAFT_ERR_COMPACTED;
    if (hi > ms_last(ms) + 1)
        return RAFT_ERR_UNAVAILABLE;
    if (lo >= hi)
        return RAFT_OK;
    *out = calloc(hi - lo, sizeof(raft_entry));
    if (*out == NULL)
        return RAFT_ERR_NOMEM;
    for (raft_index_t i = lo; i < hi; i++) {
        const raft_entry *e = &ms->ents[i - ms_offset(ms)];
        if (*n > 0 && bytes + e->len > max_bytes)
            break;
        if (raft_entry_copy(&(*out)[*n], e) != RAFT_OK) {
            raft_entries_free(*out, *n);
            return RAFT_ERR_NOMEM;
        }
        bytes += e->len;
        (*n)++;
    }
    return RAFT_OK;
}

static int ms_term(void *ctx, raft_index_t i, raft_term_t *term) {
    memory_storage *ms = ctx;

    *term = 0;
    if (i < ms_offset(ms))
        return RAFT_ERR_COMPACTED;
    if (i > ms_last(ms))
        return RAFT_ERR_UNAVAILABLE;
    *term = ms->ents[i - ms_offset(ms)].term;
    return RAFT_OK;
}

static raft_index_t ms_first_index(void *ctx) {
    return ms_offset(ctx) + 1;
}

static raft_index_t ms_last_index(void *ctx) {
    return ms_last(ctx);
}

static int ms_snapshot(void *ctx, raft_snapshot *snap) {
    memory_storage *ms = ctx;

    *snap = ms->snap;
    snap->data = NULL;
    if (ms->snap.len > 0) {
        snap->data = malloc(ms->snap.len);
        if (snap->data == NULL)
            return RAFT_ERR_NOMEM;
        memcpy(snap->data, ms->snap.data, ms->snap.len);
    }
    return RAFT_OK;
}

raft_storage memory_storage_interface(memory_storage *ms) {
    raft_storage s = {
        .ctx = ms,
        .initial_state = ms_initial_state,
        .entries = ms_entries,
        .term = ms_term,
        .first_index = ms_first_index,
        .last_index = ms_last_index,
        .snapshot = ms_snapshot,
    };
    return s;
}

/* ---- persisting ---- */

int memory_storage_append(memory_storage *ms, const raft_entry *entries, size_t n) {
    if (n == 0)
        return RAFT_OK;
    raft_index_t first = entries[0].index;

    /* Entries at or below the compaction point are already in the snapshot. */
    while (n > 0 && entries[0].index <= ms_offset(ms)) {
        entries++;
        n--;
    }
    if (n == 0)
        return RAFT_OK;
    first = entries[0].index;
    if (first > ms_last(ms) + 1)
        return RAFT_ERR_CORRUPT; /* a gap */

    size_t keep = (size_t)(first - ms_offset(ms));
    ms_free_range(ms, keep, ms->n);
    ms->n = keep;
    if (ms_reserve(ms, ms->n + n) != RAFT_OK)
        return RAFT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (raft_entry_copy(&ms->ents[ms->n], &entries[i]) != RAFT_OK)
            return RAFT_ERR_NOMEM;
        ms->n++;
    }
    return RAFT_OK;
}

void memory_storage_set_hard_state(memory_storage *ms, const raft_hard_state *hs) {
    ms->hs = *hs;
}

void memory_storage_set_conf(memory_storage *ms, const raft_conf_state *conf) {
    ms->conf = *conf;
}

static int ms_set_snapshot(memory_storage *ms, const raft_snapshot *snap) {
    uint8_t *data = NULL;

    if (snap->len > 0) {
        data = malloc(snap->len);
        if (data == NULL)
            return RAFT_ERR_NOMEM;
        memcpy(data, snap->data, snap->len);
    }
    free(ms->snap.data);
    ms->snap = *snap;
    ms->snap.data = data;
    return RAFT_OK;
}

int memory_storage_apply_snapshot(memory_storage *ms, const raft_snapshot *snap) {
    if (snap->index <= ms->snap.index)
        return RAFT_ERR_COMPACTED;
    int rc = ms_set_snapshot(ms, snap);
    if (rc != RAFT_OK)
        return rc;
    /* The snapshot replaces the whole log. */
    ms_free_range(ms, 0, ms->n);
    ms->ents[0] = (raft_entry){.index = snap->index, .term = snap->term};
    ms->n = 1;
    ms->conf = snap->conf;
    if (ms->hs.commit < snap->index)
        ms->hs.commit = snap->index;
    return RAFT_OK;
}

int memory_storage_compact(memory_storage *ms, raft_index_t index) {
    if (index <= ms_offset(ms))
        return RAFT_ERR_COMPACTED;
    if (index > ms_last(ms))
        return RAFT_ERR_UNAVAILABLE;

    size_t cut = (size_t)(index - ms_offset(ms));
    raft_term_t term = ms->ents[cut].term;
    ms_free_range(ms, 0, cut + 1);
    memmove(ms->ents + 1, ms->ents + cut + 1, (ms->n - cut - 1) * sizeof(raft_entry));
    ms->n -= cut;
    ms->ents[0] = (raft_entry){.index = index, .term = term};
    return RAFT_OK;
}

int memory_storage_snapshot_at(memory_storage *ms, raft_index_t index, const raft_conf_state *conf,
                               const void *data, uint32_t len) {
    raft_snapshot snap = {.index = index, .conf = *conf, .len = len, .data = (uint8_t *)data};

    if (index <= ms->snap.index)
        return RAFT_ERR_COMPACTED;
    if (ms_term(ms, index, &snap.term) != RAFT_OK)
        return RAFT_ERR_UNAVAILABLE;
    int rc = ms_set_snapshot(ms, &snap);
    if (rc != RAFT_OK)
        return rc;
    return index > ms_offset(ms) ? memory_storage_compact(ms, index) : RAFT_OK;
}

raft_hard_state memory_storage_hard_state(const memory_storage *ms) {
    return ms->hs;
}
