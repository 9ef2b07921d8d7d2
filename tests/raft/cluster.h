/* cluster: several raft nodes over memory storage and an in-memory network,
 * for the Raft unit tests and the simulator. The host loop here follows
 * raft.h to the letter: leader messages go out at once, the rest only after
 * the batch is "persisted" into memory_storage, which is what survives a
 * simulated crash.
 *
 * The state machine of each node is its applied sequence; every applied entry
 * is checked against the cluster's record of committed entries, so a node
 * applying something else at an index is caught at once.
 */
#ifndef BASALT_TESTS_RAFT_CLUSTER_H
#define BASALT_TESTS_RAFT_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/memory_storage.h"
#include "raft/raft.h"

#define CLUSTER_NODES_MAX       8
#define CLUSTER_MSGS_MAX        100000
#define CLUSTER_LOG_MAX         200000
#define CLUSTER_VIOLATION_BYTES 512
#define CLUSTER_READS_MAX       4096

typedef struct {
    raft_msg msg;        /* deep copy: owns its entries and snapshot data */
    uint64_t deliver_at; /* simulator step at which it may arrive */
} cluster_msg;

/* A committed entry as the cluster first saw it applied. */
typedef struct {
    raft_term_t term;
    uint64_t hash;
} cluster_record;

typedef struct {
    raft_id_t id;
    raft *r; /* NULL while crashed */
    memory_storage *ms;
    raft_index_t applied; /* the node's state machine: applied this far */
    raft_conf_state conf; /* last membership the host persisted */
    bool member;          /* false: never started */
    /* Half-done ready batch (simulator crash window), if any. */
    bool ready_pending;
    raft_ready pending;
    /* How snapshots this node sent ended, to report once it is idle. */
    raft_id_t snapshot_to[CLUSTER_NODES_MAX * 4];
    bool snapshot_ok[CLUSTER_NODES_MAX * 4];
    int n_snapshot_reports;
} cluster_node;

typedef struct {
    cluster_node nodes[CLUSTER_NODES_MAX];
    int n;
    raft_config base; /* limits shared by all nodes; id and storage filled in */
    cluster_msg *msgs;
    size_t n_msgs;
    uint64_t now; /* simulator step */
    /* cut[a][b]: messages from node a to node b are lost. */
    bool cut[CLUSTER_NODES_MAX + 1][CLUSTER_NODES_MAX + 1];
    cluster_record *committed; /* committed[i] for index i */
    raft_index_t n_committed;  /* highest index recorded */
    raft_id_t leader_of_term[4096];
    uint64_t applied_entries;
    uint64_t elections;
    char violation[CLUSTER_VIOLATION_BYTES]; /* first broken invariant, or "" */
    bool logging;
    /* Read states handed out by ready batches, oldest first; consumers
     * reset n_reads when they have looked. */
    raft_read_state reads[CLUSTER_READS_MAX];
    raft_id_t read_node[CLUSTER_READS_MAX];
    size_t n_reads;
    /* Messages sent, by type, and rejected appends (tests count these). */
    uint64_t sent[RAFT_MSG_TYPE_COUNT_];
    uint64_t append_rejects;
} cluster;

/* n nodes with ids 1..n; the first `voters` are voters, the rest learners. */
cluster *cluster_new(int n, int voters, uint64_t seed);
void cluster_free(cluster *c);

/* Starts (again) a node from its storage. */
void cluster_start(cluster *c, raft_id_t id);
/* Crashes a node: whatever it has not persisted is lost. */
void cluster_crash(cluster *c, raft_id_t id);
raft *cluster_raft(cluster *c, raft_id_t id);

/* Handles every ready batch and delivers every message until nothing moves
 * (bounded by max_rounds). Messages across cut links are dropped. */
void cluster_stabilize(cluster *c, int max_rounds);
/* Ticks every running node once. */
void cluster_tick_all(cluster *c);
/* Ticks node id until it campaigns, then stabilizes: the usual way to make a
 * chosen node leader in a test. */
void cluster_elect(cluster *c, raft_id_t id);
/* The leader known to a quorum of running nodes, or RAFT_NONE. */
raft_id_t cluster_leader(cluster *c);

/* Cuts or heals both directions between a and b. */
void cluster_cut(cluster *c, raft_id_t a, raft_id_t b, bool cut);
/* Cuts node id off from everyone (or heals it). */
void cluster_isolate(cluster *c, raft_id_t id, bool cut);

/* Proposes on the given node; returns raft's result. */
int cluster_propose(cluster *c, raft_id_t id, const char *text);

/* Processes one node's ready batch completely (phases 1 and 2). */
void cluster_handle_ready(cluster *c, cluster_node *node);
/* Phase 1: takes the batch and sends the messages that may go at once. */
void cluster_ready_begin(cluster *c, cluster_node *node);
/* Phase 2: persists, sends the rest, applies, advances. */
void cluster_ready_finish(cluster *c, cluster_node *node);

/* Queues a deep copy of a message for delivery at step `at`. */
void cluster_enqueue(cluster *c, const raft_msg *m, uint64_t at);
/* Delivers message k of the queue (removing it). */
void cluster_deliver(cluster *c, size_t k);

/* Checks one-leader-per-term and leader completeness for every node now. */
void cluster_check_leaders(cluster *c);

/* Log matching (Raft paper 5.3): where two running nodes hold an entry of
 * the same index and term, the entries before it match too (checked over a
 * window below the highest such index). */
void cluster_check_log_matching(cluster *c);

/* Records the first violation. */
void cluster_violation(cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
