/* log: a node's Raft log, in two parts.
 *
 *   [first_index .. unstable_offset-1]  persisted: read from the host's storage
 *   [unstable_offset .. last_index]     unstable: in memory until a ready batch
 *                                       hands it to the host and advance marks
 *                                       it persisted
 *
 * Invariants:
 *   - committed <= last_index, and committed never moves back;
 *   - applied <= committed;
 *   - with a pending snapshot, unstable_offset == snapshot.index + 1 and the
 *     snapshot stands in for everything up to its index.
 */
#include <stdlib.h>
#include <string.h>

#include "raft/core.h"

/* Frees the data of entries but not the array holding them. */
static void raft_entries_free_data(raft_entry *entries, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(entries[i].data);
        entries[i].data = NULL;
    }
}

static raft_index_t raft_log_storage_last(const raft_log *log) {
    raft_index_t last = log->storage.last_index(log->storage.ctx);
    raft_index_t first = log->storage.first_index(log->storage.ctx);

    /* A crash between installing a snapshot and writing entries past it may
     * leave storage whose log ends before its snapshot: the snapshot still
     * covers everything up to first-1. */
    return last + 1 < first ? first - 1 : last;
}

int raft_log_init(raft_log *log, const raft_storage *storage, raft_index_t applied) {
    memset(log, 0, sizeof(*log));
    log->storage = *storage;
    log->unstable_offset = raft_log_storage_last(log) + 1;

    raft_index_t first = storage->first_index(storage->ctx);
    /* Whatever the snapshot covers is committed and applied. */
    log->committed = first - 1;
    log->applied = first - 1;
    if (applied > log->applied)
        log->applied = applied;
    return RAFT_OK;
}

void raft_log_free(raft_log *log) {
    raft_entries_free_data(log->unstable, log->n_unstable);
    free(log->unstable);
    free(log->pending_snapshot.data);
    memset(log, 0, sizeof(*log));
}

raft_index_t raft_log_first_index(const raft_log *log) {
    if (log->has_pending_snapshot)
        return log->pending_snapshot.index + 1;
    return log->storage.first_index(log->storage.ctx);
}

raft_index_t raft_log_last_index(const raft_log *log) {
    return log->unstable_offset + log->n_unstable - 1;
}

raft_index_t raft_log_persisted_index(const raft_log *log) {
    return log->unstable_offset - 1;
}

int raft_log_term(const raft_log *log, raft_index_t i, raft_term_t *term) {
    raft_index_t first = raft_log_first_index(log);

    *term = 0;
    if (i + 1 < first)
        return RAFT_ERR_COMPACTED;
    if (i > raft_log_last_index(log))
        return RAFT_ERR_UNAVAILABLE;
    if (i >= log->unstable_offset) {
        *term = log->unstable[i - log->unstable_offset].term;
        return RAFT_OK;
    }
    if (log->has_pending_snapshot) {
        /* Only the snapshot's own index is known below the unstable tail. */
        if (i != log->pending_snapshot.index)
            return RAFT_ERR_COMPACTED;
        *term = log->pending_snapshot.term;
        return RAFT_OK;
    }
    if (i == 0)
        return RAFT_OK;
    return log->storage.term(log->storage.ctx, i, term);
}

raft_term_t raft_log_term_or_zero(const raft_log *log, raft_index_t i) {
    raft_term_t t;
    return raft_log_term(log, i, &t) == RAFT_OK ? t : 0;
}

raft_term_t raft_log_last_term(const raft_log *log) {
    return raft_log_term_or_zero(log, raft_log_last_index(log));
}

bool raft_log_match_term(const raft_log *log, raft_index_t i, raft_term_t term) {
    raft_term_t t;
    return raft_log_term(log, i, &t) == RAFT_OK && t == term;
}

int raft_entry_copy(raft_entry *dst, const raft_entry *src) {
    *dst = *src;
    dst->data = NULL;
    if (src->len == 0)
        return RAFT_OK;
    dst->data = malloc(src->len);
    if (dst->data == NULL)
        return RAFT_ERR_NOMEM;
    memcpy(dst->data, src->data, src->len);
    return RAFT_OK;
}

/* Appends copies of unstable entries [lo, hi) to out[*n...]. */
static int raft_log_copy_unstable(const raft_log *log, raft_index_t lo, raft_index_t hi,
                                  uint32_t max_n, uint64_t max_bytes, uint64_t *bytes,
                                  raft_entry *out, size_t *n) {
    for (raft_index_t i = lo; i < hi && *n < max_n; i++) {
        const raft_entry *e = &log->unstable[i - log->unstable_offset];
        if (*n > 0 && *bytes + e->len > max_bytes)
            break;
        if (raft_entry_copy(&out[*n], e) != RAFT_OK)
            return RAFT_ERR_NOMEM;
        *bytes += e->len;
        (*n)++;
    }
    return RAFT_OK;
}

int raft_log_entries(const raft_log *log, raft_index_t lo, raft_index_t hi, uint32_t max_n,
                     uint64_t max_bytes, raft_entry **out, size_t *n) {
    raft_index_t last = raft_log_last_index(log);
    uint64_t bytes = 0;
    raft_entry *res;
    int rc;

    *out = NULL;
    *n = 0;
    if (hi > last + 1)
        hi = last + 1;
    if (lo >= hi)
        return RAFT_OK;
    if (lo < raft_log_first_index(log))
        return RAFT_ERR_COMPACTED;
    if (hi - lo < max_n)
        max_n = (uint32_t)(hi - lo);
    res = calloc(max_n, sizeof(*res));
    if (res == NULL)
        return RAFT_ERR_NOMEM;

    /* The persisted part first, from storage. */
    if (lo < log->unstable_offset) {
        raft_entry *stored;
        size_t n_stored;
        raft_index_t stored_hi = hi < log->unstable_offset ? hi : log->unstable_offset;
        /* Ask storage for no more than fits, so it never copies a long log. */
        if (stored_hi - lo > max_n)
            stored_hi = lo + max_n;
        rc = log->storage.entries(log->storage.ctx, lo, stored_hi, max_bytes, &stored, &n_stored);
        if (rc != RAFT_OK) {
            free(res);
            return rc;
        }
        for (size_t i = 0; i < n_stored && *n < max_n; i++) {
            if (*n > 0 && bytes + stored[i].len > max_bytes)
                break;
            res[*n] = stored[i];
            stored[i].data = NULL;
            bytes += res[*n].len;
            (*n)++;
        }
        raft_entries_free(stored, n_stored);
        /* Stopped short of the unstable part (by a bound, or storage had
         * less): never skip ahead into it, leaving a gap. */
        if (lo + *n < log->unstable_offset) {
            *out = res;
            return RAFT_OK;
        }
    }
    if (hi > log->unstable_offset) {
        raft_index_t from = lo > log->unstable_offset ? lo : log->unstable_offset;
        rc = raft_log_copy_unstable(log, from, hi, max_n, max_bytes, &bytes, res, n);
        if (rc != RAFT_OK) {
            raft_entries_free(res, *n);
            *n = 0;
            return rc;
        }
    }
    *out = res;
    return RAFT_OK;
}

static int raft_log_reserve(raft_log *log, size_t n) {
    if (n <= log->cap_unstable)
        return RAFT_OK;
    size_t cap = log->cap_unstable ? log->cap_unstable : 16;
    while (cap < n)
        cap *= 2;
    raft_entry *p = realloc(log->unstable, cap * sizeof(*p));
    if (p == NULL)
        return RAFT_ERR_NOMEM;
    log->unstable = p;
    log->cap_unstable = cap;
    return RAFT_OK;
}

int raft_log_append(raft_log *log, const raft_entry *entries, size_t n) {
    if (n == 0)
        return RAFT_OK;
    raft_index_t after = entries[0].index;

    if (after <= log->committed || after > raft_log_last_index(log) + 1)
        return RAFT_ERR_CORRUPT; /* would rewrite committed history, or leave a gap */
    if (after < log->unstable_offset) {
        /* Overwrites persisted entries: the whole tail becomes unstable from
         * `after`, and the host truncates its log there when it persists. */
        raft_entries_free_data(log->unstable, log->n_unstable);
        log->n_unstable = 0;
        log->unstable_offset = after;
    } else {
        size_t keep = (size_t)(after - log->unstable_offset);
        if (keep < log->n_unstable) {
            raft_entries_free_data(log->unstable + keep, log->n_unstable - keep);
            log->n_unstable = keep;
        }
    }
    if (raft_log_reserve(log, log->n_unstable + n) != RAFT_OK)
        return RAFT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (raft_entry_copy(&log->unstable[log->n_unstable], &entries[i]) != RAFT_OK)
            return RAFT_ERR_NOMEM;
        log->n_unstable++;
    }
    return RAFT_OK;
}

/* The index of the first entry whose term differs from the log's, or 0. */
static raft_index_t raft_log_find_conflict(const raft_log *log, const raft_entry *entries,
                                           size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!raft_log_match_term(log, entries[i].index, entries[i].term))
            return entries[i].index;
    }
    return 0;
}

int raft_log_maybe_append(raft_log *log, raft_index_t prev_index, raft_term_t prev_term,
                          raft_index_t commit, const raft_entry *entries, size_t n, bool *ok,
                          raft_index_t *last_new) {
    *ok = false;
    if (!raft_log_match_term(log, prev_index, prev_term))
        return RAFT_OK;

    *last_new = prev_index + n;
    raft_index_t conflict = raft_log_find_conflict(log, entries, n);
    if (conflict != 0) {
        /* Raft paper 5.3: delete the conflicting entry and all that follow. */
        if (conflict <= log->committed)
            return RAFT_ERR_CORRUPT;
        int rc = raft_log_append(log, entries + (conflict - prev_index - 1),
                                 n - (size_t)(conflict - prev_index - 1));
        if (rc != RAFT_OK)
            return rc;
    }
    raft_log_commit_to(log, commit < *last_new ? commit : *last_new);
    *ok = true;
    return RAFT_OK;
}

bool raft_log_is_up_to_date(const raft_log *log, raft_index_t last_index, raft_term_t last_term) {
    /* Raft paper 5.4.1: a later last term wins; with equal terms, the longer log. */
    raft_term_t mine = raft_log_last_term(log);
    return last_term > mine || (last_term == mine && last_index >= raft_log_last_index(log));
}

void raft_log_commit_to(raft_log *log, raft_index_t index) {
    if (index > log->committed) {
        raft_index_t last = raft_log_last_index(log);
        log->committed = index < last ? index : last;
    }
}

bool raft_log_maybe_commit(raft_log *log, raft_index_t index, raft_term_t term) {
    /* Raft paper 5.4.2: only entries of the leader's own term commit by
     * counting replicas; earlier ones commit along with them. */
    if (index > log->committed && raft_log_term_or_zero(log, index) == term) {
        raft_log_commit_to(log, index);
        return true;
    }
    return false;
}

raft_index_t raft_log_find_conflict_by_term(const raft_log *log, raft_index_t index,
                                            raft_term_t term, raft_term_t *found_term) {
    raft_term_t t = 0;

    for (;;) {
        if (raft_log_term(log, index, &t) != RAFT_OK) {
            t = 0;
            break;
        }
        if (t <= term)
            break;
        index--;
    }
    *found_term = t;
    return index;
}

int raft_log_restore(raft_log *log, const raft_snapshot *snap) {
    uint8_t *data = NULL;

    if (snap->len > 0) {
        data = malloc(snap->len);
        if (data == NULL)
            return RAFT_ERR_NOMEM;
        memcpy(data, snap->data, snap->len);
    }
    free(log->pending_snapshot.data);
    log->pending_snapshot = *snap;
    log->pending_snapshot.data = data;
    log->has_pending_snapshot = true;
    raft_entries_free_data(log->unstable, log->n_unstable);
    log->n_unstable = 0;
    log->unstable_offset = snap->index + 1;
    log->committed = snap->index;
    return RAFT_OK;
}

void raft_log_stable_all(raft_log *log) {
    if (log->has_pending_snapshot) {
        free(log->pending_snapshot.data);
        memset(&log->pending_snapshot, 0, sizeof(log->pending_snapshot));
        log->has_pending_snapshot = false;
    }
    raft_entries_free_data(log->unstable, log->n_unstable);
    log->unstable_offset += log->n_unstable;
    log->n_unstable = 0;
}

raft_index_t raft_log_applicable_index(const raft_log *log) {
    raft_index_t persisted = raft_log_persisted_index(log);

    if (log->has_pending_snapshot)
        return log->applied;
    return log->committed < persisted ? log->committed : persisted;
}

void raft_entries_free(raft_entry *entries, size_t n) {
    if (entries == NULL)
        return;
    raft_entries_free_data(entries, n);
    free(entries);
}
