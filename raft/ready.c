/* ready: handing work to the host and hearing back (see raft.h for the
 * host's side of the loop). */
#include <stdlib.h>
#include <string.h>

#include "raft/core.h"

static bool raft_hard_state_changed(const raft *r) {
    return r->term != r->prev_hard_state.term || r->vote != r->prev_hard_state.vote ||
           r->log.committed != r->prev_hard_state.commit;
}

bool raft_has_ready(const raft *r) {
    return raft_hard_state_changed(r) || r->log.n_unstable > 0 || r->log.has_pending_snapshot ||
           r->msgs.n > 0 || r->msgs_after.n > 0 || r->n_read_states > 0 ||
           raft_log_applicable_index(&r->log) > r->log.applied;
}

int raft_ready_get(raft *r, raft_ready *rd) {
    raft_index_t applicable = raft_log_applicable_index(&r->log);

    memset(rd, 0, sizeof(*rd));
    if (raft_hard_state_changed(r)) {
        rd->has_hard_state = true;
        rd->hard_state = (raft_hard_state){r->term, r->vote, r->log.committed};
    }
    if (r->log.has_pending_snapshot) {
        rd->has_snapshot = true;
        rd->snapshot = r->log.pending_snapshot;
    }
    rd->entries = r->log.unstable;
    rd->n_entries = r->log.n_unstable;

    if (applicable > r->log.applied) {
        int rc = raft_log_entries(&r->log, r->log.applied + 1, applicable + 1, UINT32_MAX,
                                  RAFT_APPLY_BATCH_BYTES_MAX, &r->ready_committed,
                                  &r->n_ready_committed);
        if (rc != RAFT_OK)
            return rc;
        rd->committed = r->ready_committed;
        rd->n_committed = r->n_ready_committed;
    }
    /* The batch takes the queues; new messages and read states start anew. */
    r->ready_msgs = r->msgs;
    r->ready_msgs_after = r->msgs_after;
    r->ready_read_states = r->read_states;
    memset(&r->msgs, 0, sizeof(r->msgs));
    memset(&r->msgs_after, 0, sizeof(r->msgs_after));
    rd->messages = r->ready_msgs.items;
    rd->n_messages = r->ready_msgs.n;
    rd->messages_after_persist = r->ready_msgs_after.items;
    rd->n_messages_after_persist = r->ready_msgs_after.n;
    rd->read_states = r->ready_read_states;
    rd->n_read_states = r->n_read_states;
    r->read_states = NULL;
    r->n_read_states = 0;
    r->cap_read_states = 0;

    /* Heartbeats of the open read round leave with this batch: later reads
     * need a round of their own. */
    raft_reads_close_round(r);
    return RAFT_OK;
}

static void raft_queue_release(raft_msg_queue *q) {
    for (size_t i = 0; i < q->n; i++)
        raft_msg_free_entries(&q->items[i]);
    free(q->items);
    memset(q, 0, sizeof(*q));
}

/* Proposals leave the uncommitted budget once applied. */
static void raft_release_uncommitted(raft *r, const raft_entry *ents, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t len = ents[i].len;
        r->uncommitted_bytes = r->uncommitted_bytes > len ? r->uncommitted_bytes - len : 0;
    }
}

void raft_advance(raft *r, raft_ready *rd) {
    if (rd->has_hard_state)
        r->prev_hard_state = rd->hard_state;
    if (rd->has_snapshot && rd->snapshot.index > r->log.applied)
        r->log.applied = rd->snapshot.index;
    raft_log_stable_all(&r->log);

    if (rd->n_committed > 0) {
        r->log.applied = rd->committed[rd->n_committed - 1].index;
        if (r->role == RAFT_LEADER)
            raft_release_uncommitted(r, rd->committed, rd->n_committed);
    }
    raft_entries_free(r->ready_committed, r->n_ready_committed);
    r->ready_committed = NULL;
    r->n_ready_committed = 0;
    raft_queue_release(&r->ready_msgs);
    raft_queue_release(&r->ready_msgs_after);
    free(r->ready_read_states);
    r->ready_read_states = NULL;

    if (r->role == RAFT_LEADER) {
        /* Only now, with its entries on disk, does the leader count itself
         * toward a quorum. */
        raft_progress *self = raft_progress_of(r, r->id);
        if (self != NULL && raft_pr_maybe_update(self, raft_log_persisted_index(&r->log)) &&
            raft_maybe_commit(r))
            raft_broadcast_append(r);
        raft_maybe_auto_leave_joint(r);
    }
    memset(rd, 0, sizeof(*rd));
}
