/* state: what the router knows of the cluster, in memory, under one lock:
 * the node registry (fed by registration and heartbeats) and the shard map
 * (descriptors ordered by start key, with each shard's leader), rebuilt from
 * heartbeats after a restart. A newer epoch always wins. */
#ifndef BASALT_ROUTER_STATE_H
#define BASALT_ROUTER_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "basalt/v1/admin.pb-c.h"
#include "basalt/v1/cluster.pb-c.h"
#include "router/meta.h"
#include "runtime/rpc_client.h"

#define ROUTER_NODES_MAX     256
#define ROUTER_SHARDS_MAX    65536
#define ROUTER_ADDRESS_BYTES 256
#define ROUTER_ZONE_BYTES    64
/* Two and a half heartbeats: a node heard from within this is alive. */
#define ROUTER_FRESH_MS 2500
/* Replicas a shard may have, at most (as in Raft's member bound). */
#define ROUTER_REPLICAS_MAX 16

typedef struct {
    uint64_t id;
    char address[ROUTER_ADDRESS_BYTES];
    char zone[ROUTER_ZONE_BYTES];
    uint64_t last_seen_ms; /* 0: not heard from since the router started */
    uint64_t *reported;    /* the shard ids of its last heartbeat (owned) */
    size_t n_reported;
    rpc_channel *channel;
    meta_node_admin admin; /* active, draining or drained (durable) */
    bool logged_down;      /* its going down was logged (and not its return yet) */
} router_node;

/* One replica's request count as last reported, and its rate since the
 * report before. */
typedef struct {
    uint64_t node_id; /* 0: slot free */
    uint64_t requests;
    uint64_t at_ms;
    double qps;
} router_load_report;

/* A replica's rate counts only while its reports keep coming. */
#define ROUTER_LOAD_REPORT_MAX_AGE_MS 3000

typedef struct {
    Basalt__V1__ShardDescriptor *desc; /* owned */
    uint64_t leader_node;
    uint64_t leader_term;       /* the term leader_node reported leading in */
    uint64_t balance_failed_ms; /* when a leader move of it last failed; 0: never */
    /* Load, from heartbeats, for split decisions: reset when the range
     * changes, until the next reports. Size as the leader reports it; the
     * request rate summed over every replica (followers serve eventual
     * reads). */
    uint64_t bytes;
    router_load_report load[ROUTER_REPLICAS_MAX];
    double qps;
    uint64_t hot_since_ms; /* 0: not above the split rate */
    bool splitting;
    uint64_t split_failed_ms; /* when a split of it last failed; 0: never */
    uint64_t learned_ms;      /* when this range (version) was learned */
    bool moving;              /* a replica move (or a learner's removal) runs */
    uint64_t move_failed_ms;  /* when a move of it last failed; 0: never */
} router_shard;

/* Replica moves running at once, at most (the --max-moves flag's bound). */
#define ROUTER_MOVES_MAX 64
/* Finished moves kept for `kvctl schedule status`. */
#define ROUTER_RECENT_MOVES      16
#define ROUTER_MOVE_REASON_BYTES 160

/* A replica move: running, or recently finished. */
typedef struct {
    uint64_t shard_id;
    uint64_t from_node;
    uint64_t to_node;
    char reason[ROUTER_MOVE_REASON_BYTES]; /* why it was started */
    const char *step;                      /* what it is doing (static text) */
    uint64_t started_ms;
    uint64_t finished_ms; /* recent ones */
    bool ok;
    char outcome[RPC_STATUS_MESSAGE_BYTES + 128];
} router_move_info;

/* A replica that its shard no longer has, still on a node: to delete. */
typedef struct {
    uint64_t node_id;
    uint64_t shard_id;
    uint64_t replica_id;
    uint64_t conf_ver; /* the shard's, without the replica */
} router_garbage;
#define ROUTER_GARBAGE_MAX 256

/* How an operation the router drives (a hand-over, a move) ended. */
typedef struct {
    grpc_status_code code; /* GRPC_STATUS_OK on success */
    char message[RPC_STATUS_MESSAGE_BYTES + 128];
} router_result;

/* Where to send a request for one key: a copy taken under the lock. */
typedef struct {
    uint64_t shard_id;
    uint64_t conf_ver;
    uint64_t version;
    uint64_t leader_node;
    uint64_t replica_nodes[ROUTER_REPLICAS_MAX];
    int n_replicas;
} router_route;

typedef struct {
    pthread_mutex_t lock;
    meta *meta;
    int replicas_wanted;
    uint64_t down_after_ms;
    router_node nodes[ROUTER_NODES_MAX];
    int n_nodes;
    /* Channels of nodes that moved or were removed: calls may still use
     * them, so they are closed only with the state. */
    rpc_channel **retired;
    size_t n_retired;
    size_t cap_retired;
    router_shard *shards; /* sorted by start key */
    int n_shards;
    int splits_in_flight;
    uint64_t split_qps; /* a shard above this rate is hot (0: never) */
    bool bootstrap_started;
    /* Replica placement (placement.c, move.c). */
    uint64_t dead_after_ms; /* a node down this long has its replicas re-made */
    uint64_t started_ms;    /* a node not heard from since counts from here */
    int moves_max;
    bool schedule_enabled;
    router_move_info moves[ROUTER_MOVES_MAX];
    int n_moves;
    router_move_info recent[ROUTER_RECENT_MOVES]; /* a ring, newest at recent_next - 1 */
    int recent_next;
    int n_recent;
    char schedule_note[384]; /* the scheduler's last word on placement */
    router_garbage garbage[ROUTER_GARBAGE_MAX];
    int n_garbage;
    bool stopping; /* the router is shutting down: moves end early */
} router_state;

int router_state_init(router_state *s, meta *m, int replicas_wanted, uint64_t down_after_ms,
                      uint64_t dead_after_ms, int moves_max);
void router_state_free(router_state *s);

uint64_t router_now_ms(void);
void router_sleep_ms(uint64_t ms);

/* Registers a node (allocating an id when node_id is 0). Returns 0 or an error. */
int router_register(router_state *s, uint64_t node_id, const char *address, const char *zone,
                    uint64_t *assigned);

/* Records a registered node's (new) address durably; no-op when unchanged. */
int router_update_address(router_state *s, uint64_t node_id, const char *address, const char *zone);

/* Takes in a heartbeat; fills resp with every node's address (strings owned
 * by resp: free with router_free_nodes). */
int router_heartbeat(router_state *s, const Basalt__V1__HeartbeatRequest *req);

/* Whether the shard has a learner: a move, or the roll-back of one, is
 * unfinished. */
bool router_desc_has_learner(const Basalt__V1__ShardDescriptor *d);

/* Whether key lies in the shard's [start, end) (an empty end: no bound). */
bool router_desc_contains(const Basalt__V1__ShardDescriptor *d, const uint8_t *key, size_t key_len);

/* The shard owning key, or false when the map has none yet. */
bool router_route_key(router_state *s, const uint8_t *key, size_t key_len, router_route *out);

/* Notes that `node_id` leads shard_id (from a not-leader hint). */
void router_set_leader(router_state *s, uint64_t shard_id, uint64_t node_id);

/* The channel to a node, or NULL when unknown. */
rpc_channel *router_node_channel(router_state *s, uint64_t node_id);

/* Whether the node is registered (and not removed). */
bool router_node_known(router_state *s, uint64_t node_id);
bool router_node_is_up(router_state *s, uint64_t node_id);

/* Up, or not heard from yet by a router that started less than the
 * down-after time ago (its heartbeat is on the way): worth a call. */
bool router_node_may_be_up(router_state *s, uint64_t node_id);
/* The same, lock held. */
bool router_node_up_locked(const router_state *s, const router_node *n, uint64_t now);

/* Heard from within ROUTER_FRESH_MS (or the down-after time, when shorter),
 * lock held: what a node must be to be given a replica or a leadership, so
 * one that died a moment ago, and is not yet seen down, is not chosen. */
bool router_node_fresh_locked(const router_state *s, const router_node *n, uint64_t now);

/* Logs each node that went down or came back since the last call, so an
 * operator sees when a repair's clock starts. */
void router_log_liveness(router_state *s);

/* Whether n's last heartbeat reported a replica of the shard, lock held. */
bool router_node_reports(const router_node *n, uint64_t shard_id);

/* Lock held: per node (by its place in s->nodes), the replicas the shard map
 * places on it and the shards it leads. The map, not the nodes' own reports:
 * a node that died while leading would go on claiming its shards, and right
 * after a split a node's own count lags a heartbeat. */
void router_count_load(const router_state *s, uint32_t *replicas, uint32_t *leaders);

/* True when the node carries the zone label `zone` (never for an empty one). */
bool router_node_in_zone(router_state *s, uint64_t node_id, const char *zone);

/* Learns a descriptor (kept when newer than the map's), with its leader
 * when known (not 0). */
void router_learn(router_state *s, const Basalt__V1__ShardDescriptor *d, uint64_t leader_node);

/* A copy of a shard's descriptor (free with
 * basalt__v1__shard_descriptor__free_unpacked) and its leader; NULL when the
 * shard is unknown. */
Basalt__V1__ShardDescriptor *router_shard_copy(router_state *s, uint64_t shard_id,
                                               uint64_t *leader_node);

/* Marks a shard as being split: 0, BS_ERR_FAILED_PRECONDITION when it
 * already is or a replica of it is being moved, BS_ERR_RESOURCE_EXHAUSTED when `max` splits are in
 * flight, BS_ERR_NOT_FOUND for an unknown shard. */
int router_split_begin(router_state *s, uint64_t shard_id, int max);
void router_split_end(router_state *s, uint64_t shard_id, bool ok);

/* Shards that should split: over `max_bytes` (0: off), or over split_qps
 * for at least `window_ms`, not splitting now and not failing to within
 * `backoff_ms`. Fills at most `cap` ids; returns how many. */
int router_split_candidates(router_state *s, uint64_t max_bytes, uint64_t window_ms,
                            uint64_t backoff_ms, uint64_t *ids, int cap);

/* A replica the shard map places on a node that is up but does not report
 * it (the node caught up past the split that made the shard by snapshot). */
typedef struct {
    Basalt__V1__ShardDescriptor *desc; /* owned */
    uint64_t node_id;
} router_missing_replica;

/* Fills at most cap missing replicas of shards whose range is older than
 * `settled_ms`; returns how many. */
int router_missing_replicas(router_state *s, uint64_t settled_ms, router_missing_replica *out,
                            int cap);

/* A leadership to move for balance: the shard whose leader leads the most
 * shards over an up node holding (and reporting) a voting replica of it, if
 * that gap is over spread_max; shards whose last move failed within
 * backoff_ms wait. False when the leaders are balanced. */
bool router_pick_leader_move(router_state *s, int spread_max, uint64_t backoff_ms,
                             uint64_t *shard_id, uint64_t *to_node);
void router_balance_failed(router_state *s, uint64_t shard_id);

/* Notes that node_id leads shard_id in `term`, unless a newer term is known. */
void router_set_leader_term(router_state *s, uint64_t shard_id, uint64_t node_id, uint64_t term);

/* Node drain states and the scheduler switch, durably (meta) and in memory.
 * A node's state changes only from `from`: BS_ERR_FAILED_PRECONDITION when
 * it is in another. Return 0, BS_ERR_NOT_FOUND for an unknown node, or a
 * store error. */
int router_change_node_admin(router_state *s, uint64_t node_id, meta_node_admin from,
                             meta_node_admin to);
int router_set_schedule(router_state *s, bool enabled);
bool router_schedule_enabled(router_state *s);

/* Forgets a node: 0, BS_ERR_NOT_FOUND, or BS_ERR_FAILED_PRECONDITION when it
 * is up and not drained (why says so). */
int router_remove_node(router_state *s, uint64_t node_id, char *why, size_t why_size);

void router_set_stopping(router_state *s);
bool router_is_stopping(router_state *s);

/* ---- lock held ---- */

/* The operator's view of node `at` (pointing into the state), with the
 * counts of router_count_load. */
void router_node_info(const router_state *s, int at, uint64_t now, const uint32_t *replicas,
                      const uint32_t *leaders, Basalt__V1__NodeInfo *info);

router_node *router_node_of(router_state *s, uint64_t id);
int router_node_index(const router_state *s, uint64_t id);
int router_shard_index(router_state *s, uint64_t shard_id);
/* A deep copy; NULL when out of memory. */
Basalt__V1__ShardDescriptor *router_desc_copy(const Basalt__V1__ShardDescriptor *d);

/* True once (and only once) the cluster has enough nodes and no shard: the
 * caller then creates shard 1. *nodes receives the chosen node ids. */
bool router_should_bootstrap(router_state *s, uint64_t *nodes, int *n);

#endif
