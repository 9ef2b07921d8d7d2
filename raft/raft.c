/* raft: a node's life: creation, the clock, message dispatch by term and
 * role, and role changes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/core.h"

/* ---- names and logging ---- */

const char *raft_err_message(int code) {
    static const char *const messages[RAFT_ERR_COUNT_] = {
        [RAFT_OK] = "ok",
        [RAFT_ERR_NOT_LEADER] = "not the leader",
        [RAFT_ERR_PROPOSAL_DROPPED] = "proposal dropped (leader transfer or too much uncommitted)",
        [RAFT_ERR_CONF_CHANGE_PENDING] = "a membership change is already in progress",
        [RAFT_ERR_INVALID] = "invalid request",
        [RAFT_ERR_BUSY] = "too many requests waiting",
        [RAFT_ERR_READ_DROPPED] = "read dropped: leadership changed",
        [RAFT_ERR_COMPACTED] = "log entry compacted",
        [RAFT_ERR_UNAVAILABLE] = "log entry unavailable",
        [RAFT_ERR_CORRUPT] = "corrupt log or message",
        [RAFT_ERR_NOMEM] = "out of memory",
    };
    return code >= 0 && code < RAFT_ERR_COUNT_ ? messages[code] : "unknown raft error";
}

const char *raft_msg_type_name(raft_msg_type type) {
    static const char *const names[RAFT_MSG_TYPE_COUNT_] = {
        "append",        "append_resp", "vote",           "vote_resp", "pre_vote",
        "pre_vote_resp", "heartbeat",   "heartbeat_resp", "snapshot",  "timeout_now",
    };
    return (unsigned)type < RAFT_MSG_TYPE_COUNT_ ? names[type] : "unknown";
}

const char *raft_role_name(raft_role role) {
    static const char *const names[] = {"follower", "pre-candidate", "candidate", "leader"};
    return names[role];
}

void raft_logf(const raft *r, raft_log_level level, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    int n;

    if (r->cfg.log_cb == NULL)
        return;
    n = snprintf(buf, sizeof(buf), "raft %llu term %llu: ", (unsigned long long)r->id,
                 (unsigned long long)r->term);
    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    r->cfg.log_cb(r->cfg.log_ctx, level, buf);
}

/* ---- randomness: election timeouts only, reproducible from the seed ---- */

static uint64_t raft_rand(raft *r) {
    /* splitmix64 */
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void raft_reset_randomized_election_ticks(raft *r) {
    int base = r->cfg.election_ticks;
    r->randomized_election_ticks = base + (int)(raft_rand(r) % (uint64_t)base);
}

/* ---- progress of members ---- */

raft_progress *raft_progress_of(raft *r, raft_id_t id) {
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].id == id)
            return &r->prs[i];
    }
    return NULL;
}

static void raft_collect_members(const raft_conf_state *c, raft_id_t *ids, uint32_t *n) {
    const raft_id_t *lists[] = {c->voters, c->voters_outgoing, c->learners, c->learners_next};
    uint32_t sizes[] = {c->n_voters, c->n_voters_outgoing, c->n_learners, c->n_learners_next};

    *n = 0;
    for (int l = 0; l < 4; l++) {
        for (uint32_t i = 0; i < sizes[l]; i++) {
            if (!raft_conf_has(ids, *n, lists[l][i]) && *n < RAFT_MEMBERS_MAX)
                ids[(*n)++] = lists[l][i];
        }
    }
}

/* Makes prs match r->conf: keeps what it knows of remaining members, adds
 * new ones in probe state, drops removed ones. */
int raft_rebuild_progress(raft *r) {
    raft_progress next[RAFT_MEMBERS_MAX];
    raft_id_t ids[RAFT_MEMBERS_MAX];
    uint32_t n;

    raft_collect_members(&r->conf, ids, &n);
    /* Build the new set aside, so running out of memory changes nothing. */
    for (uint32_t i = 0; i < n; i++) {
        raft_progress *prev = raft_progress_of(r, ids[i]);
        if (prev != NULL) {
            next[i] = *prev;
            continue;
        }
        memset(&next[i], 0, sizeof(next[i]));
        next[i].id = ids[i];
        next[i].inflight_cap = r->cfg.max_inflight_msgs;
        next[i].inflight = calloc(next[i].inflight_cap, sizeof(raft_index_t));
        if (next[i].inflight == NULL) {
            for (uint32_t k = 0; k < i; k++) {
                if (raft_progress_of(r, ids[k]) == NULL)
                    free(next[k].inflight);
            }
            return RAFT_ERR_NOMEM;
        }
        raft_pr_reset(&next[i], raft_log_last_index(&r->log) + 1);
        /* A new member is presumed active so it gets a snapshot at once. */
        next[i].recent_active = true;
    }
    /* Members that left take their windows with them. */
    for (uint32_t k = 0; k < r->n_prs; k++) {
        if (!raft_conf_has(ids, n, r->prs[k].id))
            free(r->prs[k].inflight);
    }
    for (uint32_t i = 0; i < n; i++) {
        r->prs[i] = next[i];
        r->prs[i].is_learner = !raft_conf_is_voter(&r->conf, ids[i]);
    }
    r->n_prs = n;
    return RAFT_OK;
}

bool raft_is_promotable(const raft *r) {
    return raft_conf_is_voter(&r->conf, r->id);
}

/* ---- sending ---- */

void raft_msg_free_entries(raft_msg *msg) {
    raft_entries_free(msg->entries, msg->n_entries);
    msg->entries = NULL;
    msg->n_entries = 0;
    free(msg->snapshot.data);
    msg->snapshot.data = NULL;
}

static int raft_queue_push(raft_msg_queue *q, const raft_msg *m) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        raft_msg *items = realloc(q->items, cap * sizeof(*items));
        if (items == NULL)
            return RAFT_ERR_NOMEM;
        q->items = items;
        q->cap = cap;
    }
    q->items[q->n++] = *m;
    return RAFT_OK;
}

int raft_send(raft *r, raft_msg *m) {
    m->from = r->id;
    if (m->term == 0)
        m->term = r->term;
    /* A leader's appends, heartbeats and snapshots depend on nothing it has
     * yet to persist (it counts itself toward commit only once persisted), so
     * they leave at once, provided its term and vote are on disk: a leader
     * that won at once (a lone voter) and crashed before persisting its term
     * could win that term again and send different entries under it.
     * Everything else (votes, acknowledgements) speaks of state that must be
     * on disk first. */
    bool term_on_disk = r->prev_hard_state.term == r->term && r->prev_hard_state.vote == r->vote;
    raft_msg_queue *q = r->role == RAFT_LEADER && term_on_disk ? &r->msgs : &r->msgs_after;
    int rc = raft_queue_push(q, m);
    if (rc != RAFT_OK)
        raft_msg_free_entries(m);
    return rc;
}

/* ---- role changes ---- */

static void raft_reset(raft *r, raft_term_t term) {
    if (r->term != term) {
        r->term = term;
        r->vote = RAFT_NONE;
    }
    r->lead = RAFT_NONE;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    raft_reset_randomized_election_ticks(r);
    raft_abort_transfer(r);
    r->n_votes = 0;
    r->pending_conf_index = 0;
    r->uncommitted_bytes = 0;
    raft_reads_drop_all(r);
    for (uint32_t i = 0; i < r->n_prs; i++) {
        raft_pr_reset(&r->prs[i], raft_log_last_index(&r->log) + 1);
        if (r->prs[i].id == r->id)
            r->prs[i].match = raft_log_persisted_index(&r->log);
    }
}

void raft_become_follower(raft *r, raft_term_t term, raft_id_t lead) {
    raft_reset(r, term);
    r->role = RAFT_FOLLOWER;
    r->lead = lead;
    raft_logf(r, RAFT_LOG_INFO, "became follower of %llu", (unsigned long long)lead);
}

void raft_become_pre_candidate(raft *r) {
    /* Pre-vote changes neither term nor vote (Raft thesis 9.6). */
    r->role = RAFT_PRE_CANDIDATE;
    r->n_votes = 0;
    r->lead = RAFT_NONE;
    raft_reads_drop_all(r);
    raft_logf(r, RAFT_LOG_INFO, "became pre-candidate");
}

void raft_become_candidate(raft *r) {
    raft_reset(r, r->term + 1);
    r->vote = r->id;
    r->role = RAFT_CANDIDATE;
    raft_logf(r, RAFT_LOG_INFO, "became candidate");
}

void raft_become_leader(raft *r) {
    raft_reset(r, r->term);
    r->role = RAFT_LEADER;
    r->lead = r->id;
    for (uint32_t i = 0; i < r->n_prs; i++)
        r->prs[i].recent_active = true;
    raft_progress *self = raft_progress_of(r, r->id);
    if (self != NULL)
        raft_pr_become_replicate(self), self->match = raft_log_persisted_index(&r->log);

    /* An empty entry of the new term: committing it commits everything before
     * it (Raft paper 5.4.2) and unlocks ReadIndex (thesis 6.4). No membership
     * change may start before it commits, since the log may hold an unapplied
     * one. */
    raft_index_t index;
    raft_append_entry(r, RAFT_ENTRY_NORMAL, NULL, 0, &index);
    r->pending_conf_index = index;
    raft_logf(r, RAFT_LOG_INFO, "became leader at index %llu", (unsigned long long)index);
}

/* ---- creation ---- */

static int raft_check_config(const raft_config *c) {
    if (c->id == RAFT_NONE || c->election_ticks <= 0 || c->heartbeat_ticks <= 0 ||
        c->heartbeat_ticks >= c->election_ticks || c->max_inflight_msgs == 0 ||
        c->max_entries_per_msg == 0 || c->max_bytes_per_msg == 0 || c->storage.entries == NULL)
        return RAFT_ERR_INVALID;
    return RAFT_OK;
}

int raft_new(const raft_config *config, raft **out) {
    raft_hard_state hs;
    raft *r;
    int rc;

    *out = NULL;
    if ((rc = raft_check_config(config)) != RAFT_OK)
        return rc;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return RAFT_ERR_NOMEM;
    r->id = config->id;
    r->cfg = *config;
    r->rng = config->seed ^ (config->id * 0x2545f4914f6cdd1dull);

    rc = config->storage.initial_state(config->storage.ctx, &hs, &r->conf);
    if (rc == RAFT_OK)
        rc = raft_log_init(&r->log, &config->storage, config->applied);
    if (rc == RAFT_OK)
        rc = raft_rebuild_progress(r);
    if (rc != RAFT_OK) {
        raft_free(r);
        return rc;
    }
    if (hs.commit > raft_log_last_index(&r->log)) {
        raft_free(r);
        return RAFT_ERR_CORRUPT;
    }
    raft_log_commit_to(&r->log, hs.commit);
    raft_become_follower(r, hs.term, RAFT_NONE);
    r->vote = hs.vote;
    r->prev_hard_state = (raft_hard_state){r->term, r->vote, r->log.committed};
    *out = r;
    return RAFT_OK;
}

static void raft_queue_free(raft_msg_queue *q) {
    for (size_t i = 0; i < q->n; i++)
        raft_msg_free_entries(&q->items[i]);
    free(q->items);
}

void raft_free(raft *r) {
    if (r == NULL)
        return;
    raft_log_free(&r->log);
    for (uint32_t i = 0; i < r->n_prs; i++)
        free(r->prs[i].inflight);
    raft_queue_free(&r->msgs);
    raft_queue_free(&r->msgs_after);
    raft_queue_free(&r->ready_msgs);
    raft_queue_free(&r->ready_msgs_after);
    free(r->ready_read_states);
    raft_entries_free(r->ready_committed, r->n_ready_committed);
    free(r->reads);
    free(r->read_states);
    free(r);
}

/* ---- the clock ---- */

static bool raft_quorum_active(raft *r);

static void raft_tick_leader(raft *r) {
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        /* Raft thesis 6.2: a leader cut off from a quorum steps down. */
        if (r->cfg.check_quorum && !raft_quorum_active(r)) {
            raft_logf(r, RAFT_LOG_WARN, "stepping down: no quorum heard in an election timeout");
            raft_become_follower(r, r->term, RAFT_NONE);
            return;
        }
        raft_abort_transfer(r);
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        raft_broadcast_heartbeat(r, r->read_round);
    }
}

void raft_tick(raft *r) {
    if (r->role == RAFT_LEADER) {
        raft_tick_leader(r);
        return;
    }
    r->election_elapsed++;
    if (raft_is_promotable(r) && r->election_elapsed >= r->randomized_election_ticks) {
        r->election_elapsed = 0;
        raft_campaign(r, r->cfg.pre_vote, false);
    }
}

static int raft_active_vote(void *ctx, raft_id_t id) {
    raft *r = ctx;
    raft_progress *pr = raft_progress_of(r, id);
    return id == r->id || (pr != NULL && pr->recent_active) ? 1 : 0;
}

static bool raft_quorum_active(raft *r) {
    bool active = raft_quorum_vote(&r->conf, raft_active_vote, r) == RAFT_VOTE_WON;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].id != r->id)
            r->prs[i].recent_active = false;
    }
    return active;
}

/* ---- messages ---- */

/* A message from an older term. Tell a stale leader about the newer term so
 * it steps down (without this, check-quorum and pre-vote could leave it stuck:
 * Raft thesis 9.6); answer a stale pre-vote so the asker learns it lost. */
static int raft_step_lower_term(raft *r, const raft_msg *m) {
    if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
        (m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_APPEND)) {
        raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
        return raft_send(r, &resp);
    }
    if (m->type == RAFT_MSG_PRE_VOTE) {
        raft_msg resp = {.type = RAFT_MSG_PRE_VOTE_RESP, .to = m->from, .reject = true};
        return raft_send(r, &resp);
    }
    return RAFT_OK;
}

/* A message from a newer term. Returns false when it must be ignored. */
static bool raft_step_higher_term(raft *r, const raft_msg *m) {
    if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE) {
        /* Within a leader's lease, ignore elections: a node that was cut off
         * or removed must not depose a healthy leader (thesis 4.2.3). */
        bool in_lease = r->cfg.check_quorum && r->lead != RAFT_NONE &&
                        r->election_elapsed < r->cfg.election_ticks;
        if (in_lease && !m->transfer) {
            raft_logf(r, RAFT_LOG_DEBUG, "ignoring %s from %llu: leader %llu is in lease",
                      raft_msg_type_name(m->type), (unsigned long long)m->from,
                      (unsigned long long)r->lead);
            return false;
        }
    }
    if (m->type == RAFT_MSG_PRE_VOTE)
        return true; /* never change term for a pre-vote */
    if (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject)
        return true; /* pre-vote grants carry our own future term */
    bool from_leader =
        m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_SNAPSHOT;
    raft_become_follower(r, m->term, from_leader ? m->from : RAFT_NONE);
    return true;
}

static int raft_step_follower(raft *r, const raft_msg *m) {
    switch (m->type) {
    case RAFT_MSG_APPEND:
        r->election_elapsed = 0;
        r->lead = m->from;
        return raft_handle_append(r, m);
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->lead = m->from;
        return raft_handle_heartbeat(r, m);
    case RAFT_MSG_SNAPSHOT:
        r->election_elapsed = 0;
        r->lead = m->from;
        return raft_handle_snapshot(r, m);
    case RAFT_MSG_TIMEOUT_NOW:
        /* Leader transfer (thesis 3.10): campaign at once, skipping pre-vote. */
        if (raft_is_promotable(r)) {
            raft_logf(r, RAFT_LOG_INFO, "campaigning at once: leader %llu transfers to us",
                      (unsigned long long)m->from);
            raft_campaign(r, false, true);
        }
        return RAFT_OK;
    default:
        return RAFT_OK;
    }
}

static int raft_step_candidate(raft *r, const raft_msg *m) {
    switch (m->type) {
    case RAFT_MSG_APPEND:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAPSHOT:
        /* Someone won this term. */
        raft_become_follower(r, m->term, m->from);
        return raft_step_follower(r, m);
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        return raft_handle_vote_response(r, m);
    default:
        return RAFT_OK;
    }
}

static int raft_step_leader(raft *r, const raft_msg *m) {
    switch (m->type) {
    case RAFT_MSG_APPEND_RESP:
        return raft_handle_append_response(r, m);
    case RAFT_MSG_HEARTBEAT_RESP:
        return raft_handle_heartbeat_response(r, m);
    default:
        return RAFT_OK;
    }
}

/* Impossible message contents are corruption, refused before any use. */
static int raft_check_msg(const raft_msg *m) {
    for (uint32_t i = 0; i < m->n_entries; i++) {
        if (m->entries[i].index != m->index + 1 + i || m->entries[i].term > m->term ||
            (m->entries[i].len > 0 && m->entries[i].data == NULL))
            return RAFT_ERR_CORRUPT;
    }
    if (m->n_entries > 0 && m->type != RAFT_MSG_APPEND)
        return RAFT_ERR_CORRUPT;
    if (m->snapshot.len > 0 && m->snapshot.data == NULL)
        return RAFT_ERR_CORRUPT;
    return RAFT_OK;
}

int raft_step(raft *r, const raft_msg *m) {
    if (m->to != r->id || m->from == r->id || (unsigned)m->type >= RAFT_MSG_TYPE_COUNT_)
        return RAFT_ERR_INVALID;
    if (raft_check_msg(m) != RAFT_OK) {
        raft_logf(r, RAFT_LOG_WARN, "refusing a malformed %s from %llu",
                  raft_msg_type_name(m->type), (unsigned long long)m->from);
        return RAFT_ERR_CORRUPT;
    }
    if (m->term > r->term && !raft_step_higher_term(r, m))
        return RAFT_OK;
    if (m->term < r->term)
        return raft_step_lower_term(r, m);

    if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE)
        return raft_handle_vote_request(r, m);
    switch (r->role) {
    case RAFT_FOLLOWER:
        return raft_step_follower(r, m);
    case RAFT_PRE_CANDIDATE:
    case RAFT_CANDIDATE:
        return raft_step_candidate(r, m);
    default:
        return raft_step_leader(r, m);
    }
}

/* ---- observers ---- */

raft_id_t raft_id(const raft *r) {
    return r->id;
}

raft_role raft_get_role(const raft *r) {
    return r->role;
}

raft_id_t raft_leader(const raft *r) {
    return r->lead;
}

raft_term_t raft_term(const raft *r) {
    return r->term;
}

raft_index_t raft_commit_index(const raft *r) {
    return r->log.committed;
}

raft_index_t raft_last_index(const raft *r) {
    return raft_log_last_index(&r->log);
}

raft_index_t raft_applied_index(const raft *r) {
    return r->log.applied;
}

int raft_term_at(const raft *r, raft_index_t i, raft_term_t *term) {
    return raft_log_term(&r->log, i, term);
}

const raft_conf_state *raft_conf(const raft *r) {
    return &r->conf;
}

raft_index_t raft_min_match(const raft *r) {
    raft_index_t min = UINT64_MAX;

    if (r->role != RAFT_LEADER)
        return 0;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        raft_index_t match =
            r->prs[i].id == r->id ? raft_log_persisted_index(&r->log) : r->prs[i].match;
        if (match < min)
            min = match;
    }
    return min == UINT64_MAX ? 0 : min;
}

raft_id_t raft_transferee(const raft *r) {
    return r->lead_transferee;
}
