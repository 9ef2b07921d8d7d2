/* state: the router's view of nodes and shards. */
#include "router/state.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/error.h"
#include "runtime/log.h"

uint64_t router_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void router_sleep_ms(uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int router_bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    return c != 0 ? c : (al > bl) - (al < bl);
}

int router_node_index(const router_state *s, uint64_t id) {
    for (int i = 0; i < s->n_nodes; i++) {
        if (s->nodes[i].id == id)
            return i;
    }
    return -1;
}

bool router_node_up_locked(const router_state *s, const router_node *n, uint64_t now) {
    return n->last_seen_ms && now - n->last_seen_ms < s->down_after_ms;
}

router_node *router_node_of(router_state *s, uint64_t id) {
    for (int i = 0; i < s->n_nodes; i++) {
        if (s->nodes[i].id == id)
            return &s->nodes[i];
    }
    return NULL;
}

bool router_desc_has_learner(const Basalt__V1__ShardDescriptor *d) {
    for (size_t i = 0; i < d->n_replicas; i++) {
        if (d->replicas[i]->role == BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_LEARNER)
            return true;
    }
    return false;
}

bool router_desc_contains(const Basalt__V1__ShardDescriptor *d, const uint8_t *key,
                          size_t key_len) {
    if (router_bytes_cmp(key, key_len, d->start.data, d->start.len) < 0)
        return false;
    return d->end.len == 0 || router_bytes_cmp(key, key_len, d->end.data, d->end.len) < 0;
}

/* Keeps a channel no node uses any more until the state is freed (lock
 * held). Out of memory, it is left open: a leak, never a use after free. */
static void router_retire_channel(router_state *s, rpc_channel *ch) {
    if (ch == NULL)
        return;
    if (s->n_retired == s->cap_retired) {
        size_t cap = s->cap_retired ? 2 * s->cap_retired : 16;
        rpc_channel **grown = realloc(s->retired, cap * sizeof(*grown));
        if (grown == NULL)
            return;
        s->retired = grown;
        s->cap_retired = cap;
    }
    s->retired[s->n_retired++] = ch;
}

/* Adds or updates a node in memory (lock held). */
static router_node *router_put_node(router_state *s, uint64_t id, const char *address,
                                    const char *zone) {
    router_node *n = router_node_of(s, id);

    if (n == NULL) {
        if (s->n_nodes == ROUTER_NODES_MAX)
            return NULL;
        n = &s->nodes[s->n_nodes++];
        memset(n, 0, sizeof(*n));
        n->id = id;
    }
    if (strcmp(n->address, address) != 0) {
        router_retire_channel(s, n->channel);
        snprintf(n->address, sizeof(n->address), "%s", address);
        n->channel = address[0] ? rpc_channel_open(address) : NULL;
    }
    snprintf(n->zone, sizeof(n->zone), "%s", zone);
    return n;
}

static void router_load_node(void *ctx, uint64_t id, const char *address, const char *zone) {
    router_state *s = ctx;
    router_node *n = router_put_node(s, id, address, zone);
    if (n != NULL)
        n->admin = meta_node_admin_of(s->meta, id);
}

int router_state_init(router_state *s, meta *m, int replicas_wanted, uint64_t down_after_ms,
                      uint64_t dead_after_ms, int moves_max) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->meta = m;
    s->replicas_wanted = replicas_wanted;
    s->down_after_ms = down_after_ms;
    s->dead_after_ms = dead_after_ms;
    s->started_ms = router_now_ms();
    s->moves_max = moves_max;
    s->schedule_enabled = meta_schedule_enabled(m);
    s->shards = calloc(ROUTER_SHARDS_MAX, sizeof(*s->shards));
    if (s->shards == NULL)
        return BS_ERR_NOMEM;
    return meta_each_node(m, router_load_node, s);
}

void router_state_free(router_state *s) {
    for (int i = 0; i < s->n_nodes; i++) {
        rpc_channel_close(s->nodes[i].channel);
        free(s->nodes[i].reported);
    }
    for (size_t i = 0; i < s->n_retired; i++)
        rpc_channel_close(s->retired[i]);
    free(s->retired);
    for (int i = 0; i < s->n_shards; i++)
        basalt__v1__shard_descriptor__free_unpacked(s->shards[i].desc, NULL);
    free(s->shards);
    pthread_mutex_destroy(&s->lock);
}

int router_register(router_state *s, uint64_t node_id, const char *address, const char *zone,
                    uint64_t *assigned) {
    int rc = 0;

    if (node_id == 0 && (rc = meta_alloc_ids(s->meta, META_ID_NODE, 1, &node_id)) != 0)
        return rc;
    if (meta_node_removed(s->meta, node_id))
        return BS_ERR_FAILED_PRECONDITION; /* removed for good: start it afresh */
    /* A node back with its id (after the router lost its store, say): that
     * id must never go to another node. */
    if ((rc = meta_reserve_ids(s->meta, META_ID_NODE, node_id)) != 0)
        return rc;
    if ((rc = meta_put_node(s->meta, node_id, address, zone)) != 0)
        return rc;
    pthread_mutex_lock(&s->lock);
    router_node *n = router_put_node(s, node_id, address, zone);
    if (n != NULL)
        n->last_seen_ms = router_now_ms();
    pthread_mutex_unlock(&s->lock);
    if (n == NULL)
        return BS_ERR_RESOURCE_EXHAUSTED;
    log_info("node %llu registered %s%s%s%s", (unsigned long long)node_id,
             address[0] ? "at " : "(its address comes with its first heartbeat)", address,
             zone[0] ? ", zone " : "", zone);
    *assigned = node_id;
    return 0;
}

int router_update_address(router_state *s, uint64_t node_id, const char *address,
                          const char *zone) {
    pthread_mutex_lock(&s->lock);
    router_node *n = router_node_of(s, node_id);
    bool same = n == NULL || (strcmp(n->address, address) == 0 && strcmp(n->zone, zone) == 0);
    pthread_mutex_unlock(&s->lock);
    if (same)
        return 0;
    int rc = meta_put_node(s->meta, node_id, address, zone);
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        router_put_node(s, node_id, address, zone);
        pthread_mutex_unlock(&s->lock);
        log_info("node %llu is at %s", (unsigned long long)node_id, address);
    }
    return rc;
}

/* ---- the shard map (lock held) ---- */

int router_shard_index(router_state *s, uint64_t shard_id) {
    for (int i = 0; i < s->n_shards; i++) {
        if (s->shards[i].desc->id == shard_id)
            return i;
    }
    return -1;
}

static bool router_epoch_newer(const Basalt__V1__ShardDescriptor *a,
                               const Basalt__V1__ShardDescriptor *b) {
    return a->version > b->version || (a->version == b->version && a->conf_ver > b->conf_ver);
}

Basalt__V1__ShardDescriptor *router_desc_copy(const Basalt__V1__ShardDescriptor *d) {
    size_t len = basalt__v1__shard_descriptor__get_packed_size(d);
    uint8_t *buf = malloc(len ? len : 1);
    Basalt__V1__ShardDescriptor *copy = NULL;

    if (buf != NULL) {
        basalt__v1__shard_descriptor__pack(d, buf);
        copy = basalt__v1__shard_descriptor__unpack(NULL, len, buf);
        free(buf);
    }
    return copy;
}

/* Replaces or inserts a descriptor, keeping the array sorted by start. */
static void router_learn_shard(router_state *s, const Basalt__V1__ShardDescriptor *d) {
    int at = router_shard_index(s, d->id);

    if (at >= 0 && !router_epoch_newer(d, s->shards[at].desc))
        return;
    /* Ids in use are never handed out again (the store may be new). */
    meta_reserve_ids(s->meta, META_ID_SHARD, d->id);
    for (size_t i = 0; i < d->n_replicas; i++)
        meta_reserve_ids(s->meta, META_ID_REPLICA, d->replicas[i]->replica_id);
    Basalt__V1__ShardDescriptor *copy = router_desc_copy(d);
    if (copy == NULL)
        return;
    if (at >= 0) {
        router_shard *sh = &s->shards[at];
        bool range_changed = copy->version != sh->desc->version;
        basalt__v1__shard_descriptor__free_unpacked(sh->desc, NULL);
        sh->desc = copy;
        if (range_changed) {
            /* The old load figures were for the old range. */
            sh->learned_ms = router_now_ms();
            sh->bytes = 0;
            sh->hot_since_ms = 0;
            sh->qps = 0;
            memset(sh->load, 0, sizeof(sh->load));
        }
        return;
    }
    if (s->n_shards == ROUTER_SHARDS_MAX) {
        basalt__v1__shard_descriptor__free_unpacked(copy, NULL);
        return;
    }
    at = s->n_shards;
    while (at > 0 &&
           router_bytes_cmp(s->shards[at - 1].desc->start.data, s->shards[at - 1].desc->start.len,
                            copy->start.data, copy->start.len) > 0) {
        s->shards[at] = s->shards[at - 1];
        at--;
    }
    s->shards[at] = (router_shard){.desc = copy, .learned_ms = router_now_ms()};
    s->n_shards++;
    log_info("learned shard %llu (epoch %llu/%llu)", (unsigned long long)copy->id,
             (unsigned long long)copy->conf_ver, (unsigned long long)copy->version);
}

/* The slot of a node's reports on a shard: its own, a free one, or the
 * stalest (a replica moved away). */
static router_load_report *router_load_slot(router_shard *sh, uint64_t node_id) {
    router_load_report *pick = &sh->load[0];

    for (int i = 0; i < ROUTER_REPLICAS_MAX; i++) {
        if (sh->load[i].node_id == node_id)
            return &sh->load[i];
        if (sh->load[i].node_id == 0 || sh->load[i].at_ms < pick->at_ms)
            pick = &sh->load[i];
    }
    memset(pick, 0, sizeof(*pick));
    pick->node_id = node_id;
    return pick;
}

/* Takes one replica's load report: the size (from the leader), and its
 * request rate since its last report (a restarted node counts from 0). */
static void router_take_load(router_shard *sh, uint64_t node_id, const Basalt__V1__ReplicaStatus *r,
                             uint64_t hot_qps) {
    uint64_t now = router_now_ms();

    if (r->descriptor->version != sh->desc->version)
        return; /* a report about the range before a split */
    if (r->is_leader)
        sh->bytes = r->approximate_bytes;
    router_load_report *rep = router_load_slot(sh, node_id);
    if (rep->at_ms != 0 && r->requests >= rep->requests && now > rep->at_ms)
        rep->qps = (double)(r->requests - rep->requests) * 1000.0 / (double)(now - rep->at_ms);
    rep->requests = r->requests;
    rep->at_ms = now;

    sh->qps = 0;
    for (int i = 0; i < ROUTER_REPLICAS_MAX; i++) {
        if (sh->load[i].node_id != 0 && now - sh->load[i].at_ms < ROUTER_LOAD_REPORT_MAX_AGE_MS)
            sh->qps += sh->load[i].qps;
    }
    if (hot_qps == 0 || sh->qps < (double)hot_qps)
        sh->hot_since_ms = 0;
    else if (sh->hot_since_ms == 0)
        sh->hot_since_ms = now;
}

/* A replica reported by a node that its shard no longer has (removed while
 * the node was away, or a move's old replica the router did not get to
 * delete): the shard's membership, as new as the replica's own or newer,
 * is without it. (An old replica applies its own removal, so it may report
 * the very conf_ver that left it out.) */
static void router_note_garbage(router_state *s, const router_shard *sh, uint64_t node_id,
                                const Basalt__V1__ReplicaStatus *r) {
    const Basalt__V1__ShardDescriptor *d = sh->desc;

    if (r->replica_id == 0 || d->conf_ver < r->descriptor->conf_ver || sh->moving)
        return;
    for (size_t i = 0; i < d->n_replicas; i++) {
        if (d->replicas[i]->replica_id == r->replica_id)
            return;
    }
    for (int i = 0; i < s->n_garbage; i++) {
        if (s->garbage[i].shard_id == d->id && s->garbage[i].replica_id == r->replica_id)
            return;
    }
    if (s->n_garbage < ROUTER_GARBAGE_MAX)
        s->garbage[s->n_garbage++] = (router_garbage){.node_id = node_id,
                                                      .shard_id = d->id,
                                                      .replica_id = r->replica_id,
                                                      .conf_ver = d->conf_ver};
}

int router_heartbeat(router_state *s, const Basalt__V1__HeartbeatRequest *req) {
    pthread_mutex_lock(&s->lock);
    router_node *n = router_node_of(s, req->node_id);
    if (n == NULL) {
        pthread_mutex_unlock(&s->lock);
        return BS_ERR_NOT_FOUND; /* it must register first */
    }
    n->last_seen_ms = router_now_ms();
    uint64_t *reported = calloc(req->n_replicas + 1, sizeof(*reported));
    if (reported != NULL) {
        for (size_t i = 0; i < req->n_replicas; i++)
            reported[i] = req->replicas[i]->descriptor ? req->replicas[i]->descriptor->id : 0;
        free(n->reported);
        n->reported = reported;
        n->n_reported = req->n_replicas;
    }
    for (size_t i = 0; i < req->n_replicas; i++) {
        const Basalt__V1__ReplicaStatus *r = req->replicas[i];
        if (r->descriptor == NULL)
            continue;
        router_learn_shard(s, r->descriptor);
        int at = router_shard_index(s, r->descriptor->id);
        if (at < 0)
            continue;
        /* A deposed leader may report for a while yet: the newest term wins. */
        if (r->is_leader && r->term >= s->shards[at].leader_term) {
            s->shards[at].leader_node = req->node_id;
            s->shards[at].leader_term = r->term;
        }
        router_take_load(&s->shards[at], req->node_id, r, s->split_qps);
        router_note_garbage(s, &s->shards[at], req->node_id, r);
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void router_learn(router_state *s, const Basalt__V1__ShardDescriptor *d, uint64_t leader_node) {
    pthread_mutex_lock(&s->lock);
    router_learn_shard(s, d);
    int at = router_shard_index(s, d->id);
    if (at >= 0 && leader_node != 0)
        s->shards[at].leader_node = leader_node;
    pthread_mutex_unlock(&s->lock);
}

Basalt__V1__ShardDescriptor *router_shard_copy(router_state *s, uint64_t shard_id,
                                               uint64_t *leader_node) {
    Basalt__V1__ShardDescriptor *copy = NULL;

    pthread_mutex_lock(&s->lock);
    int at = router_shard_index(s, shard_id);
    if (at >= 0) {
        copy = router_desc_copy(s->shards[at].desc);
        *leader_node = s->shards[at].leader_node;
    }
    pthread_mutex_unlock(&s->lock);
    return copy;
}

int router_split_begin(router_state *s, uint64_t shard_id, int max) {
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    int at = router_shard_index(s, shard_id);
    if (at < 0)
        rc = BS_ERR_NOT_FOUND;
    else if (s->shards[at].splitting || s->shards[at].moving)
        rc = BS_ERR_FAILED_PRECONDITION;
    else if (s->splits_in_flight >= max)
        rc = BS_ERR_RESOURCE_EXHAUSTED;
    if (rc == 0) {
        s->shards[at].splitting = true;
        s->splits_in_flight++;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void router_split_end(router_state *s, uint64_t shard_id, bool ok) {
    pthread_mutex_lock(&s->lock);
    int at = router_shard_index(s, shard_id);
    if (at >= 0) {
        s->shards[at].splitting = false;
        s->shards[at].split_failed_ms = ok ? 0 : router_now_ms();
    }
    s->splits_in_flight--;
    pthread_mutex_unlock(&s->lock);
}

int router_split_candidates(router_state *s, uint64_t max_bytes, uint64_t window_ms,
                            uint64_t backoff_ms, uint64_t *ids, int cap) {
    uint64_t now = router_now_ms();
    int n = 0;

    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_shards && n < cap; i++) {
        const router_shard *sh = &s->shards[i];
        bool big = max_bytes > 0 && sh->bytes > max_bytes;
        bool hot = sh->hot_since_ms != 0 && now - sh->hot_since_ms >= window_ms;
        bool failed_lately = sh->split_failed_ms != 0 && now - sh->split_failed_ms < backoff_ms;
        if ((big || hot) && !sh->splitting && !sh->moving && !failed_lately)
            ids[n++] = sh->desc->id;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool router_route_key(router_state *s, const uint8_t *key, size_t key_len, router_route *out) {
    bool found = false;

    pthread_mutex_lock(&s->lock);
    int lo = 0, hi = s->n_shards - 1, at = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const Basalt__V1__ShardDescriptor *d = s->shards[mid].desc;
        if (router_bytes_cmp(d->start.data, d->start.len, key, key_len) <= 0) {
            at = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    if (at >= 0) {
        const Basalt__V1__ShardDescriptor *d = s->shards[at].desc;
        if (router_desc_contains(d, key, key_len)) {
            memset(out, 0, sizeof(*out));
            out->shard_id = d->id;
            out->conf_ver = d->conf_ver;
            out->version = d->version;
            out->leader_node = s->shards[at].leader_node;
            for (size_t i = 0; i < d->n_replicas && i < ROUTER_REPLICAS_MAX; i++)
                out->replica_nodes[out->n_replicas++] = d->replicas[i]->node_id;
            found = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

void router_set_leader(router_state *s, uint64_t shard_id, uint64_t node_id) {
    pthread_mutex_lock(&s->lock);
    int at = router_shard_index(s, shard_id);
    if (at >= 0)
        s->shards[at].leader_node = node_id;
    pthread_mutex_unlock(&s->lock);
}

rpc_channel *router_node_channel(router_state *s, uint64_t node_id) {
    pthread_mutex_lock(&s->lock);
    router_node *n = router_node_of(s, node_id);
    rpc_channel *ch = n ? n->channel : NULL;
    pthread_mutex_unlock(&s->lock);
    return ch;
}

bool router_node_known(router_state *s, uint64_t node_id) {
    pthread_mutex_lock(&s->lock);
    bool known = router_node_of(s, node_id) != NULL;
    pthread_mutex_unlock(&s->lock);
    return known;
}

bool router_node_is_up(router_state *s, uint64_t node_id) {
    pthread_mutex_lock(&s->lock);
    router_node *n = router_node_of(s, node_id);
    bool up = n && router_node_up_locked(s, n, router_now_ms());
    pthread_mutex_unlock(&s->lock);
    return up;
}

bool router_node_may_be_up(router_state *s, uint64_t node_id) {
    pthread_mutex_lock(&s->lock);
    router_node *n = router_node_of(s, node_id);
    uint64_t now = router_now_ms();
    bool up = n && (router_node_up_locked(s, n, now) ||
                    (n->last_seen_ms == 0 && now - s->started_ms < s->down_after_ms));
    pthread_mutex_unlock(&s->lock);
    return up;
}

bool router_node_in_zone(router_state *s, uint64_t node_id, const char *zone) {
    if (zone[0] == '\0')
        return false;
    pthread_mutex_lock(&s->lock);
    router_node *n = router_node_of(s, node_id);
    bool same = n && strcmp(n->zone, zone) == 0;
    pthread_mutex_unlock(&s->lock);
    return same;
}

bool router_node_fresh_locked(const router_state *s, const router_node *n, uint64_t now) {
    uint64_t fresh_ms = s->down_after_ms < ROUTER_FRESH_MS ? s->down_after_ms : ROUTER_FRESH_MS;
    return n->last_seen_ms && now - n->last_seen_ms < fresh_ms;
}

void router_log_liveness(router_state *s) {
    uint64_t now = router_now_ms();

    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_nodes; i++) {
        router_node *n = &s->nodes[i];
        bool up = router_node_up_locked(s, n, now);
        if (up && n->logged_down)
            log_info("node %llu is up again", (unsigned long long)n->id);
        else if (!up && !n->logged_down && n->last_seen_ms != 0)
            log_warn("node %llu is down: no heartbeat for %llu ms; unless it comes back, its "
                     "replicas are made again elsewhere once it has been down %llu s "
                     "(--down-after)",
                     (unsigned long long)n->id, (unsigned long long)(now - n->last_seen_ms),
                     (unsigned long long)(s->dead_after_ms / 1000));
        n->logged_down = !up && (n->logged_down || n->last_seen_ms != 0);
    }
    pthread_mutex_unlock(&s->lock);
}

bool router_node_reports(const router_node *n, uint64_t shard_id) {
    for (size_t i = 0; i < n->n_reported; i++) {
        if (n->reported[i] == shard_id)
            return true;
    }
    return false;
}

int router_missing_replicas(router_state *s, uint64_t settled_ms, router_missing_replica *out,
                            int cap) {
    uint64_t now = router_now_ms();
    int n = 0;

    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_shards && n < cap; i++) {
        const Basalt__V1__ShardDescriptor *d = s->shards[i].desc;
        if (now - s->shards[i].learned_ms < settled_ms || s->shards[i].moving)
            continue;
        for (size_t k = 0; k < d->n_replicas && n < cap; k++) {
            const router_node *node = router_node_of(s, d->replicas[k]->node_id);
            if (node == NULL || !router_node_up_locked(s, node, now) || node->reported == NULL ||
                router_node_reports(node, d->id))
                continue;
            out[n].desc = router_desc_copy(d);
            out[n].node_id = node->id;
            n += out[n].desc != NULL;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

void router_count_load(const router_state *s, uint32_t *replicas, uint32_t *leaders) {
    memset(replicas, 0, (size_t)s->n_nodes * sizeof(*replicas));
    memset(leaders, 0, (size_t)s->n_nodes * sizeof(*leaders));
    for (int i = 0; i < s->n_shards; i++) {
        const Basalt__V1__ShardDescriptor *d = s->shards[i].desc;
        int at = router_node_index(s, s->shards[i].leader_node);
        if (at >= 0)
            leaders[at]++;
        for (size_t k = 0; k < d->n_replicas; k++) {
            if ((at = router_node_index(s, d->replicas[k]->node_id)) >= 0)
                replicas[at]++;
        }
    }
}

/* The freshly heard-from node with a voting replica of d that it reports
 * (so it has caught up with the split that made d), leading the fewest
 * shards; -1 when none. Fresh, not merely up: a node killed a moment ago
 * leads nothing and would otherwise look like the best target. */
static int router_least_leading_voter(const router_state *s, const Basalt__V1__ShardDescriptor *d,
                                      const uint32_t *counts, uint64_t now) {
    int best = -1;

    for (size_t k = 0; k < d->n_replicas; k++) {
        const Basalt__V1__ReplicaDescriptor *rd = d->replicas[k];
        int at = router_node_index(s, rd->node_id);
        if (at < 0 || rd->role != BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_VOTER ||
            s->nodes[at].admin != META_NODE_ACTIVE ||
            !router_node_fresh_locked(s, &s->nodes[at], now) ||
            !router_node_reports(&s->nodes[at], d->id))
            continue;
        if (best < 0 || counts[at] < counts[best])
            best = at;
    }
    return best;
}

bool router_pick_leader_move(router_state *s, int spread_max, uint64_t backoff_ms,
                             uint64_t *shard_id, uint64_t *to_node) {
    static uint32_t replicas[ROUTER_NODES_MAX], counts[ROUTER_NODES_MAX]; /* under the lock */
    uint64_t now = router_now_ms();
    int64_t best_gap = spread_max;
    bool found = false;

    pthread_mutex_lock(&s->lock);
    router_count_load(s, replicas, counts);
    for (int i = 0; i < s->n_shards; i++) {
        const router_shard *sh = &s->shards[i];
        int from = router_node_index(s, sh->leader_node);
        if (from < 0 || sh->splitting || sh->moving ||
            !router_node_up_locked(s, &s->nodes[from], now) ||
            (sh->balance_failed_ms != 0 && now - sh->balance_failed_ms < backoff_ms))
            continue;
        int to = router_least_leading_voter(s, sh->desc, counts, now);
        /* A node being drained gives up every leadership, first. */
        if (to < 0)
            continue;
        int64_t gap = s->nodes[from].admin != META_NODE_ACTIVE ? INT32_MAX
                                                               : (int64_t)counts[from] - counts[to];
        if (gap > best_gap) {
            best_gap = gap;
            *shard_id = sh->desc->id;
            *to_node = s->nodes[to].id;
            found = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

void router_balance_failed(router_state *s, uint64_t shard_id) {
    pthread_mutex_lock(&s->lock);
    int at = router_shard_index(s, shard_id);
    if (at >= 0)
        s->shards[at].balance_failed_ms = router_now_ms();
    pthread_mutex_unlock(&s->lock);
}

void router_set_leader_term(router_state *s, uint64_t shard_id, uint64_t node_id, uint64_t term) {
    pthread_mutex_lock(&s->lock);
    int at = router_shard_index(s, shard_id);
    if (at >= 0 && term >= s->shards[at].leader_term) {
        s->shards[at].leader_node = node_id;
        s->shards[at].leader_term = term;
    }
    pthread_mutex_unlock(&s->lock);
}

bool router_should_bootstrap(router_state *s, uint64_t *nodes, int *n) {
    bool go = false;

    pthread_mutex_lock(&s->lock);
    *n = 0;
    if (!s->bootstrap_started && s->n_shards == 0) {
        uint64_t now = router_now_ms();
        for (int i = 0; i < s->n_nodes && *n < s->replicas_wanted; i++) {
            if (s->nodes[i].address[0] && router_node_up_locked(s, &s->nodes[i], now))
                nodes[(*n)++] = s->nodes[i].id;
        }
        go = *n == s->replicas_wanted;
        s->bootstrap_started = go;
    }
    pthread_mutex_unlock(&s->lock);
    return go;
}

/* ---- operator switches ---- */

int router_change_node_admin(router_state *s, uint64_t node_id, meta_node_admin from,
                             meta_node_admin to) {
    /* Admin changes come from operators and the scheduler at once (a drain
     * ending as it is cancelled): one at a time, so none is lost. The state
     * lock is not held over the durable write. */
    static pthread_mutex_t changing = PTHREAD_MUTEX_INITIALIZER;

    pthread_mutex_lock(&changing);
    pthread_mutex_lock(&s->lock);
    router_node *n = router_node_of(s, node_id);
    meta_node_admin now = n ? n->admin : from;
    pthread_mutex_unlock(&s->lock);
    int rc = n == NULL     ? BS_ERR_NOT_FOUND
             : now != from ? BS_ERR_FAILED_PRECONDITION
                           : meta_put_node_admin(s->meta, node_id, to);
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        if ((n = router_node_of(s, node_id)) != NULL)
            n->admin = to;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&changing);
    return rc;
}

int router_set_schedule(router_state *s, bool enabled) {
    int rc = meta_put_schedule_enabled(s->meta, enabled);
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        s->schedule_enabled = enabled;
        pthread_mutex_unlock(&s->lock);
    }
    return rc;
}

bool router_schedule_enabled(router_state *s) {
    pthread_mutex_lock(&s->lock);
    bool on = s->schedule_enabled;
    pthread_mutex_unlock(&s->lock);
    return on;
}

int router_remove_node(router_state *s, uint64_t node_id, char *why, size_t why_size) {
    pthread_mutex_lock(&s->lock);
    router_node *n = router_node_of(s, node_id);
    uint64_t now = router_now_ms();
    bool up = n != NULL && router_node_up_locked(s, n, now);
    bool drained = n != NULL && n->admin == META_NODE_DRAINED;
    uint64_t silent_ms = n != NULL && n->last_seen_ms ? now - n->last_seen_ms : 0;
    pthread_mutex_unlock(&s->lock);
    if (n == NULL) {
        snprintf(why, why_size, "%s",
                 meta_node_removed(s->meta, node_id) ? "no such node (it was removed already)"
                                                     : "no such node");
        return BS_ERR_NOT_FOUND;
    }
    if (up && !drained) {
        snprintf(why, why_size,
                 "the node is up (last heard from %llu ms ago) and not drained: drain it first "
                 "(kvctl node drain), or, if it has died, wait until it is seen down (%llu ms "
                 "without a heartbeat)",
                 (unsigned long long)silent_ms, (unsigned long long)s->down_after_ms);
        return BS_ERR_FAILED_PRECONDITION;
    }
    int rc = meta_remove_node(s->meta, node_id);
    if (rc != 0) {
        snprintf(why, why_size, "the router's store failed");
        return rc;
    }
    pthread_mutex_lock(&s->lock);
    int at = router_node_index(s, node_id);
    if (at >= 0) {
        router_retire_channel(s, s->nodes[at].channel);
        free(s->nodes[at].reported);
        /* Closing the gap keeps the nodes in the order they joined (by id). */
        memmove(&s->nodes[at], &s->nodes[at + 1],
                (size_t)(s->n_nodes - at - 1) * sizeof(s->nodes[0]));
        s->n_nodes--;
    }
    pthread_mutex_unlock(&s->lock);
    log_info("node %llu removed from the cluster; its replicas, if any, are made again elsewhere",
             (unsigned long long)node_id);
    return 0;
}

void router_set_stopping(router_state *s) {
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->lock);
}

bool router_is_stopping(router_state *s) {
    pthread_mutex_lock(&s->lock);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return stopping;
}

void router_node_info(const router_state *s, int at, uint64_t now, const uint32_t *replicas,
                      const uint32_t *leaders, Basalt__V1__NodeInfo *info) {
    const router_node *n = &s->nodes[at];

    basalt__v1__node_info__init(info);
    info->id = n->id;
    info->address = (char *)n->address;
    info->zone = (char *)n->zone;
    info->state = router_node_up_locked(s, n, now) ? BASALT__V1__NODE_STATE__NODE_STATE_UP
                                                   : BASALT__V1__NODE_STATE__NODE_STATE_DOWN;
    info->replicas = replicas[at];
    info->leaders = leaders[at];
    info->admin_state = (Basalt__V1__NodeAdminState)n->admin;
}
