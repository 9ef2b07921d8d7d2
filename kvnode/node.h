/* node: one kvnode's shared state: its store, its replicas, the Raft loop
 * that drives them, and its peers. The RPC services hand requests to the loop
 * through node_submit_*; everything else in here is the loop's own and is
 * touched only by the loop's thread, unless marked otherwise.
 *
 *   loop.c       the event loop: inbox, ticks, ready batches, group commit
 *   replica.c    replicas: creation, loading, lookup by key, descriptors
 *   requests.c   client writes and reads: proposing, ReadIndex, answering
 *   apply.c      applying committed entries
 *   transport.c  Raft messages to and from other nodes
 *   snapshot.c   shard snapshots: sending, receiving, installing; log compaction
 *   split.c      splitting a shard in two: proposing, applying, the new group
 *   membership.c changing a shard's replicas (joint consensus), its descriptor
 */
#ifndef BASALT_KVNODE_NODE_H
#define BASALT_KVNODE_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "basalt/v1/kv.pb-c.h"
#include "basalt/v1/raft.pb-c.h"
#include "kvnode/replica_log.h"
#include "kvnode/store.h"
#include "raft/raft.h"
#include "runtime/rpc_client.h"
#include "runtime/rpc_server.h"
#include "runtime/rpc_stream.h"

/* The Raft clock: one tick every NODE_TICK_MS. */
#define NODE_TICK_MS 100
/* Elections after 10 to 20 ticks without a leader; heartbeats every 2. */
#define NODE_ELECTION_TICKS  10
#define NODE_HEARTBEAT_TICKS 2
/* Where a new shard's Raft log starts (made by a split, or the first shard):
 * applied and truncated at this index, the same on every replica. Above 0,
 * so a replica added later, whose log is empty, is always sent a snapshot
 * rather than the shard's history from its first entry. */
#define NODE_GROUP_INIT_INDEX 5
#define NODE_GROUP_INIT_TERM  5
/* Replicas one node hosts at most. */
#define NODE_REPLICAS_MAX 4096
/* Other nodes one node knows at most. */
#define NODE_PEERS_MAX RPC_STREAMS_MAX
/* Requests waiting in the inbox at most, and their bytes; past either,
 * requests are refused with RESOURCE_EXHAUSTED rather than queued without
 * bound (Raft messages are dropped, and resent). */
#define NODE_INBOX_MAX       65536
#define NODE_INBOX_BYTES_MAX (256u * 1024 * 1024)
/* How long a write without a deadline of its own waits at most. */
#define NODE_WRITE_WAIT_MAX_MS (60 * 1000)
/* Writes and strong reads waiting on one replica at most. */
#define NODE_PENDING_MAX 65536
/* Raft limits of every replica. */
#define NODE_MAX_ENTRIES_PER_MSG   256
#define NODE_MAX_BYTES_PER_MSG     (4u * 1024 * 1024)
#define NODE_MAX_INFLIGHT_MSGS     64
#define NODE_MAX_UNCOMMITTED_BYTES (64ull * 1024 * 1024)

typedef enum {
    NODE_IN_PUT,
    NODE_IN_DELETE,
    NODE_IN_GET,
    NODE_IN_SCAN,
    NODE_IN_RAFT,
    NODE_IN_CREATE_REPLICA,
    NODE_IN_REMOVE_REPLICA,
    NODE_IN_UPDATE_NODES,
    NODE_IN_STATUS,
    NODE_IN_ISOLATE,
    NODE_IN_SNAPSHOT_RECEIVED,
    NODE_IN_SNAPSHOT_SENT,
    NODE_IN_SPLIT,
    NODE_IN_HAND_OVER,
    NODE_IN_CHANGE_REPLICAS,
} node_in_kind;

/* One request for the loop. Requests from calls point into the call's own
 * request message, valid until the call is answered. */
typedef struct node_in {
    node_in_kind kind;
    struct node_in *next;
    rpc_call *call;
    const ProtobufCMessage *request;
    uint64_t deadline_ms; /* monotonic; 0: none */
    size_t bytes;         /* what it holds, for the inbox's byte bound */
    /* NODE_IN_RAFT and NODE_IN_SNAPSHOT_*: a deep copy of one message. */
    uint64_t shard_id;
    raft_msg msg;
    /* NODE_IN_SNAPSHOT_RECEIVED: the file (NULL when the shard was empty)
     * and the shard as of the snapshot, both owned. */
    char *snapshot_path;
    Basalt__V1__ShardDescriptor *snapshot_desc;
    /* NODE_IN_SNAPSHOT_SENT: how sending to replica `msg.to` ended. */
    bool snapshot_ok;
    /* No call to answer: `request` is the node's to free (internal items). */
    bool owns_request;
} node_in;

/* How an applied entry of this replica's own ended. */
typedef enum {
    NODE_APPLIED_DONE,
    /* A write whose key a split, applied before it, gave to another shard:
     * skipped by every replica, so it may safely be sent there. */
    NODE_APPLIED_KEY_MOVED,
    /* A split planned against an epoch the shard no longer has: skipped. */
    NODE_APPLIED_STALE_SPLIT,
    /* A membership change planned against another conf_ver: skipped. */
    NODE_APPLIED_STALE_CONF,
} node_applied_result;

/* A write (or split) proposed by this replica while leader, waiting to be
 * applied: it keeps waiting if the replica loses leadership, since the entry
 * may still commit, until apply tells or its deadline passes. */
typedef struct {
    raft_index_t index;
    raft_term_t term;
    node_in *in;  /* NULL once answered (by a deadline, say) */
    bool applied; /* its own entry was applied (not another at its index) */
    bool existed; /* deletes: the key existed when it was applied */
    /* Another entry (of another term) was applied at its index. */
    bool superseded;
    node_applied_result result;
} node_pending_write;

/* A strong read waiting for its ReadIndex answer, then for apply. */
typedef struct {
    uint64_t read_id;
    raft_index_t index; /* 0 until the read state arrived */
    node_in *in;
} node_pending_read;

typedef struct node_replica {
    Basalt__V1__ShardDescriptor *desc; /* owned, the descriptor in force */
    uint64_t shard_id;
    uint64_t replica_id;
    raft *raft;
    rlog *log;
    raft_conf_state conf;
    raft_ready rd;
    bool has_rd;
    node_pending_write *writes; /* by index */
    size_t n_writes;
    size_t cap_writes;
    node_pending_read *reads;
    size_t n_reads;
    size_t cap_reads;
    raft_term_t last_term; /* to notice leadership changes */
    raft_role last_role;
    /* For the router's split decisions: client requests taken, and bytes
     * put since the replica was loaded (RocksDB's size estimates leave out
     * what is still in the memtable). */
    uint64_t requests;
    uint64_t bytes_put;
    /* A received snapshot waiting for Raft to take it (snapshot.c). */
    bool snap_pending;
    raft_index_t snap_index;
    char *snap_path; /* NULL: the shard had no keys */
    Basalt__V1__ShardDescriptor *snap_desc;
} node_replica;

typedef struct {
    uint64_t node_id;
    char *address;
    rpc_stream *stream;
} node_peer;

/* Wire messages to one peer, waiting for node_flush_sends. */
typedef struct {
    Basalt__V1__RaftMessage **msgs;
    size_t n;
    size_t cap;
} node_outbox;

typedef struct node node;

/* Log entries a replica keeps before compacting when none is configured. */
#define NODE_LOG_MAX_ENTRIES_DEFAULT 10000
/* Snapshot files go over the wire in chunks of at most this size. */
#define NODE_SNAPSHOT_CHUNK_BYTES (1024 * 1024)
/* Snapshots being sent at once at most; more wait for Raft to retry. */
#define NODE_SNAPSHOTS_SENDING_MAX 4
/* A snapshot must arrive within this time. */
#define NODE_SNAPSHOT_TIMEOUT_MS (10 * 60 * 1000)

typedef struct {
    uint64_t node_id;
    kvs *store;
    bool bootstrap;           /* create shard 1 over every key if no replica exists */
    uint64_t log_max_entries; /* compact a log past this many entries (0: default) */
} node_config;

typedef struct node_snapshot_job node_snapshot_job;

/* Raft messages for shards this node does not host (yet) kept, at most, and
 * for how long: a vote for a shard that a split is about to create here
 * would otherwise be lost and its first election wait a full timeout. */
#define NODE_STASH_MAX 64
#define NODE_STASH_MS  2000

typedef struct {
    uint64_t shard_id;
    uint64_t at_ms;
    raft_msg msg; /* owned */
} node_stashed_msg;

/* A split applied during one apply pass, whose new replica starts once the
 * apply batch is written. */
typedef struct {
    Basalt__V1__ShardDescriptor *desc; /* owned: the new shard */
    uint64_t replica_id;
    bool campaign; /* the split shard's leader is here: lead the new one too */
    uint64_t bytes_put;
} node_new_shard;

struct node {
    uint64_t id;
    kvs *store;

    /* Inbox: shared with RPC threads, under `lock`. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    node_in *inbox_head;
    node_in *inbox_tail;
    size_t inbox_len;
    size_t inbox_bytes;
    bool stopping;

    pthread_t thread;
    uint64_t next_tick_ms;
    uint64_t ticks;
    uint64_t next_read_id;

    node_replica *replicas[NODE_REPLICAS_MAX]; /* sorted by start key */
    int n_replicas;

    node_peer peers[NODE_PEERS_MAX];
    node_outbox outboxes[NODE_PEERS_MAX]; /* by peer index */
    int n_peers;
    rpc_stream_pool *streams;

    kvs_batch *persist_batch;
    kvs_batch *apply_batch;
    bool isolated; /* fault injection: drop all Raft traffic */
    uint64_t log_max_entries;
    kvs_batch *compact_batch;

    /* The snapshot sender's thread and queue (snapshot.c), under snap_lock. */
    pthread_t snap_thread;
    pthread_mutex_t snap_lock;
    pthread_cond_t snap_wake;
    node_snapshot_job *snap_jobs;
    int n_snap_jobs;
    bool snap_stopping;
    bool snap_started;
    struct rpc_call_stream *snap_call; /* the one being sent, to cancel at stop */

    node_stashed_msg stash[NODE_STASH_MAX];
    int n_stash;
    node_new_shard *new_shards; /* grows as needed: a node back after missing
                                   many splits applies them all in one pass */
    int n_new_shards;
    int cap_new_shards;

    /* Counters (read by Status, written by the loop; relaxed is fine). */
    uint64_t loop_iterations;
    uint64_t entries_persisted;
    uint64_t raft_sync_writes;
};

/* The node id a store belongs to, or 0 when it has none yet. */
int node_stored_id(kvs *store, uint64_t *id);

/* Starts the loop thread (loading every replica in the store first).
 * Returns 0 or an error, logged. */
int node_start(const node_config *config, node **out);

/* Stops the loop and answers everything that waits with UNAVAILABLE; from
 * here on node_submit refuses at once. The node stays allocated, so RPC
 * threads may still call in until the server has stopped. */
void node_halt(node *n);

/* Frees a halted node (halting it first if needed). */
void node_free(node *n);

/* Hands a request to the loop; any thread. When the inbox is full the call
 * is answered RESOURCE_EXHAUSTED at once. */
void node_submit(node *n, node_in_kind kind, rpc_call *call, const ProtobufCMessage *request);

/* Hands the loop a peer list to apply (as UpdateNodes does); the node takes
 * ownership of `update`. Any thread. */
void node_submit_owned_peers(node *n, Basalt__V1__UpdateNodesRequest *update);

/* Hands a batch of Raft messages from another node to the loop; any thread.
 * Messages are copied; a full inbox drops them (Raft resends). */
void node_submit_raft(node *n, const Basalt__V1__RaftBatch *batch);

uint64_t node_now_ms(void);

/* Puts an item in the loop's inbox; false when the node stops or the inbox
 * is full (the caller keeps the item). Any thread. */
bool node_push(node *n, node_in *in);

/* ---- replica.c (loop thread) ---- */

int node_load_replicas(node *n);
/* Creates a replica of desc here. `bootstrap`: one of a new shard's first
 * replicas, whose log starts at NODE_GROUP_INIT_INDEX; otherwise it starts
 * empty and waits for its leader's snapshot. */
int node_create_replica(node *n, const Basalt__V1__ShardDescriptor *desc, bool bootstrap, char *why,
                        size_t why_size);
/* Removes the shard's replica here, data and Raft state; replica_id, when not
 * 0, must be its id. With gone_at_conf_ver not 0, refuses
 * (BS_ERR_FAILED_PRECONDITION) while the replica's descriptor is at least
 * that new and still lists it. */
int node_remove_replica(node *n, uint64_t shard_id, uint64_t replica_id, uint64_t gone_at_conf_ver,
                        char *why, size_t why_size);
void node_free_replica(node_replica *r);
node_replica *node_replica_by_shard(node *n, uint64_t shard_id);
node_replica *node_replica_by_key(node *n, const uint8_t *key, size_t key_len);
/* The node hosting replica `replica_id` of r's shard, or 0. */
uint64_t node_of_replica(const node_replica *r, uint64_t replica_id);
/* A deep copy to free with basalt__v1__shard_descriptor__free_unpacked; NULL
 * when out of memory. */
Basalt__V1__ShardDescriptor *node_desc_copy(const Basalt__V1__ShardDescriptor *d);
/* Persists a replica state (descriptor, replica id, membership) into batch. */
void node_stage_replica_record(const Basalt__V1__ShardDescriptor *desc, uint64_t replica_id,
                               const raft_conf_state *conf, kvs_batch *batch);
/* Persists the replica's descriptor and membership into `batch`. */
void node_stage_replica_state(node_replica *r, kvs_batch *batch);

/* ---- apply.c (loop thread) ---- */

/* Stages the replica's committed entries of its ready batch into the apply
 * batch, marking the pending writes they complete. */
void node_apply_committed(node *n, node_replica *r);

/* ---- split.c ---- */

/* A split's SplitReplica call (loop thread): checks it and proposes it. */
void node_handle_split(node *n, node_in *in);
/* Applies a committed split command (loop thread, from apply.c). */
node_applied_result node_apply_split(node *n, node_replica *r, const Basalt__V1__KvCommand *cmd,
                                     raft_index_t index);
/* Starts the replicas of shards created by the last apply pass (after the
 * apply batch is written). */
void node_start_new_shards(node *n);
/* Keeps a vote request for a shard not hosted here, for a short while. */
void node_stash_raft(node *n, uint64_t shard_id, raft_msg *msg);
/* The middle key of [start, end) by bytes, for a split: malloc'd into *key.
 * Returns 0, BS_ERR_NOT_FOUND when the range holds too few keys to split, or
 * a store error. Any thread. */
int node_split_middle_key(kvs *store, ProtobufCBinaryData start, ProtobufCBinaryData end,
                          ProtobufCBinaryData *key);
/* Bytewise order of two byte strings, as RocksDB's. */
int node_bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);
/* Whether key lies in the shard's [start, end). */
bool node_desc_contains(const Basalt__V1__ShardDescriptor *d, const uint8_t *key, size_t key_len);
bool node_desc_overlap(const Basalt__V1__ShardDescriptor *a, const Basalt__V1__ShardDescriptor *b);
/* Starts a loaded or new replica's Raft group and puts it among the node's
 * replicas (sorted by start key). On failure the caller frees it. */
int node_activate_replica(node *n, node_replica *r);
/* A new replica object of `desc` (not started); NULL when out of memory. */
node_replica *node_new_replica(const Basalt__V1__ShardDescriptor *desc, uint64_t replica_id);
void node_conf_from_desc(const Basalt__V1__ShardDescriptor *d, raft_conf_state *conf);

/* ---- membership.c (loop thread) ---- */

/* A ChangeReplicas call: checks it and proposes the membership change. */
void node_handle_change_replicas(node *n, node_in *in);
/* Applies a committed membership change entry (from apply.c). */
node_applied_result node_apply_conf_change(node *n, node_replica *r, const raft_entry *e);
/* Whether an applied ChangeReplicas may be answered: the shard has left the
 * joint membership. */
bool node_change_replicas_answerable(const node_replica *r);

/* ---- requests.c (loop thread) ---- */

/* Answers writes and reads that the last apply made answerable. */
void node_answer_after_apply(node *n, node_replica *r);
void node_handle_write(node *n, node_in *in);
/* Waits for the entry this replica proposed at `index` to apply, then
 * answers `in`; false when too many wait already (nothing is kept). */
bool node_track_write(node_replica *r, raft_index_t index, node_in *in);
void node_handle_read(node *n, node_in *in);
void node_fail_pending(node *n, node_replica *r, const char *why_writes, const char *why_reads);
void node_expire_pending(node *n, node_replica *r, uint64_t now_ms);
/* Answers the writes proposed in earlier terms that still wait (a replica
 * that leads again): their outcome is unknown. */
void node_fail_earlier_writes(node *n, node_replica *r);
void node_take_read_states(node *n, node_replica *r);
/* Answers a call refused because this replica does not lead its shard. */
void node_fail_not_leader(node *n, node_replica *r, rpc_call *call);
/* Answers a call whose key the shard it went to does not hold (now), naming
 * the shard that does and its leader when that shard is hosted here. */
void node_fail_key_not_here(node *n, rpc_call *call, ProtobufCBinaryData key);

/* ---- snapshot.c ---- */

int node_snapshots_start(node *n);
void node_snapshots_stop(node *n);
/* Removes snapshot files left by a crash (after interrupted installs, which
 * need theirs, are finished). */
int node_snapshots_clean(node *n);
/* Queues a snapshot for replica m->to (loop thread, within a ready batch). */
void node_snapshot_send(node *n, node_replica *r, const raft_msg *m);
void node_handle_snapshot_received(node *n, node_in *in);
void node_handle_snapshot_sent(node *n, node_in *in);
/* Installs the snapshot of r's ready batch: its data now, its raft and
 * replica state into the persist batch. */
void node_install_snapshot(node *n, node_replica *r);
/* Drops a received snapshot Raft did not take. */
void node_discard_snapshot(node_replica *r);
/* Finishes an install a crash interrupted (at load). */
int node_finish_interrupted_install(node *n, node_replica *r);
/* Compacts r's log when it grew past the limit. */
void node_maybe_compact(node *n, node_replica *r);
/* The stream handlers of RaftTransport.SendSnapshot. */
int node_snapshot_chunk(const ProtobufCMessage *message, void *ctx, void **state);
void node_snapshot_stream_end(void *ctx, void *state, bool complete);

/* ---- transport.c ---- */

/* Sends messages of one replica, batched per destination node (loop thread). */
void node_send(node *n, node_replica *r, const raft_msg *msgs, size_t n_msgs);
/* Sends what node_send batched (loop thread). */
void node_flush_sends(node *n);
int node_update_peers(node *n, const Basalt__V1__UpdateNodesRequest *req, char *why,
                      size_t why_size);
const char *node_peer_address(node *n, uint64_t node_id);
int node_load_peers(node *n);
/* Converts between raft_msg and its wire form. */
int node_msg_from_wire(const Basalt__V1__RaftMessage *w, raft_msg *m);
/* A wire membership pointing into c; and back, checking the bounds. */
void node_conf_to_wire(const raft_conf_state *c, Basalt__V1__RaftConfState *w);
int node_conf_from_wire(const Basalt__V1__RaftConfState *w, raft_conf_state *c);
/* A wire message pointing into m; free with node_wire_free. */
Basalt__V1__RaftMessage *node_msg_to_wire(uint64_t shard_id, const raft_msg *m);
void node_wire_free(Basalt__V1__RaftMessage *w);
void node_msg_free(raft_msg *m);

#endif
