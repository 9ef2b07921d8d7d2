/* read_index: linearizable reads without writing to the log (Raft thesis
 * 6.4).
 *
 * A read is registered with the commit index at the moment it arrives. The
 * leader then confirms it is still leader by a round of heartbeats: every
 * read registered before a round's heartbeats leave belongs to that round,
 * and once a quorum has answered the round (or any later one), all of them
 * are released as read states. Rounds are numbered for the life of the node,
 * never reused, so an answer to an old round can never release a newer read.
 *
 * A new leader does not know the commit index until an entry of its own term
 * commits: reads that arrive before then wait with round 0 and join a round
 * when that happens. Any change of role or term drops every waiting read with
 * RAFT_ERR_READ_DROPPED.
 */
#include <stdlib.h>
#include <string.h>

#include "raft/core.h"

int raft_push_read_state(raft *r, uint64_t request_id, raft_index_t index, int err) {
    if (r->n_read_states == r->cap_read_states) {
        size_t cap = r->cap_read_states ? r->cap_read_states * 2 : 16;
        raft_read_state *p = realloc(r->read_states, cap * sizeof(*p));
        if (p == NULL)
            return RAFT_ERR_NOMEM;
        r->read_states = p;
        r->cap_read_states = cap;
    }
    r->read_states[r->n_read_states++] = (raft_read_state){request_id, index, err};
    return RAFT_OK;
}

typedef struct {
    raft *r;
    uint64_t round;
} raft_round_query;

static int raft_round_acked(void *ctx, raft_id_t id) {
    raft_round_query *q = ctx;
    raft_progress *pr;

    if (id == q->r->id)
        return 1;
    pr = raft_progress_of(q->r, id);
    return pr != NULL && pr->read_ack >= q->round ? 1 : -1;
}

static bool raft_round_confirmed(raft *r, uint64_t round) {
    raft_round_query q = {r, round};
    return raft_quorum_vote(&r->conf, raft_round_acked, &q) == RAFT_VOTE_WON;
}

/* Releases confirmed reads from the front of the queue (rounds only grow
 * along it). */
static void raft_release_reads(raft *r) {
    size_t done = 0;

    while (done < r->n_reads && r->reads[done].round != 0 &&
           raft_round_confirmed(r, r->reads[done].round)) {
        raft_push_read_state(r, r->reads[done].request_id, r->reads[done].index, RAFT_OK);
        done++;
    }
    if (done > 0) {
        memmove(r->reads, r->reads + done, (r->n_reads - done) * sizeof(*r->reads));
        r->n_reads -= done;
    }
}

/* The round a read registered now belongs to: the open one, or a new one
 * whose heartbeats are queued now (and so leave after the read arrived). */
static uint64_t raft_read_round_for_new_read(raft *r) {
    if (!r->read_round_open) {
        r->read_round++;
        r->read_round_open = true;
        raft_broadcast_heartbeat(r, r->read_round);
    }
    return r->read_round;
}

int raft_read_index(raft *r, uint64_t request_id) {
    if (r->role != RAFT_LEADER)
        return RAFT_ERR_NOT_LEADER;
    if (r->n_reads == RAFT_READS_PENDING_MAX)
        return RAFT_ERR_BUSY;
    if (r->reads == NULL) {
        r->reads = malloc(RAFT_READS_PENDING_MAX * sizeof(*r->reads));
        if (r->reads == NULL)
            return RAFT_ERR_NOMEM;
    }

    raft_pending_read *read = &r->reads[r->n_reads++];
    read->request_id = request_id;
    read->index = r->log.committed;
    read->round = 0;
    if (raft_committed_in_current_term(r)) {
        read->round = raft_read_round_for_new_read(r);
        raft_release_reads(r); /* a group of one confirms at once */
    }
    return RAFT_OK;
}

void raft_reads_recheck(raft *r) {
    raft_release_reads(r);
}

void raft_reads_on_commit(raft *r) {
    bool any = false;

    /* The first commit of the term: waiting reads learn the commit index. */
    for (size_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].round == 0) {
            r->reads[i].index = r->log.committed;
            r->reads[i].round = raft_read_round_for_new_read(r);
            any = true;
        }
    }
    if (any)
        raft_release_reads(r);
}

void raft_reads_drop_all(raft *r) {
    for (size_t i = 0; i < r->n_reads; i++)
        raft_push_read_state(r, r->reads[i].request_id, 0, RAFT_ERR_READ_DROPPED);
    r->n_reads = 0;
    r->read_round_open = false;
}

void raft_reads_close_round(raft *r) {
    r->read_round_open = false;
}
