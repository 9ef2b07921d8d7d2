/* cluster: raft nodes over memory storage and a simulated network. */
#include "tests/raft/cluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cluster_violation(cluster *c, const char *fmt, ...) {
    va_list ap;

    if (c->violation[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(c->violation, sizeof(c->violation), fmt, ap);
    va_end(ap);
}

static void cluster_log_cb(void *ctx, raft_log_level level, const char *message) {
    cluster *c = ctx;
    if (c->logging || level >= RAFT_LOG_ERROR)
        fprintf(stderr, "[step %llu] %s\n", (unsigned long long)c->now, message);
}

static cluster_node *cluster_node_of(cluster *c, raft_id_t id) {
    return id >= 1 && id <= (raft_id_t)c->n ? &c->nodes[id - 1] : NULL;
}

raft *cluster_raft(cluster *c, raft_id_t id) {
    cluster_node *n = cluster_node_of(c, id);
    return n ? n->r : NULL;
}

cluster *cluster_new(int n, int voters, uint64_t seed) {
    cluster *c = calloc(1, sizeof(*c));
    raft_conf_state conf = {0};

    c->n = n;
    c->msgs = calloc(CLUSTER_MSGS_MAX, sizeof(*c->msgs));
    c->committed = calloc(CLUSTER_LOG_MAX + 1, sizeof(*c->committed));
    for (int i = 0; i < n; i++) {
        if (i < voters)
            conf.voters[conf.n_voters++] = (raft_id_t)(i + 1);
        else
            conf.learners[conf.n_learners++] = (raft_id_t)(i + 1);
    }
    c->base = (raft_config){
        .election_ticks = 10,
        .heartbeat_ticks = 1,
        .pre_vote = true,
        .check_quorum = true,
        .max_entries_per_msg = 16,
        .max_bytes_per_msg = 64 * 1024,
        .max_inflight_msgs = 8,
        .max_uncommitted_bytes = 1 << 20,
        .seed = seed,
        .log_cb = cluster_log_cb,
        .log_ctx = c,
    };
    for (int i = 0; i < n; i++) {
        cluster_node *node = &c->nodes[i];
        node->id = (raft_id_t)(i + 1);
        node->ms = memory_storage_new(&conf);
        node->conf = conf;
        node->member = true;
        cluster_start(c, node->id);
    }
    return c;
}

static void cluster_msg_free(raft_msg *m) {
    raft_entries_free(m->entries, m->n_entries);
    free(m->snapshot.data);
}

void cluster_free(cluster *c) {
    for (int i = 0; i < c->n; i++) {
        cluster_crash(c, c->nodes[i].id);
        memory_storage_free(c->nodes[i].ms);
    }
    for (size_t i = 0; i < c->n_msgs; i++)
        cluster_msg_free(&c->msgs[i].msg);
    free(c->msgs);
    free(c->committed);
    free(c);
}

void cluster_start(cluster *c, raft_id_t id) {
    cluster_node *node = cluster_node_of(c, id);
    raft_config cfg = c->base;

    if (node->r != NULL)
        return;
    cfg.id = id;
    cfg.storage = memory_storage_interface(node->ms);
    cfg.applied = node->applied;
    cfg.seed = c->base.seed + id * 7919 + c->now;
    int rc = raft_new(&cfg, &node->r);
    if (rc != RAFT_OK)
        cluster_violation(c, "node %llu cannot restart: %s", (unsigned long long)id,
                          raft_err_message(rc));
}

void cluster_crash(cluster *c, raft_id_t id) {
    cluster_node *node = cluster_node_of(c, id);

    (void)c;
    /* The pending batch's memory belongs to the raft being freed. */
    node->ready_pending = false;
    node->n_snapshot_reports = 0;
    raft_free(node->r);
    node->r = NULL;
}

/* ---- the network ---- */

static int cluster_copy_msg(raft_msg *dst, const raft_msg *src) {
    *dst = *src;
    dst->entries = NULL;
    dst->snapshot.data = NULL;
    if (src->n_entries > 0) {
        dst->entries = calloc(src->n_entries, sizeof(raft_entry));
        for (uint32_t i = 0; i < src->n_entries; i++) {
            dst->entries[i] = src->entries[i];
            dst->entries[i].data = NULL;
            if (src->entries[i].len > 0) {
                dst->entries[i].data = malloc(src->entries[i].len);
                memcpy(dst->entries[i].data, src->entries[i].data, src->entries[i].len);
            }
        }
    }
    if (src->snapshot.len > 0) {
        dst->snapshot.data = malloc(src->snapshot.len);
        memcpy(dst->snapshot.data, src->snapshot.data, src->snapshot.len);
    }
    return 0;
}

/* The sender's host learns how sending a snapshot ended (as Basalt's
 * transport reports it), once the sender is between ready batches. */
static void cluster_snapshot_outcome(cluster *c, raft_id_t from, raft_id_t to, bool ok) {
    cluster_node *n = cluster_node_of(c, from);

    if (n->r == NULL)
        return;
    if (!n->ready_pending) {
        raft_report_snapshot(n->r, to, ok);
        return;
    }
    if (n->n_snapshot_reports < (int)(sizeof(n->snapshot_to) / sizeof(n->snapshot_to[0]))) {
        n->snapshot_to[n->n_snapshot_reports] = to;
        n->snapshot_ok[n->n_snapshot_reports++] = ok;
    }
}

static void cluster_flush_snapshot_reports(cluster_node *n) {
    for (int i = 0; i < n->n_snapshot_reports; i++)
        raft_report_snapshot(n->r, n->snapshot_to[i], n->snapshot_ok[i]);
    n->n_snapshot_reports = 0;
}

/* Every append respects the configured bounds (one oversized entry may go
 * alone). */
static void cluster_check_append_bounds(cluster *c, const raft_msg *m) {
    uint64_t bytes = 0;

    for (uint32_t i = 0; i < m->n_entries; i++)
        bytes += m->entries[i].len;
    if (m->n_entries > c->base.max_entries_per_msg ||
        (m->n_entries > 1 && bytes > c->base.max_bytes_per_msg))
        cluster_violation(c, "append of %u entries, %llu bytes breaks the bounds (%u, %llu)",
                          m->n_entries, (unsigned long long)bytes, c->base.max_entries_per_msg,
                          (unsigned long long)c->base.max_bytes_per_msg);
}

void cluster_enqueue(cluster *c, const raft_msg *m, uint64_t at) {
    c->sent[m->type]++;
    if (m->type == RAFT_MSG_APPEND)
        cluster_check_append_bounds(c, m);
    if (m->type == RAFT_MSG_APPEND_RESP && m->reject)
        c->append_rejects++;
    if (c->cut[m->from][m->to] || c->n_msgs == CLUSTER_MSGS_MAX) {
        /* Lost on the way. */
        if (m->type == RAFT_MSG_SNAPSHOT)
            cluster_snapshot_outcome(c, m->from, m->to, false);
        return;
    }
    cluster_copy_msg(&c->msgs[c->n_msgs].msg, m);
    c->msgs[c->n_msgs].deliver_at = at;
    c->n_msgs++;
}

/* Hands a message taken off the queue to its node (unless the node is down
 * or the link cut), and frees it. */
static void cluster_step_msg(cluster *c, raft_msg *m) {
    raft *to = cluster_raft(c, m->to);
    bool arrived = to != NULL && !c->cut[m->from][m->to];

    if (arrived)
        raft_step(to, m);
    if (m->type == RAFT_MSG_SNAPSHOT)
        cluster_snapshot_outcome(c, m->from, m->to, arrived);
    cluster_msg_free(m);
}

void cluster_deliver(cluster *c, size_t k) {
    raft_msg m = c->msgs[k].msg;

    c->msgs[k] = c->msgs[--c->n_msgs];
    cluster_step_msg(c, &m);
}

void cluster_cut(cluster *c, raft_id_t a, raft_id_t b, bool cut) {
    c->cut[a][b] = cut;
    c->cut[b][a] = cut;
}

void cluster_isolate(cluster *c, raft_id_t id, bool cut) {
    for (int i = 1; i <= c->n; i++) {
        if ((raft_id_t)i != id)
            cluster_cut(c, id, (raft_id_t)i, cut);
    }
}

/* ---- the host loop ---- */

static uint64_t cluster_hash(const raft_entry *e) {
    uint64_t h = 1469598103934665603ull ^ e->type;
    for (uint32_t i = 0; i < e->len; i++)
        h = (h ^ e->data[i]) * 1099511628211ull;
    return h;
}

/* State machine safety: every node applies the same entry at an index. */
static void cluster_apply(cluster *c, cluster_node *node, const raft_entry *e) {
    if (e->index != node->applied + 1) {
        cluster_violation(c, "node %llu applied index %llu after %llu",
                          (unsigned long long)node->id, (unsigned long long)e->index,
                          (unsigned long long)node->applied);
        return;
    }
    if (e->index > CLUSTER_LOG_MAX) {
        cluster_violation(c, "log grew past the simulator's record");
        return;
    }
    cluster_record rec = {e->term, cluster_hash(e)};
    if (e->index <= c->n_committed) {
        cluster_record *want = &c->committed[e->index];
        if (want->term != rec.term || want->hash != rec.hash)
            cluster_violation(c,
                              "node %llu applied index %llu term %llu, but term %llu was committed "
                              "there",
                              (unsigned long long)node->id, (unsigned long long)e->index,
                              (unsigned long long)e->term, (unsigned long long)want->term);
    } else {
        c->committed[e->index] = rec;
        c->n_committed = e->index;
    }
    node->applied = e->index;
    c->applied_entries++;
    if (e->type == RAFT_ENTRY_CONF_CHANGE && node->r != NULL) {
        raft_conf_state conf;
        if (raft_apply_conf_change(node->r, e, &conf) == RAFT_OK) {
            node->conf = conf;
            memory_storage_set_conf(node->ms, &conf);
        }
    }
}

void cluster_ready_begin(cluster *c, cluster_node *node) {
    if (raft_ready_get(node->r, &node->pending) != RAFT_OK) {
        cluster_violation(c, "node %llu: ready_get failed", (unsigned long long)node->id);
        return;
    }
    node->ready_pending = true;
    for (size_t i = 0; i < node->pending.n_messages; i++)
        cluster_enqueue(c, &node->pending.messages[i], c->now + 1);
}

void cluster_ready_finish(cluster *c, cluster_node *node) {
    raft_ready *rd = &node->pending;

    if (rd->has_snapshot) {
        memory_storage_apply_snapshot(node->ms, &rd->snapshot);
        node->conf = rd->snapshot.conf;
        /* The state machine jumps to the snapshot: it holds exactly the
         * committed prefix the cluster recorded. */
        if (rd->snapshot.index > node->applied)
            node->applied = rd->snapshot.index;
    }
    if (memory_storage_append(node->ms, rd->entries, rd->n_entries) != RAFT_OK)
        cluster_violation(c, "node %llu: storage refused entries", (unsigned long long)node->id);
    if (rd->has_hard_state)
        memory_storage_set_hard_state(node->ms, &rd->hard_state);
    for (size_t i = 0; i < rd->n_messages_after_persist; i++)
        cluster_enqueue(c, &rd->messages_after_persist[i], c->now + 1);
    for (size_t i = 0; i < rd->n_committed && c->violation[0] == '\0'; i++)
        cluster_apply(c, node, &rd->committed[i]);
    for (size_t i = 0; i < rd->n_read_states && c->logging; i++)
        fprintf(stderr, "[step %llu] node %llu: read %llu answered: index %llu, %s\n",
                (unsigned long long)c->now, (unsigned long long)node->id,
                (unsigned long long)rd->read_states[i].request_id,
                (unsigned long long)rd->read_states[i].index,
                raft_err_message(rd->read_states[i].err));
    for (size_t i = 0; i < rd->n_read_states && c->n_reads < CLUSTER_READS_MAX; i++) {
        c->reads[c->n_reads] = rd->read_states[i];
        c->read_node[c->n_reads++] = node->id;
    }
    node->ready_pending = false;
    raft_advance(node->r, rd);
    cluster_flush_snapshot_reports(node);
}

void cluster_handle_ready(cluster *c, cluster_node *node) {
    cluster_ready_begin(c, node);
    if (node->ready_pending)
        cluster_ready_finish(c, node);
}

void cluster_check_leaders(cluster *c) {
    for (int i = 0; i < c->n; i++) {
        raft *r = c->nodes[i].r;
        if (r == NULL || raft_get_role(r) != RAFT_LEADER)
            continue;
        raft_term_t term = raft_term(r);
        if (term < sizeof(c->leader_of_term) / sizeof(c->leader_of_term[0])) {
            raft_id_t *known = &c->leader_of_term[term];
            if (*known == RAFT_NONE) {
                *known = raft_id(r);
                c->elections++;
            } else if (*known != raft_id(r)) {
                cluster_violation(c, "two leaders in term %llu: %llu and %llu",
                                  (unsigned long long)term, (unsigned long long)*known,
                                  (unsigned long long)raft_id(r));
            }
        }
        /* Leader completeness (Raft paper 5.4): it holds every entry committed
         * in earlier terms. A deposed leader that has not heard of its
         * successor's term yet need not hold what that successor commits. */
        int checked = 0;
        for (raft_index_t k = c->n_committed; k >= 1 && checked < 64; k--) {
            raft_term_t t;
            if (c->committed[k].term >= term)
                continue;
            checked++;
            int rc = raft_term_at(r, k, &t);
            if (rc == RAFT_ERR_COMPACTED)
                break; /* covered by its snapshot */
            if (rc != RAFT_OK || t != c->committed[k].term) {
                cluster_violation(c, "leader %llu of term %llu lacks committed entry %llu",
                                  (unsigned long long)raft_id(r), (unsigned long long)term,
                                  (unsigned long long)k);
                break;
            }
        }
    }
}

/* Entries below the highest agreeing index that are compared. */
#define CLUSTER_LOG_MATCH_WINDOW 32

static void cluster_check_pair(cluster *c, raft *a, raft *b) {
    raft_index_t top =
        raft_last_index(a) < raft_last_index(b) ? raft_last_index(a) : raft_last_index(b);
    raft_term_t ta, tb;

    /* The highest index where both hold the same term... */
    for (; top > 0; top--) {
        if (raft_term_at(a, top, &ta) != RAFT_OK || raft_term_at(b, top, &tb) != RAFT_OK)
            return; /* compacted on one side: nothing more to compare */
        if (ta == tb)
            break;
    }
    /* ...and everything below it agrees. */
    for (raft_index_t i = top; i > 0 && top - i < CLUSTER_LOG_MATCH_WINDOW; i--) {
        if (raft_term_at(a, i, &ta) != RAFT_OK || raft_term_at(b, i, &tb) != RAFT_OK)
            return;
        if (ta != tb) {
            cluster_violation(c,
                              "log matching: nodes %llu and %llu agree at %llu but differ at "
                              "%llu (terms %llu and %llu)",
                              (unsigned long long)raft_id(a), (unsigned long long)raft_id(b),
                              (unsigned long long)top, (unsigned long long)i,
                              (unsigned long long)ta, (unsigned long long)tb);
            return;
        }
    }
}

void cluster_check_log_matching(cluster *c) {
    for (int i = 0; i < c->n; i++) {
        for (int k = i + 1; k < c->n; k++) {
            if (c->nodes[i].r != NULL && c->nodes[k].r != NULL)
                cluster_check_pair(c, c->nodes[i].r, c->nodes[k].r);
        }
    }
}

void cluster_stabilize(cluster *c, int max_rounds) {
    for (int round = 0; round < max_rounds; round++) {
        bool moved = false;
        for (int i = 0; i < c->n; i++) {
            cluster_node *node = &c->nodes[i];
            if (node->r != NULL && raft_has_ready(node->r)) {
                cluster_handle_ready(c, node);
                moved = true;
            }
        }
        cluster_check_leaders(c);
        /* Deliver what is queued now, oldest first. */
        size_t n = c->n_msgs;
        if (n > 0)
            moved = true;
        for (size_t k = 0; k < n && c->n_msgs > 0; k++) {
            /* Keep FIFO order: always take the first. */
            raft_msg m = c->msgs[0].msg;
            memmove(c->msgs, c->msgs + 1, (c->n_msgs - 1) * sizeof(*c->msgs));
            c->n_msgs--;
            cluster_step_msg(c, &m);
        }
        if (!moved)
            return;
    }
}

void cluster_tick_all(cluster *c) {
    for (int i = 0; i < c->n; i++) {
        if (c->nodes[i].r != NULL)
            raft_tick(c->nodes[i].r);
    }
}

void cluster_elect(cluster *c, raft_id_t id) {
    raft *r = cluster_raft(c, id);
    int limit = 10 * c->base.election_ticks;

    /* Tick only this node, so it times out first. */
    while (raft_get_role(r) == RAFT_FOLLOWER && limit-- > 0)
        raft_tick(r);
    cluster_stabilize(c, 100);
}

raft_id_t cluster_leader(cluster *c) {
    for (int i = 0; i < c->n; i++) {
        raft *r = c->nodes[i].r;
        if (r != NULL && raft_get_role(r) == RAFT_LEADER)
            return raft_id(r);
    }
    return RAFT_NONE;
}

int cluster_propose(cluster *c, raft_id_t id, const char *text) {
    raft_index_t index;
    raft *r = cluster_raft(c, id);
    return r ? raft_propose(r, text, (uint32_t)strlen(text), &index) : RAFT_ERR_NOT_LEADER;
}
