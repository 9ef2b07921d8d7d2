/* placement: the scheduler's replica decisions (see placement.h). */
#include "router/placement.h"

#include <stdio.h>
#include <string.h>

#include "router/move.h"
#include "runtime/log.h"

/* One planning round's view of the nodes (lock held throughout). */
typedef struct {
    router_state *s;
    uint64_t now;
    /* By node index: replicas the map places there, with the running and
     * planned moves counted as done. */
    int64_t count[ROUTER_NODES_MAX];
    int zones_available; /* distinct zone labels among target nodes */
    bool drains_only;    /* scheduling is off: operators' drains and removals still run */
    /* Replicas that must go (repair, drain) but have nowhere to go. */
    int stuck;
    uint64_t stuck_shard, stuck_node;
} router_plan_view;

/* ---- nodes ---- */

/* Down for longer than --down-after (a node not heard from since the router
 * started counts from the start), or removed. */
static bool router_node_gone(const router_plan_view *v, uint64_t node_id) {
    const router_state *s = v->s;
    int at = router_node_index(s, node_id);

    if (at < 0)
        return true;
    const router_node *n = &s->nodes[at];
    uint64_t since = n->last_seen_ms > s->started_ms ? n->last_seen_ms : s->started_ms;
    return !router_node_up_locked(s, n, v->now) && v->now - since >= s->dead_after_ms;
}

static bool router_node_takes_replicas(const router_plan_view *v, int at) {
    const router_node *n = &v->s->nodes[at];
    return n->admin == META_NODE_ACTIVE && n->address[0] &&
           router_node_fresh_locked(v->s, n, v->now);
}

static const char *router_zone_of(const router_plan_view *v, uint64_t node_id) {
    int at = router_node_index(v->s, node_id);
    return at >= 0 ? v->s->nodes[at].zone : "";
}

/* ---- zones ---- */

/* Distinct non-empty zones of d's replicas, with node `out` replaced by node
 * `in` (0: no replacement). */
static int router_zone_spread(const router_plan_view *v, const Basalt__V1__ShardDescriptor *d,
                              uint64_t out, uint64_t in) {
    const char *zones[ROUTER_REPLICAS_MAX + 1];
    int n = 0;

    for (size_t i = 0; i <= d->n_replicas && i <= ROUTER_REPLICAS_MAX; i++) {
        uint64_t node = i < d->n_replicas ? d->replicas[i]->node_id : in;
        if (node == 0 || (i < d->n_replicas && node == out))
            continue;
        const char *z = router_zone_of(v, node);
        bool seen = z[0] == '\0';
        for (int k = 0; k < n && !seen; k++)
            seen = strcmp(zones[k], z) == 0;
        if (!seen)
            zones[n++] = z;
    }
    return n;
}

static int router_count_zones_available(const router_plan_view *v) {
    const char *zones[ROUTER_NODES_MAX];
    int n = 0;

    for (int i = 0; i < v->s->n_nodes; i++) {
        const char *z = v->s->nodes[i].zone;
        bool seen = z[0] == '\0' || !router_node_takes_replicas(v, i);
        for (int k = 0; k < n && !seen; k++)
            seen = strcmp(zones[k], z) == 0;
        if (!seen)
            zones[n++] = z;
    }
    return n;
}

/* ---- counts ---- */

static bool router_holds(const Basalt__V1__ShardDescriptor *d, uint64_t node_id) {
    for (size_t i = 0; i < d->n_replicas; i++) {
        if (d->replicas[i]->node_id == node_id)
            return true;
    }
    return false;
}

static void router_count_projected(router_plan_view *v) {
    router_state *s = v->s;

    memset(v->count, 0, sizeof(v->count));
    for (int i = 0; i < s->n_shards; i++) {
        const Basalt__V1__ShardDescriptor *d = s->shards[i].desc;
        for (size_t k = 0; k < d->n_replicas; k++) {
            int at = router_node_index(s, d->replicas[k]->node_id);
            if (at >= 0)
                v->count[at]++;
        }
    }
    for (int i = 0; i < s->n_moves; i++) {
        int sh = router_shard_index(s, s->moves[i].shard_id);
        int from = router_node_index(s, s->moves[i].from_node);
        int to = router_node_index(s, s->moves[i].to_node);
        if (sh < 0)
            continue;
        if (from >= 0 && router_holds(s->shards[sh].desc, s->moves[i].from_node))
            v->count[from]--;
        if (to >= 0 && !router_holds(s->shards[sh].desc, s->moves[i].to_node))
            v->count[to]++;
    }
}

static void router_count_plan(router_plan_view *v, const router_move_plan *p) {
    int from = router_node_index(v->s, p->from_node);
    int to = router_node_index(v->s, p->to_node);

    if (from >= 0)
        v->count[from]--;
    if (to >= 0)
        v->count[to]++;
}

/* ---- targets ---- */

/* Node index i may take a new replica of d: it takes replicas, is not one
 * of d's, and holds no stale replica of d from before (a node back after a
 * repair reports it until it has deleted it; a new replica would be
 * refused there). */
static bool router_node_can_take(const router_plan_view *v, const Basalt__V1__ShardDescriptor *d,
                                 int i) {
    const router_node *n = &v->s->nodes[i];
    return router_node_takes_replicas(v, i) && !router_holds(d, n->id) &&
           !router_node_reports(n, d->id);
}

/* The best node to take d's replica from node `from`; 0 when none. With
 * keep_spread, never one that lowers d's zone spread. */
static uint64_t router_best_target(const router_plan_view *v, const Basalt__V1__ShardDescriptor *d,
                                   uint64_t from, bool keep_spread) {
    const router_state *s = v->s;
    int spread_now = router_zone_spread(v, d, 0, 0);
    int best = -1, best_spread = -1;

    for (int i = 0; i < s->n_nodes; i++) {
        if (!router_node_can_take(v, d, i))
            continue;
        int spread = router_zone_spread(v, d, from, s->nodes[i].id);
        if (keep_spread && spread < spread_now)
            continue;
        if (best < 0 || spread > best_spread ||
            (spread == best_spread && v->count[i] < v->count[best])) {
            best = i;
            best_spread = spread;
        }
    }
    return best >= 0 ? s->nodes[best].id : 0;
}

/* ---- the rules ---- */

static bool router_shard_busy(const router_plan_view *v, const router_shard *sh) {
    /* A stray learner goes first. */
    return sh->moving || sh->splitting || router_desc_has_learner(sh->desc) ||
           (sh->move_failed_ms != 0 && v->now - sh->move_failed_ms < ROUTER_MOVE_BACKOFF_MS);
}

/* A shard with a replica on a node that is not up now. Only repairs and
 * drains move its replicas: a move for zones or balance would pass through
 * a joint membership whose majorities lean on the new replica. */
static bool router_shard_degraded(const router_plan_view *v, const Basalt__V1__ShardDescriptor *d) {
    for (size_t i = 0; i < d->n_replicas; i++) {
        int at = router_node_index(v->s, d->replicas[i]->node_id);
        if (at < 0 || !router_node_up_locked(v->s, &v->s->nodes[at], v->now))
            return true;
    }
    return false;
}

/* Rules 1 to 3 for one shard: a replica that must go. */
static bool router_plan_shard(router_plan_view *v, const router_shard *sh, router_move_plan *p) {
    const Basalt__V1__ShardDescriptor *d = sh->desc;

    for (size_t i = 0; i < d->n_replicas; i++) {
        uint64_t node = d->replicas[i]->node_id;
        int at = router_node_index(v->s, node);
        /* A removal is an operator's act, as a drain is: it runs with
         * scheduling off too. */
        if (router_node_gone(v, node) && (!v->drains_only || at < 0))
            snprintf(p->reason, sizeof(p->reason), "repair: node %llu %s", (unsigned long long)node,
                     at < 0 ? "was removed" : "has been down past --down-after");
        else if (at >= 0 && v->s->nodes[at].admin != META_NODE_ACTIVE)
            snprintf(p->reason, sizeof(p->reason), "drain of node %llu", (unsigned long long)node);
        else
            continue;
        p->from_node = node;
        p->to_node = router_best_target(v, d, node, false);
        if (p->to_node != 0)
            return true;
        if (v->stuck++ == 0) {
            v->stuck_shard = d->id;
            v->stuck_node = node;
        }
    }
    int spread = router_zone_spread(v, d, 0, 0);
    int want = v->zones_available < (int)d->n_replicas ? v->zones_available : (int)d->n_replicas;
    if (spread >= want || v->drains_only || router_shard_degraded(v, d))
        return false;
    /* The replica on the fullest node whose zone the shard has twice. */
    int64_t fullest = -1;
    for (size_t i = 0; i < d->n_replicas; i++) {
        uint64_t node = d->replicas[i]->node_id;
        int at = router_node_index(v->s, node);
        if (at < 0 || v->count[at] <= fullest || router_zone_spread(v, d, node, 0) != spread)
            continue; /* its zone would go: it is the only one there */
        uint64_t to = router_best_target(v, d, node, true);
        if (to != 0 && router_zone_spread(v, d, node, to) > spread) {
            fullest = v->count[at];
            p->from_node = node;
            p->to_node = to;
        }
    }
    if (fullest < 0)
        return false;
    snprintf(p->reason, sizeof(p->reason), "zones: the shard spans %d of %d zones", spread, want);
    return true;
}

/* Rule 4: the fullest and emptiest target nodes; false when within the
 * tolerance. */
static bool router_balance_pair(const router_plan_view *v, int *full, int *empty) {
    *full = *empty = -1;
    for (int i = 0; i < v->s->n_nodes; i++) {
        if (!router_node_takes_replicas(v, i))
            continue;
        if (*full < 0 || v->count[i] > v->count[*full])
            *full = i;
        if (*empty < 0 || v->count[i] < v->count[*empty])
            *empty = i;
    }
    return *full >= 0 && v->count[*full] - v->count[*empty] > ROUTER_REPLICA_SPREAD_MAX;
}

/* For shard d's replica on node index `from`: the emptiest target that keeps
 * d's zone spread; -1 when none. */
static int router_balance_target(const router_plan_view *v, const Basalt__V1__ShardDescriptor *d,
                                 int from) {
    const router_state *s = v->s;
    int spread_now = router_zone_spread(v, d, 0, 0);
    int best = -1;

    for (int i = 0; i < s->n_nodes; i++) {
        if (!router_node_can_take(v, d, i) ||
            router_zone_spread(v, d, s->nodes[from].id, s->nodes[i].id) < spread_now)
            continue;
        if (best < 0 || v->count[i] < v->count[best])
            best = i;
    }
    return best;
}

/* The move between the two nodes furthest apart that some shard can make:
 * when zones forbid every move from the fullest node to the emptiest, a pair
 * nearer in count may still narrow the spread. Each move takes one replica
 * from a node holding more than ROUTER_REPLICA_SPREAD_MAX over its target,
 * so counts only ever converge and no replica travels back. */
static bool router_plan_balance(router_plan_view *v, const bool *planned, router_move_plan *p) {
    router_state *s = v->s;
    int full, empty, best_from = -1, best_to = -1, best_shard = -1;
    int64_t best_gap = ROUTER_REPLICA_SPREAD_MAX;

    if (!router_balance_pair(v, &full, &empty))
        return false;
    for (int i = 0; i < s->n_shards; i++) {
        const Basalt__V1__ShardDescriptor *d = s->shards[i].desc;
        if (planned[i] || router_shard_busy(v, &s->shards[i]) || router_shard_degraded(v, d))
            continue;
        for (size_t k = 0; k < d->n_replicas; k++) {
            int from = router_node_index(s, d->replicas[k]->node_id);
            if (from < 0 || !router_node_takes_replicas(v, from))
                continue;
            int to = router_balance_target(v, d, from);
            if (to < 0 || v->count[from] - v->count[to] <= best_gap)
                continue;
            best_gap = v->count[from] - v->count[to];
            best_from = from;
            best_to = to;
            best_shard = i;
        }
        if (best_gap == v->count[full] - v->count[empty])
            break; /* no pair is further apart */
    }
    if (best_shard < 0)
        return false;
    p->shard_id = s->shards[best_shard].desc->id;
    p->from_node = s->nodes[best_from].id;
    p->to_node = s->nodes[best_to].id;
    snprintf(p->reason, sizeof(p->reason), "balance: node %llu holds %lld replicas, node %llu %lld",
             (unsigned long long)p->from_node, (long long)v->count[best_from],
             (unsigned long long)p->to_node, (long long)v->count[best_to]);
    return true;
}

/* A node that is down, holds replicas, and is not yet gone: its replicas
 * are repaired in *left_ms unless it returns. */
static bool router_repair_pending(const router_plan_view *v, uint64_t *node, uint64_t *left_ms) {
    const router_state *s = v->s;

    for (int i = 0; i < s->n_nodes; i++) {
        const router_node *n = &s->nodes[i];
        if (v->count[i] == 0 || router_node_up_locked(s, n, v->now) || router_node_gone(v, n->id))
            continue;
        uint64_t since = n->last_seen_ms > s->started_ms ? n->last_seen_ms : s->started_ms;
        *node = n->id;
        *left_ms = since + s->dead_after_ms - v->now;
        return true;
    }
    return false;
}

/* A node that is not up and still holds replicas (0: none). */
static uint64_t router_down_node_with_replicas(const router_plan_view *v) {
    for (int i = 0; i < v->s->n_nodes; i++) {
        if (v->count[i] > 0 && !router_node_up_locked(v->s, &v->s->nodes[i], v->now))
            return v->s->nodes[i].id;
    }
    return 0;
}

/* What the round found, for kvctl schedule status. */
static void router_note_plan(const router_plan_view *v, const router_move_plan *out, int n) {
    router_state *s = v->s;
    char *note = s->schedule_note;
    size_t size = sizeof(s->schedule_note);
    const char *off =
        v->drains_only ? "scheduling is off (drains and removed nodes' repairs still run); " : "";
    uint64_t down, left_ms;
    int full, empty;

    if (n > 0)
        snprintf(note, size, "%splanned %d move(s); the first: %s", off, n, out[0].reason);
    else if (s->n_moves > 0)
        snprintf(note, size, "%s%d move(s) running", off, s->n_moves);
    else if (v->stuck > 0)
        snprintf(note, size,
                 "%s%d replica(s) must leave their node but no up, active node without a replica "
                 "of the shard can take them (shard %llu on node %llu, for one): add a node",
                 off, v->stuck, (unsigned long long)v->stuck_shard,
                 (unsigned long long)v->stuck_node);
    else if (!v->drains_only && router_repair_pending(v, &down, &left_ms))
        snprintf(note, size,
                 "%snode %llu is down; unless it comes back, its replicas are made again "
                 "elsewhere in %llu s (--down-after)",
                 off, (unsigned long long)down, (unsigned long long)(left_ms + 999) / 1000);
    else if (v->drains_only && (down = router_down_node_with_replicas(v)) != 0)
        snprintf(note, size,
                 "%snode %llu is down and its replicas are not made again elsewhere while "
                 "scheduling is off (kvctl schedule on, or kvctl node remove %llu if it is gone "
                 "for good)",
                 off, (unsigned long long)down, (unsigned long long)down);
    else if (v->drains_only)
        snprintf(note, size, "%snothing to drain", off);
    else if (router_balance_pair(v, &full, &empty))
        snprintf(note, size,
                 "node %llu holds %lld replicas and node %llu %lld, but no shard can move "
                 "between nodes that far apart now (busy, backing off, or zones)",
                 (unsigned long long)s->nodes[full].id, (long long)v->count[full],
                 (unsigned long long)s->nodes[empty].id, (long long)v->count[empty]);
    else
        snprintf(note, size, "balanced: replicas within %d per node, nothing to repair or drain",
                 ROUTER_REPLICA_SPREAD_MAX);
}

int router_plan_moves(router_state *s, router_move_plan *out, int cap, bool drains_only) {
    static router_plan_view v; /* under the lock */
    static bool planned[ROUTER_SHARDS_MAX];
    int n = 0;

    pthread_mutex_lock(&s->lock);
    v.s = s;
    v.now = router_now_ms();
    v.drains_only = drains_only;
    v.stuck = 0;
    router_count_projected(&v);
    v.zones_available = router_count_zones_available(&v);
    memset(planned, 0, (size_t)s->n_shards * sizeof(planned[0]));
    for (int i = 0; i < s->n_shards && n < cap; i++) {
        if (router_shard_busy(&v, &s->shards[i]) || !router_plan_shard(&v, &s->shards[i], &out[n]))
            continue;
        out[n].shard_id = s->shards[i].desc->id;
        router_count_plan(&v, &out[n]);
        planned[i] = true;
        n++;
    }
    while (n < cap && !drains_only && router_plan_balance(&v, planned, &out[n])) {
        planned[router_shard_index(s, out[n].shard_id)] = true;
        router_count_plan(&v, &out[n]);
        n++;
    }
    router_note_plan(&v, out, n);
    pthread_mutex_unlock(&s->lock);
    return n;
}

int router_stray_learners(router_state *s, uint64_t *shards, uint64_t *replicas, int cap) {
    uint64_t now = router_now_ms();
    int n = 0;

    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_shards && n < cap; i++) {
        const router_shard *sh = &s->shards[i];
        const router_node *leader = router_node_of(s, sh->leader_node);
        /* Without a leader that is up, the change would only wait out its
         * deadline and hold up the scheduler's other work. */
        if (leader == NULL || !router_node_up_locked(s, leader, now))
            continue;
        for (size_t k = 0; !sh->moving && k < sh->desc->n_replicas && n < cap; k++) {
            if (sh->desc->replicas[k]->role != BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_LEARNER)
                continue;
            shards[n] = sh->desc->id;
            replicas[n++] = sh->desc->replicas[k]->replica_id;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

int router_take_garbage(router_state *s, router_garbage *out, int cap) {
    pthread_mutex_lock(&s->lock);
    int n = s->n_garbage < cap ? s->n_garbage : cap;
    memcpy(out, s->garbage, (size_t)n * sizeof(*out));
    memmove(s->garbage, s->garbage + n, (size_t)(s->n_garbage - n) * sizeof(*out));
    s->n_garbage -= n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

int router_drained_nodes(router_state *s, uint64_t *ids, int cap) {
    static uint32_t replicas[ROUTER_NODES_MAX], leaders[ROUTER_NODES_MAX]; /* under the lock */
    int n = 0;

    pthread_mutex_lock(&s->lock);
    router_count_load(s, replicas, leaders);
    for (int i = 0; i < s->n_nodes && n < cap; i++) {
        if (s->nodes[i].admin != META_NODE_DRAINING || replicas[i] != 0)
            continue;
        bool involved = false;
        for (int k = 0; k < s->n_moves; k++)
            involved = involved || s->moves[k].from_node == s->nodes[i].id ||
                       s->moves[k].to_node == s->nodes[i].id;
        if (!involved)
            ids[n++] = s->nodes[i].id;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}
