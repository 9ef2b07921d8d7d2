/* election: campaigns, pre-vote, and answering votes (Raft paper 5.2, 5.4.1;
 * thesis 9.6 for pre-vote). */
#include <string.h>

#include "raft/core.h"

bool raft_has_unapplied_conf_change(const raft *r) {
    raft_index_t lo = r->log.applied + 1, hi = r->log.committed + 1;

    /* Scans only committed-but-unapplied entries, a short stretch. */
    while (lo < hi) {
        raft_entry *ents;
        size_t n;
        if (raft_log_entries(&r->log, lo, hi, UINT32_MAX, UINT64_MAX, &ents, &n) != RAFT_OK ||
            n == 0)
            return true; /* cannot tell: be safe and do not campaign */
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found = found || ents[i].type == RAFT_ENTRY_CONF_CHANGE;
        lo = ents[n - 1].index + 1;
        raft_entries_free(ents, n);
        if (found)
            return true;
    }
    return false;
}

static int raft_vote_of(void *ctx, raft_id_t id) {
    const raft *r = ctx;
    for (uint32_t i = 0; i < r->n_votes; i++) {
        if (r->vote_ids[i] == id)
            return r->vote_granted[i];
    }
    return -1;
}

/* Records a vote (the first from each member counts) and returns the result. */
static raft_vote_result raft_poll(raft *r, raft_id_t id, bool granted) {
    if (raft_vote_of(r, id) == -1 && r->n_votes < RAFT_MEMBERS_MAX) {
        r->vote_ids[r->n_votes] = id;
        r->vote_granted[r->n_votes] = granted ? 1 : 0;
        r->n_votes++;
    }
    return raft_quorum_vote(&r->conf, raft_vote_of, r);
}

static void raft_request_votes(raft *r, raft_msg_type type, raft_term_t term, bool transfer) {
    raft_id_t ids[2 * RAFT_MEMBERS_MAX];
    uint32_t n = 0;

    for (uint32_t i = 0; i < r->conf.n_voters; i++)
        ids[n++] = r->conf.voters[i];
    for (uint32_t i = 0; i < r->conf.n_voters_outgoing; i++) {
        if (!raft_conf_has(ids, n, r->conf.voters_outgoing[i]))
            ids[n++] = r->conf.voters_outgoing[i];
    }
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] == r->id)
            continue;
        raft_msg m = {
            .type = type,
            .to = ids[i],
            .term = term,
            .index = raft_log_last_index(&r->log),
            .log_term = raft_log_last_term(&r->log),
            .transfer = transfer,
        };
        raft_send(r, &m);
    }
}

void raft_campaign(raft *r, bool pre_vote, bool transfer) {
    if (!raft_is_promotable(r))
        return;
    /* Campaigning on a membership that lags a committed change could elect a
     * leader by the wrong quorum. */
    if (raft_has_unapplied_conf_change(r)) {
        raft_logf(r, RAFT_LOG_INFO, "not campaigning: a committed membership change is unapplied");
        return;
    }

    raft_msg_type type;
    raft_term_t term;
    if (pre_vote) {
        raft_become_pre_candidate(r);
        type = RAFT_MSG_PRE_VOTE;
        term = r->term + 1; /* the term we would campaign in */
    } else {
        raft_become_candidate(r);
        type = RAFT_MSG_VOTE;
        term = r->term;
    }
    if (raft_poll(r, r->id, true) == RAFT_VOTE_WON) {
        /* A group of one wins at once. */
        if (pre_vote)
            raft_campaign(r, false, transfer);
        else
            raft_become_leader(r);
        return;
    }
    raft_request_votes(r, type, term, transfer);
}

void raft_campaign_now(raft *r) {
    if (r->role != RAFT_LEADER)
        raft_campaign(r, r->cfg.pre_vote, false);
}

int raft_handle_vote_request(raft *r, const raft_msg *m) {
    bool pre = m->type == RAFT_MSG_PRE_VOTE;
    /* One vote per term: for whom we already voted, or anyone if we have
     * neither voted nor heard of a leader. A pre-vote for a later term is
     * only a question and binds nothing. */
    bool can_vote = r->vote == m->from || (r->vote == RAFT_NONE && r->lead == RAFT_NONE) ||
                    (pre && m->term > r->term);
    bool grant = can_vote && raft_log_is_up_to_date(&r->log, m->index, m->log_term);
    raft_msg resp = {
        .type = pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP,
        .to = m->from,
        .reject = !grant,
    };

    /* A grant answers in the asker's term; a refusal in ours, so a lagging
     * asker learns the newer term. */
    resp.term = grant ? m->term : r->term;
    /* Our commit index travels along (see raft_learn_commit). */
    resp.commit = r->log.committed;
    resp.log_term = raft_log_term_or_zero(&r->log, r->log.committed);
    if (grant && !pre) {
        r->election_elapsed = 0;
        r->vote = m->from;
    }
    raft_logf(r, RAFT_LOG_DEBUG, "%s %s of %llu (its last %llu/%llu)",
              grant ? "granted" : "refused", raft_msg_type_name(m->type),
              (unsigned long long)m->from, (unsigned long long)m->log_term,
              (unsigned long long)m->index);
    /* The vote (and term) reach disk before this reply leaves: raft_send
     * queues a non-leader's messages until the batch is persisted. */
    return raft_send(r, &resp);
}

/* Commitment is a fact about the group, so any member may teach it: if our
 * log holds the voter's committed entry (same index and term, hence the same
 * history by log matching), that entry is committed here too. Without this a
 * candidate can be stuck on a stale membership: say a leader committed a
 * change that made it a learner, stepped down, and holds later entries no one
 * else has. The remaining voter does not know the change committed, so it
 * campaigns in the old joint membership and needs the learner's vote, which
 * the learner refuses (its log is longer). Learning the commit index here
 * lets the candidate apply the change and win in the new membership. */
static void raft_learn_commit(raft *r, const raft_msg *m) {
    if (m->commit > r->log.committed && raft_log_match_term(&r->log, m->commit, m->log_term))
        raft_log_commit_to(&r->log, m->commit);
}

int raft_handle_vote_response(raft *r, const raft_msg *m) {
    bool pre = r->role == RAFT_PRE_CANDIDATE;

    raft_learn_commit(r, m);
    if ((pre && m->type != RAFT_MSG_PRE_VOTE_RESP) || (!pre && m->type != RAFT_MSG_VOTE_RESP))
        return RAFT_OK;
    switch (raft_poll(r, m->from, !m->reject)) {
    case RAFT_VOTE_WON:
        if (pre)
            raft_campaign(r, false, false);
        else
            raft_become_leader(r);
        break;
    case RAFT_VOTE_LOST:
        /* Pre-vote losers keep their term (thesis 9.6). */
        raft_become_follower(r, r->term, RAFT_NONE);
        break;
    default:
        break;
    }
    return RAFT_OK;
}
