/* replication: the leader's log flowing to followers (Raft paper 5.3), and
 * commitment (5.4.2). */
#include <stdlib.h>
#include <string.h>

#include "raft/core.h"

int raft_append_entry(raft *r, raft_entry_type type, const void *data, uint32_t len,
                      raft_index_t *index) {
    raft_entry e = {
        .term = r->term,
        .index = raft_log_last_index(&r->log) + 1,
        .type = type,
        .len = len,
        .data = (uint8_t *)data,
    };
    int rc = raft_log_append(&r->log, &e, 1);
    if (rc != RAFT_OK)
        return rc;
    r->uncommitted_bytes += len;
    *index = e.index;
    /* The leader's own match moves only when the host has persisted the entry
     * (raft_advance); followers get it right away. */
    raft_broadcast_append(r);
    return RAFT_OK;
}

int raft_propose(raft *r, const void *data, uint32_t len, raft_index_t *index) {
    if (r->role != RAFT_LEADER)
        return RAFT_ERR_NOT_LEADER;
    if (r->lead_transferee != RAFT_NONE)
        return RAFT_ERR_PROPOSAL_DROPPED;
    /* One proposal may always go when nothing is uncommitted, however large. */
    if (r->cfg.max_uncommitted_bytes > 0 && r->uncommitted_bytes > 0 &&
        r->uncommitted_bytes + len > r->cfg.max_uncommitted_bytes)
        return RAFT_ERR_PROPOSAL_DROPPED;
    return raft_append_entry(r, RAFT_ENTRY_NORMAL, data, len, index);
}

static int raft_send_snapshot(raft *r, raft_progress *pr) {
    raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .to = pr->id};
    int rc;

    /* A member not heard from lately is probably down: a snapshot would be
     * wasted (the host's snapshots are costly). */
    if (!pr->recent_active)
        return RAFT_ERR_UNAVAILABLE;
    rc = r->log.storage.snapshot(r->log.storage.ctx, &m.snapshot);
    if (rc != RAFT_OK)
        return rc;
    if (m.snapshot.index == 0) {
        free(m.snapshot.data);
        return RAFT_ERR_UNAVAILABLE;
    }
    raft_logf(r, RAFT_LOG_INFO, "sending snapshot at %llu to %llu (its next %llu)",
              (unsigned long long)m.snapshot.index, (unsigned long long)pr->id,
              (unsigned long long)pr->next);
    raft_pr_become_snapshot(pr, m.snapshot.index);
    return raft_send(r, &m);
}

bool raft_maybe_send_append(raft *r, raft_id_t to, bool send_if_empty) {
    raft_progress *pr = raft_progress_of(r, to);
    raft_msg m = {.type = RAFT_MSG_APPEND, .to = to};
    raft_entry *ents = NULL;
    size_t n = 0;
    int term_rc, ents_rc;

    if (pr == NULL || to == r->id || raft_pr_is_paused(pr))
        return false;
    term_rc = raft_log_term(&r->log, pr->next - 1, &m.log_term);
    ents_rc = raft_log_entries(&r->log, pr->next, raft_log_last_index(&r->log) + 1,
                               r->cfg.max_entries_per_msg, r->cfg.max_bytes_per_msg, &ents, &n);
    if (term_rc != RAFT_OK || ents_rc != RAFT_OK) {
        raft_entries_free(ents, n);
        return raft_send_snapshot(r, pr) == RAFT_OK;
    }
    if (n == 0 && !send_if_empty) {
        raft_entries_free(ents, n);
        return false;
    }

    m.index = pr->next - 1;
    m.entries = ents;
    m.n_entries = (uint32_t)n;
    m.commit = r->log.committed;
    if (n > 0) {
        raft_index_t last = ents[n - 1].index;
        if (pr->state == RAFT_PR_REPLICATE) {
            /* Pipelining: assume success and keep going. */
            pr->next = last + 1;
            raft_pr_inflight_add(pr, last);
        } else {
            pr->probe_sent = true;
        }
    } else if (pr->state == RAFT_PR_PROBE) {
        pr->probe_sent = true;
    }
    return raft_send(r, &m) == RAFT_OK;
}

void raft_broadcast_append(raft *r) {
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].id != r->id)
            raft_maybe_send_append(r, r->prs[i].id, true);
    }
}

void raft_broadcast_heartbeat(raft *r, uint64_t context) {
    for (uint32_t i = 0; i < r->n_prs; i++) {
        raft_progress *pr = &r->prs[i];
        if (pr->id == r->id)
            continue;
        /* Never tell a follower of a commit past what it is known to hold. */
        raft_msg m = {
            .type = RAFT_MSG_HEARTBEAT,
            .to = pr->id,
            .commit = pr->match < r->log.committed ? pr->match : r->log.committed,
            .context = context,
        };
        raft_send(r, &m);
    }
}

static raft_index_t raft_match_of(void *ctx, raft_id_t id) {
    raft_progress *pr = raft_progress_of(ctx, id);
    return pr ? pr->match : 0;
}

bool raft_committed_in_current_term(const raft *r) {
    return raft_log_term_or_zero(&r->log, r->log.committed) == r->term;
}

bool raft_maybe_commit(raft *r) {
    raft_index_t index = raft_quorum_committed(&r->conf, raft_match_of, r);
    bool first_in_term = !raft_committed_in_current_term(r);

    if (!raft_log_maybe_commit(&r->log, index, r->term))
        return false;
    if (first_in_term)
        raft_reads_on_commit(r);
    return true;
}

/* ---- the follower's side ---- */

int raft_handle_append(raft *r, const raft_msg *m) {
    raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
    raft_index_t last_new;
    bool ok;
    int rc;

    if (m->index < r->log.committed) {
        /* Already committed here; say how far we are. */
        resp.index = r->log.committed;
        return raft_send(r, &resp);
    }
    rc = raft_log_maybe_append(&r->log, m->index, m->log_term, m->commit, m->entries, m->n_entries,
                               &ok, &last_new);
    if (rc != RAFT_OK) {
        raft_logf(r, RAFT_LOG_ERROR, "append from %llu at %llu failed: %s",
                  (unsigned long long)m->from, (unsigned long long)m->index, raft_err_message(rc));
        return rc;
    }
    if (ok) {
        /* Sent only after the entries are persisted (raft_send). */
        resp.index = last_new;
        return raft_send(r, &resp);
    }

    /* Fast back-off: name the last index whose term is no later than the
     * leader's term at m->index, so the leader skips a whole term at once. */
    raft_index_t hint =
        m->index < raft_log_last_index(&r->log) ? m->index : raft_log_last_index(&r->log);
    resp.reject = true;
    resp.index = m->index;
    resp.reject_hint = raft_log_find_conflict_by_term(&r->log, hint, m->log_term, &resp.hint_term);
    return raft_send(r, &resp);
}

int raft_handle_heartbeat(raft *r, const raft_msg *m) {
    raft_msg resp = {.type = RAFT_MSG_HEARTBEAT_RESP, .to = m->from, .context = m->context};

    raft_log_commit_to(&r->log, m->commit);
    /* How far our log goes, so a leader learns if we lost what we had. */
    resp.index = raft_log_last_index(&r->log);
    return raft_send(r, &resp);
}

int raft_handle_snapshot(raft *r, const raft_msg *m) {
    const raft_snapshot *s = &m->snapshot;
    raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};

    if (s->index <= r->log.committed) {
        resp.index = r->log.committed;
        return raft_send(r, &resp);
    }
    if (raft_log_match_term(&r->log, s->index, s->term)) {
        /* Our log already holds the snapshot's history: just commit it. */
        raft_log_commit_to(&r->log, s->index);
        resp.index = r->log.committed;
        return raft_send(r, &resp);
    }
    raft_logf(r, RAFT_LOG_INFO, "restoring snapshot at %llu term %llu from %llu",
              (unsigned long long)s->index, (unsigned long long)s->term,
              (unsigned long long)m->from);
    int rc = raft_log_restore(&r->log, s);
    if (rc != RAFT_OK)
        return rc;
    r->conf = s->conf;
    rc = raft_rebuild_progress(r);
    if (rc != RAFT_OK)
        return rc;
    resp.index = s->index;
    return raft_send(r, &resp);
}

/* ---- the leader's side ---- */

static void raft_handle_append_reject(raft *r, raft_progress *pr, const raft_msg *m) {
    raft_index_t next_probe = m->reject_hint;

    /* The follower's hint is in its log; find where ours agrees by term. */
    if (m->hint_term > 0) {
        raft_term_t found;
        next_probe = raft_log_find_conflict_by_term(&r->log, m->reject_hint, m->hint_term, &found);
    }
    if (raft_pr_maybe_decr_to(pr, m->index, next_probe)) {
        if (pr->state == RAFT_PR_REPLICATE)
            raft_pr_become_probe(pr);
        raft_maybe_send_append(r, m->from, true);
    }
}

int raft_handle_append_response(raft *r, const raft_msg *m) {
    raft_progress *pr = raft_progress_of(r, m->from);

    if (pr == NULL)
        return RAFT_OK;
    pr->recent_active = true;
    if (m->reject) {
        raft_handle_append_reject(r, pr, m);
        return RAFT_OK;
    }

    bool was_paused = raft_pr_is_paused(pr);
    if (!raft_pr_maybe_update(pr, m->index))
        return RAFT_OK;
    if (pr->state == RAFT_PR_PROBE) {
        raft_pr_become_replicate(pr);
    } else if (pr->state == RAFT_PR_SNAPSHOT && pr->match >= pr->pending_snapshot) {
        raft_pr_become_probe(pr);
        raft_pr_become_replicate(pr);
    } else if (pr->state == RAFT_PR_REPLICATE) {
        raft_pr_inflight_free_to(pr, m->index);
    }

    if (raft_maybe_commit(r))
        raft_broadcast_append(r); /* followers learn the new commit index */
    else if (was_paused)
        raft_maybe_send_append(r, m->from, true);
    /* Fill the pipeline. */
    while (raft_maybe_send_append(r, m->from, false)) {
    }
    raft_maybe_finish_transfer(r, m->from);
    return RAFT_OK;
}

int raft_handle_heartbeat_response(raft *r, const raft_msg *m) {
    raft_progress *pr = raft_progress_of(r, m->from);

    if (pr == NULL)
        return RAFT_OK;
    pr->recent_active = true;
    pr->probe_sent = false;
    /* A member whose log ends before what it acknowledged lost its data (its
     * disk was wiped): probe it from where it is, which ends in a snapshot if
     * the log no longer reaches back that far. A delayed answer can look the
     * same; probing again then costs one round trip. */
    if (m->index < pr->match) {
        raft_logf(r, RAFT_LOG_WARN,
                  "member %llu reports log end %llu below its match %llu: probing",
                  (unsigned long long)m->from, (unsigned long long)m->index,
                  (unsigned long long)pr->match);
        pr->match = m->index;
        raft_pr_become_probe(pr);
    }
    /* A full window whose appends were lost would stall forever: the member
     * is alive, so let one more append go (it is rejected if it does not
     * fit, and the leader probes back). */
    if (pr->state == RAFT_PR_REPLICATE && pr->inflight_count == pr->inflight_cap)
        raft_pr_inflight_free_first(pr);
    if (pr->match < raft_log_last_index(&r->log))
        raft_maybe_send_append(r, m->from, true);
    if (m->context > pr->read_ack) {
        pr->read_ack = m->context;
        raft_reads_recheck(r);
    }
    return RAFT_OK;
}

void raft_report_snapshot(raft *r, raft_id_t to, bool ok) {
    raft_progress *pr = raft_progress_of(r, to);

    if (r->role != RAFT_LEADER || pr == NULL || pr->state != RAFT_PR_SNAPSHOT)
        return;
    if (!ok)
        pr->pending_snapshot = 0;
    raft_logf(r, RAFT_LOG_INFO, "snapshot to %llu %s", (unsigned long long)to,
              ok ? "sent" : "failed");
    raft_pr_become_probe(pr);
    /* Wait for the member's append response before probing again. */
    pr->probe_sent = true;
}

void raft_report_unreachable(raft *r, raft_id_t to) {
    raft_progress *pr = raft_progress_of(r, to);

    if (r->role == RAFT_LEADER && pr != NULL && pr->state == RAFT_PR_REPLICATE)
        raft_pr_become_probe(pr);
}
