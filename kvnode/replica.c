/* replica: the node's replicas, one per shard it hosts.
 *
 * A replica's persistent identity is its replica state ([shard][0x03]): the
 * descriptor in force, its own replica id, and the Raft membership. It is
 * written when the replica is created and whenever a membership change or a
 * snapshot changes it, in the same batch as the change. At start every
 * replica state found in the store is loaded and its Raft group rejoined.
 *
 * The replicas array stays sorted by start key, so a key finds its shard by
 * binary search (shards on one node never overlap).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvnode/keys.h"
#include "kvnode/node.h"
#include "runtime/error.h"
#include "runtime/log.h"

/* ---- keys and ranges ---- */

int node_bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    return c != 0 ? c : (al > bl) - (al < bl);
}

/* Whether key lies in [start, end) of the descriptor (empty end: no bound). */
bool node_desc_contains(const Basalt__V1__ShardDescriptor *d, const uint8_t *key, size_t key_len) {
    if (node_bytes_cmp(key, key_len, d->start.data, d->start.len) < 0)
        return false;
    return d->end.len == 0 || node_bytes_cmp(key, key_len, d->end.data, d->end.len) < 0;
}

bool node_desc_overlap(const Basalt__V1__ShardDescriptor *a, const Basalt__V1__ShardDescriptor *b) {
    bool a_before_b =
        a->end.len > 0 && node_bytes_cmp(a->end.data, a->end.len, b->start.data, b->start.len) <= 0;
    bool b_before_a =
        b->end.len > 0 && node_bytes_cmp(b->end.data, b->end.len, a->start.data, a->start.len) <= 0;
    return !a_before_b && !b_before_a;
}

node_replica *node_replica_by_key(node *n, const uint8_t *key, size_t key_len) {
    int lo = 0, hi = n->n_replicas - 1, found = -1;

    /* The last replica whose start is <= key. */
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const Basalt__V1__ShardDescriptor *d = n->replicas[mid]->desc;
        if (node_bytes_cmp(d->start.data, d->start.len, key, key_len) <= 0) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    if (found >= 0 && node_desc_contains(n->replicas[found]->desc, key, key_len))
        return n->replicas[found];
    return NULL;
}

node_replica *node_replica_by_shard(node *n, uint64_t shard_id) {
    for (int i = 0; i < n->n_replicas; i++) {
        if (n->replicas[i]->shard_id == shard_id)
            return n->replicas[i];
    }
    return NULL;
}

uint64_t node_of_replica(const node_replica *r, uint64_t replica_id) {
    for (size_t i = 0; i < r->desc->n_replicas; i++) {
        if (r->desc->replicas[i]->replica_id == replica_id)
            return r->desc->replicas[i]->node_id;
    }
    return 0;
}

/* ---- descriptors and membership ---- */

Basalt__V1__ShardDescriptor *node_desc_copy(const Basalt__V1__ShardDescriptor *d) {
    size_t len = basalt__v1__shard_descriptor__get_packed_size(d);
    uint8_t *buf = malloc(len ? len : 1);
    Basalt__V1__ShardDescriptor *copy;

    if (buf == NULL)
        return NULL;
    basalt__v1__shard_descriptor__pack(d, buf);
    copy = basalt__v1__shard_descriptor__unpack(NULL, len, buf);
    free(buf);
    return copy;
}

void node_conf_from_desc(const Basalt__V1__ShardDescriptor *d, raft_conf_state *conf) {
    memset(conf, 0, sizeof(*conf));
    for (size_t i = 0; i < d->n_replicas && i < RAFT_MEMBERS_MAX; i++) {
        const Basalt__V1__ReplicaDescriptor *rd = d->replicas[i];
        if (rd->role == BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_LEARNER)
            conf->learners[conf->n_learners++] = rd->replica_id;
        else
            conf->voters[conf->n_voters++] = rd->replica_id;
    }
}

void node_stage_replica_record(const Basalt__V1__ShardDescriptor *desc, uint64_t replica_id,
                               const raft_conf_state *conf, kvs_batch *batch) {
    Basalt__V1__ReplicaState st = BASALT__V1__REPLICA_STATE__INIT;
    Basalt__V1__RaftConfState wire_conf;
    uint8_t key[KEYS_SHARD_BYTES];

    node_conf_to_wire(conf, &wire_conf);
    st.descriptor = (Basalt__V1__ShardDescriptor *)desc;
    st.replica_id = replica_id;
    st.conf = &wire_conf;
    size_t len = basalt__v1__replica_state__get_packed_size(&st);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL) {
        log_error("out of memory persisting a replica state: stopping");
        abort();
    }
    basalt__v1__replica_state__pack(&st, buf);
    keys_shard(key, desc->id, KEYS_REPLICA_STATE);
    kvs_batch_put(batch, KVS_CF_RAFT, key, sizeof(key), buf, len);
    free(buf);
}

void node_stage_replica_state(node_replica *r, kvs_batch *batch) {
    node_stage_replica_record(r->desc, r->replica_id, &r->conf, batch);
    rlog_set_conf(r->log, &r->conf);
}

/* ---- life of a replica ---- */

void node_free_replica(node_replica *r) {
    if (r == NULL)
        return;
    node_discard_snapshot(r);
    raft_free(r->raft);
    rlog_free(r->log);
    if (r->desc)
        basalt__v1__shard_descriptor__free_unpacked(r->desc, NULL);
    free(r->writes);
    free(r->reads);
    free(r);
}

static void node_raft_log_cb(void *ctx, raft_log_level level, const char *message) {
    node_replica *r = ctx;
    static const log_level_t levels[] = {LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN,
                                         LOG_LEVEL_ERROR};
    log_write(levels[level], __FILE__, __LINE__, "shard %llu: %s", (unsigned long long)r->shard_id,
              message);
}

static int node_start_raft(node *n, node_replica *r) {
    raft_config cfg = {
        .id = r->replica_id,
        .election_ticks = NODE_ELECTION_TICKS,
        .heartbeat_ticks = NODE_HEARTBEAT_TICKS,
        .pre_vote = true,
        .check_quorum = true,
        .max_entries_per_msg = NODE_MAX_ENTRIES_PER_MSG,
        .max_bytes_per_msg = NODE_MAX_BYTES_PER_MSG,
        .max_inflight_msgs = NODE_MAX_INFLIGHT_MSGS,
        .max_uncommitted_bytes = NODE_MAX_UNCOMMITTED_BYTES,
        .applied = rlog_applied(r->log),
        .seed = node_now_ms() ^ (n->id << 32) ^ r->shard_id,
        .storage = rlog_interface(r->log),
        .log_cb = node_raft_log_cb,
        .log_ctx = r,
    };
    int rc = raft_new(&cfg, &r->raft);
    if (rc != RAFT_OK) {
        log_error("shard %llu: cannot start raft: %s", (unsigned long long)r->shard_id,
                  raft_err_message(rc));
        return BS_ERR_CORRUPTION;
    }
    r->last_role = RAFT_FOLLOWER;
    r->last_term = raft_term(r->raft);
    /* The only voter need not wait an election timeout to lead. */
    if (r->conf.n_voters == 1 && r->conf.voters[0] == r->replica_id &&
        r->conf.n_voters_outgoing == 0)
        raft_campaign_now(r->raft);
    return 0;
}

/* Puts r into the sorted array. */
static int node_insert_replica(node *n, node_replica *r) {
    int at = n->n_replicas;

    if (n->n_replicas == NODE_REPLICAS_MAX)
        return BS_ERR_RESOURCE_EXHAUSTED;
    while (at > 0 && node_bytes_cmp(n->replicas[at - 1]->desc->start.data,
                                    n->replicas[at - 1]->desc->start.len, r->desc->start.data,
                                    r->desc->start.len) > 0) {
        n->replicas[at] = n->replicas[at - 1];
        at--;
    }
    n->replicas[at] = r;
    n->n_replicas++;
    return 0;
}

int node_activate_replica(node *n, node_replica *r) {
    int rc = node_start_raft(n, r);
    return rc != 0 ? rc : node_insert_replica(n, r);
}

node_replica *node_new_replica(const Basalt__V1__ShardDescriptor *desc, uint64_t replica_id) {
    node_replica *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->desc = node_desc_copy(desc);
    r->shard_id = desc->id;
    r->replica_id = replica_id;
    if (r->desc == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

static int node_check_new_replica(node *n, const Basalt__V1__ShardDescriptor *d,
                                  uint64_t *replica_id, char *why, size_t why_size) {
    *replica_id = 0;
    if (d == NULL || d->id == 0) {
        snprintf(why, why_size, "the descriptor needs a shard id above 0");
        return BS_ERR_INVALID_ARGUMENT;
    }
    if (d->end.len > 0 &&
        node_bytes_cmp(d->start.data, d->start.len, d->end.data, d->end.len) >= 0) {
        snprintf(why, why_size, "shard %llu: start must be before end", (unsigned long long)d->id);
        return BS_ERR_INVALID_ARGUMENT;
    }
    if (d->n_replicas == 0 || d->n_replicas > RAFT_MEMBERS_MAX) {
        snprintf(why, why_size, "shard %llu: 1 to %d replicas", (unsigned long long)d->id,
                 RAFT_MEMBERS_MAX);
        return BS_ERR_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < d->n_replicas; i++) {
        if (d->replicas[i]->replica_id == 0) {
            snprintf(why, why_size, "shard %llu: replica ids start at 1",
                     (unsigned long long)d->id);
            return BS_ERR_INVALID_ARGUMENT;
        }
        if (d->replicas[i]->node_id == n->id)
            *replica_id = d->replicas[i]->replica_id;
    }
    if (*replica_id == 0) {
        snprintf(why, why_size, "shard %llu has no replica on node %llu", (unsigned long long)d->id,
                 (unsigned long long)n->id);
        return BS_ERR_INVALID_ARGUMENT;
    }
    if (node_replica_by_shard(n, d->id) != NULL) {
        snprintf(why, why_size, "shard %llu already has a replica here", (unsigned long long)d->id);
        return BS_ERR_FAILED_PRECONDITION;
    }
    for (int i = 0; i < n->n_replicas; i++) {
        if (node_desc_overlap(n->replicas[i]->desc, d)) {
            snprintf(why, why_size, "shard %llu overlaps shard %llu hosted here",
                     (unsigned long long)d->id, (unsigned long long)n->replicas[i]->shard_id);
            return BS_ERR_FAILED_PRECONDITION;
        }
    }
    return 0;
}

int node_create_replica(node *n, const Basalt__V1__ShardDescriptor *desc, bool bootstrap, char *why,
                        size_t why_size) {
    uint64_t replica_id;
    node_replica *r;
    int rc;

    if ((rc = node_check_new_replica(n, desc, &replica_id, why, why_size)) != 0)
        return rc;
    r = node_new_replica(desc, replica_id);
    if (r == NULL) {
        snprintf(why, why_size, "out of memory");
        return BS_ERR_NOMEM;
    }
    /* A fresh log: a replica removed from here left no Raft state behind. */
    if (bootstrap) {
        rlog_stage_initial(n->persist_batch, r->shard_id, NODE_GROUP_INIT_INDEX,
                           NODE_GROUP_INIT_TERM);
        rc = kvs_batch_write(n->persist_batch, true);
    }
    if (rc != 0 || (rc = rlog_open(n->store, r->shard_id, &r->log)) != 0) {
        snprintf(why, why_size, "cannot open the raft log of shard %llu",
                 (unsigned long long)r->shard_id);
        node_free_replica(r);
        return rc;
    }
    node_conf_from_desc(desc, &r->conf);
    node_stage_replica_state(r, n->persist_batch);
    if ((rc = kvs_batch_write(n->persist_batch, true)) != 0 ||
        (rc = node_activate_replica(n, r)) != 0) {
        snprintf(why, why_size, "cannot create shard %llu: %s", (unsigned long long)r->shard_id,
                 bs_err_message(rc));
        node_free_replica(r);
        return rc;
    }
    log_info("created replica %llu of shard %llu with %zu replicas", (unsigned long long)replica_id,
             (unsigned long long)r->shard_id, desc->n_replicas);
    return 0;
}

int node_remove_replica(node *n, uint64_t shard_id, uint64_t replica_id, uint64_t gone_at_conf_ver,
                        char *why, size_t why_size) {
    int at = -1;

    for (int i = 0; i < n->n_replicas; i++) {
        if (n->replicas[i]->shard_id == shard_id)
            at = i;
    }
    if (at < 0) {
        snprintf(why, why_size, "no replica of shard %llu here", (unsigned long long)shard_id);
        return BS_ERR_NOT_FOUND;
    }
    if (replica_id != 0 && n->replicas[at]->replica_id != replica_id) {
        snprintf(why, why_size, "the replica of shard %llu here is %llu, not %llu",
                 (unsigned long long)shard_id, (unsigned long long)n->replicas[at]->replica_id,
                 (unsigned long long)replica_id);
        return BS_ERR_NOT_FOUND;
    }
    node_replica *r = n->replicas[at];
    if (gone_at_conf_ver != 0 && r->desc->conf_ver >= gone_at_conf_ver &&
        node_of_replica(r, r->replica_id) != 0) {
        snprintf(why, why_size,
                 "replica %llu is still a member of shard %llu at conf_ver %llu (asked to delete "
                 "it as gone at conf_ver %llu)",
                 (unsigned long long)r->replica_id, (unsigned long long)shard_id,
                 (unsigned long long)r->desc->conf_ver, (unsigned long long)gone_at_conf_ver);
        return BS_ERR_FAILED_PRECONDITION;
    }
    node_fail_pending(n, r, "the replica was removed: the write's outcome is unknown",
                      "the replica was removed");
    /* Data and raft state go in one atomic write: a crash never leaves a
     * replica that claims data it no longer has (nor data no replica owns). */
    uint8_t raft_from[KEYS_SHARD_BYTES], raft_to[KEYS_SHARD_BYTES];
    keys_shard(raft_from, shard_id, 0);
    keys_shard(raft_to, shard_id + 1, 0);
    kvs_range ranges[] = {
        {KVS_CF_DATA, r->desc->start.data, r->desc->start.len, r->desc->end.data, r->desc->end.len},
        {KVS_CF_RAFT, raft_from, sizeof(raft_from), raft_to, sizeof(raft_to)},
    };
    if (kvs_delete_ranges(n->store, ranges, 2) != 0) {
        snprintf(why, why_size, "cannot delete shard %llu", (unsigned long long)shard_id);
        return BS_ERR_IO;
    }
    memmove(&n->replicas[at], &n->replicas[at + 1],
            (size_t)(n->n_replicas - at - 1) * sizeof(n->replicas[0]));
    n->n_replicas--;
    node_free_replica(r);
    log_info("removed the replica of shard %llu", (unsigned long long)shard_id);
    return 0;
}

/* ---- loading at start ---- */

static int node_load_one(node *n, const char *value, size_t len) {
    Basalt__V1__ReplicaState *st =
        basalt__v1__replica_state__unpack(NULL, len, (const uint8_t *)value);
    node_replica *r;
    int rc;

    if (st == NULL || st->descriptor == NULL) {
        if (st)
            basalt__v1__replica_state__free_unpacked(st, NULL);
        log_error("a replica state in the store is malformed");
        return BS_ERR_CORRUPTION;
    }
    r = node_new_replica(st->descriptor, st->replica_id);
    rc = r ? node_conf_from_wire(st->conf, &r->conf) : BS_ERR_NOMEM;
    basalt__v1__replica_state__free_unpacked(st, NULL);
    if (rc == 0 && (rc = rlog_open(n->store, r->shard_id, &r->log)) == 0) {
        rlog_set_conf(r->log, &r->conf);
        rc = node_finish_interrupted_install(n, r);
        if (rc == 0)
            rc = node_activate_replica(n, r);
    }
    if (rc != 0) {
        node_free_replica(r);
        return rc;
    }
    log_info("loaded replica %llu of shard %llu (applied %llu, last index %llu)",
             (unsigned long long)r->replica_id, (unsigned long long)r->shard_id,
             (unsigned long long)rlog_applied(r->log), (unsigned long long)rlog_last_index(r->log));
    return 0;
}

static int node_first_key(const char *key, size_t key_len, const char *value, size_t value_len,
                          void *ctx) {
    (void)value;
    (void)value_len;
    if (key_len >= 8)
        *(uint64_t *)ctx = keys_shard_of((const uint8_t *)key);
    return 0;
}

/* The smallest shard id with keys in the raft column family at or after
 * `from`, or 0 when there is none. */
static int node_next_shard(node *n, uint64_t from, uint64_t *next) {
    uint8_t key[KEYS_SHARD_BYTES];
    bool more;

    *next = 0;
    keys_shard(key, from, 0);
    int rc =
        kvs_scan(n->store, KVS_CF_RAFT, key, sizeof(key), NULL, 0, 1, node_first_key, next, &more);
    return rc;
}

int node_load_replicas(node *n) {
    uint64_t shard = 1;
    int rc;

    /* One seek per shard, never through the log entries in between. */
    for (;;) {
        uint8_t key[KEYS_SHARD_BYTES];
        bool found;
        char *value;
        size_t len;

        if ((rc = node_next_shard(n, shard, &shard)) != 0)
            return rc;
        if (shard == 0)
            return 0;
        keys_shard(key, shard, KEYS_REPLICA_STATE);
        if ((rc = kvs_get(n->store, KVS_CF_RAFT, key, sizeof(key), &found, &value, &len)) != 0)
            return rc;
        if (found) {
            rc = node_load_one(n, value, len);
            free(value);
            if (rc != 0)
                return rc;
        }
        if (shard == UINT64_MAX)
            return 0;
        shard++;
    }
}
