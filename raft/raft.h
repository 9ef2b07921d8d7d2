/* raft: Basalt's Raft consensus library, a deterministic state machine.
 *
 * The library does no I/O: no threads, sockets, clocks or disk. Its host feeds
 * it messages (raft_step), time (raft_tick), proposals (raft_propose), strong
 * read requests (raft_read_index), membership changes and leader transfers;
 * then, while raft_has_ready() says so, it takes a ready batch, carries it out
 * and reports back:
 *
 *     raft_ready rd;
 *     raft_ready_get(r, &rd);
 *     send(rd.messages);                    // may go out before persisting
 *     persist(rd.snapshot, rd.entries, rd.hard_state);   // one synced write
 *     send(rd.messages_after_persist);     // depend on what was just persisted
 *     apply(rd.committed);                 // in order; conf changes through
 *                                          // raft_apply_conf_change
 *     deliver(rd.read_states);
 *     raft_advance(r, &rd);
 *
 * Nothing else may be called on the node between raft_ready_get and
 * raft_advance. Everything in a ready batch belongs to the library and stays
 * valid until raft_advance.
 *
 * Log storage is an interface the host implements (raft_storage): it holds
 * what earlier ready batches persisted. raft/memory_storage.h is one for tests.
 *
 * Everything is bounded by the limits in raft_config; the library logs only
 * through the callback in it.
 */
#ifndef BASALT_RAFT_RAFT_H
#define BASALT_RAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_id_t;    /* a replica's id within its group; 0 is none */
typedef uint64_t raft_term_t;  /* election term */
typedef uint64_t raft_index_t; /* position in the log, from 1 */

#define RAFT_NONE ((raft_id_t)0)

/* At most this many members (voters and learners) in one group. */
#define RAFT_MEMBERS_MAX 16
/* At most this many ReadIndex requests wait at a leader at once. */
#define RAFT_READS_PENDING_MAX 4096

/* Error codes; every call that can fail returns 0 or one of these. */
typedef enum {
    RAFT_OK = 0,
    RAFT_ERR_NOT_LEADER,          /* only the leader can do this; see raft_leader() */
    RAFT_ERR_PROPOSAL_DROPPED,    /* leader transfer in progress, or too many uncommitted bytes */
    RAFT_ERR_CONF_CHANGE_PENDING, /* one membership change is already in flight */
    RAFT_ERR_INVALID,             /* the request breaks a rule (bad member, bad config) */
    RAFT_ERR_BUSY,                /* a bounded queue is full; try again later */
    RAFT_ERR_READ_DROPPED,        /* leadership changed before the read was confirmed */
    RAFT_ERR_COMPACTED,           /* storage: the entry was compacted away */
    RAFT_ERR_UNAVAILABLE,         /* storage: the entry is not there (yet) */
    RAFT_ERR_CORRUPT,             /* storage or a message holds impossible data */
    RAFT_ERR_NOMEM,
    RAFT_ERR_COUNT_
} raft_err;

/* A short message for an error code. */
const char *raft_err_message(int code);

typedef enum {
    RAFT_ENTRY_NORMAL = 0,      /* a command of the host's state machine (or empty) */
    RAFT_ENTRY_CONF_CHANGE = 1, /* a membership change: see raft_conf_change */
} raft_entry_type;

typedef struct {
    raft_term_t term;
    raft_index_t index;
    raft_entry_type type;
    uint32_t len;
    uint8_t *data;
} raft_entry;

/* What must be on disk before any message that depends on it goes out. */
typedef struct {
    raft_term_t term;
    raft_id_t vote;
    raft_index_t commit;
} raft_hard_state;

/* A group's membership. Outside a membership change only `voters` and
 * `learners` are used. During one (joint consensus, Raft thesis 4.3) decisions
 * need a majority of `voters` and of `voters_outgoing` alike; `learners_next`
 * are outgoing voters that become learners when the change completes. */
typedef struct {
    raft_id_t voters[RAFT_MEMBERS_MAX];
    uint32_t n_voters;
    raft_id_t voters_outgoing[RAFT_MEMBERS_MAX];
    uint32_t n_voters_outgoing;
    raft_id_t learners[RAFT_MEMBERS_MAX];
    uint32_t n_learners;
    raft_id_t learners_next[RAFT_MEMBERS_MAX];
    uint32_t n_learners_next;
} raft_conf_state;

/* A snapshot's identity. Its contents are the host's business: Basalt streams
 * them separately; tests may carry small ones in `data`. */
typedef struct {
    raft_index_t index;
    raft_term_t term;
    raft_conf_state conf;
    uint32_t len;
    uint8_t *data;
} raft_snapshot;

typedef enum {
    RAFT_MSG_APPEND,
    RAFT_MSG_APPEND_RESP,
    RAFT_MSG_VOTE,
    RAFT_MSG_VOTE_RESP,
    RAFT_MSG_PRE_VOTE,
    RAFT_MSG_PRE_VOTE_RESP,
    RAFT_MSG_HEARTBEAT,
    RAFT_MSG_HEARTBEAT_RESP,
    RAFT_MSG_SNAPSHOT,
    RAFT_MSG_TIMEOUT_NOW,
    RAFT_MSG_TYPE_COUNT_
} raft_msg_type;

/* The name of a message type, for logs. */
const char *raft_msg_type_name(raft_msg_type type);

/* One message between members of a group. Field use by type:
 *   APPEND:        index/log_term of the entry before `entries`; commit
 *   APPEND_RESP:   index = last index now matching, or on reject the index
 *                  refused with reject_hint/hint_term to skip back quickly
 *   (PRE_)VOTE:    index/log_term of the candidate's last entry; `transfer`
 *                  when a leader transfer asked for it
 *   HEARTBEAT:     commit; context = the leader's latest read round
 *   HEARTBEAT_RESP: context echoed
 *   SNAPSHOT:      snapshot */
typedef struct {
    raft_msg_type type;
    raft_id_t from;
    raft_id_t to;
    raft_term_t term;
    raft_term_t log_term;
    raft_index_t index;
    raft_index_t commit;
    bool reject;
    bool transfer;
    raft_index_t reject_hint;
    raft_term_t hint_term;
    uint64_t context;
    uint32_t n_entries;
    raft_entry *entries;
    raft_snapshot snapshot;
} raft_msg;

/* A ReadIndex answer: once the host has applied up to `index`, the read with
 * `request_id` may be served locally and is linearizable. With err set the
 * read was dropped (leadership changed) and index means nothing. */
typedef struct {
    uint64_t request_id;
    raft_index_t index;
    int err;
} raft_read_state;

typedef enum { RAFT_FOLLOWER, RAFT_PRE_CANDIDATE, RAFT_CANDIDATE, RAFT_LEADER } raft_role;

/* A batch of work for the host; see the top of this file for the order. */
typedef struct {
    bool has_hard_state;
    raft_hard_state hard_state;
    bool has_snapshot; /* install before appending entries */
    raft_snapshot snapshot;
    raft_entry *entries; /* append; entries[0] may overwrite a suffix of the log */
    size_t n_entries;
    raft_entry *committed; /* apply in order */
    size_t n_committed;
    raft_msg *messages; /* send now */
    size_t n_messages;
    raft_msg *messages_after_persist; /* send once this batch is persisted */
    size_t n_messages_after_persist;
    raft_read_state *read_states;
    size_t n_read_states;
} raft_ready;

/* The log the host persists. Every call answers from what earlier ready
 * batches persisted (and snapshots installed). Indexes below first_index()
 * are compacted; the entry at first_index()-1 still has a known term (the
 * last snapshot's). */
typedef struct {
    void *ctx;
    /* The persisted hard state and membership (from the last snapshot plus
     * applied conf changes, as the host tracks it). */
    int (*initial_state)(void *ctx, raft_hard_state *hs, raft_conf_state *conf);
    /* Copies of entries [lo, hi), stopping early once max_bytes of data is
     * exceeded (but always at least one). *out is a malloc'd array whose
     * entries' data are malloc'd too; raft_entries_free frees them. */
    int (*entries)(void *ctx, raft_index_t lo, raft_index_t hi, uint64_t max_bytes,
                   raft_entry **out, size_t *n);
    /* The term of entry i, for first_index()-1 <= i <= last_index(). */
    int (*term)(void *ctx, raft_index_t i, raft_term_t *term);
    raft_index_t (*first_index)(void *ctx);
    raft_index_t (*last_index)(void *ctx);
    /* The latest snapshot (data may be left empty). */
    int (*snapshot)(void *ctx, raft_snapshot *snap);
} raft_storage;

typedef enum { RAFT_LOG_DEBUG, RAFT_LOG_INFO, RAFT_LOG_WARN, RAFT_LOG_ERROR } raft_log_level;

typedef struct {
    raft_id_t id;
    /* A follower that hears nothing from a leader for a random number of
     * ticks in [election_ticks, 2 * election_ticks) starts an election. */
    int election_ticks;
    /* A leader sends heartbeats every heartbeat_ticks. */
    int heartbeat_ticks;
    bool pre_vote;     /* ask whether an election could win before bumping the term */
    bool check_quorum; /* a leader that hears no quorum for an election timeout steps down */
    uint32_t max_entries_per_msg;
    uint64_t max_bytes_per_msg;
    uint32_t max_inflight_msgs;     /* appends in flight per follower */
    uint64_t max_uncommitted_bytes; /* proposals past this are dropped; 0 = no bound */
    raft_index_t applied;           /* last index the host applied before this start */
    uint64_t seed;                  /* for election timeouts; runs with one seed repeat */
    raft_storage storage;
    void (*log_cb)(void *ctx, raft_log_level level, const char *message);
    void *log_ctx;
} raft_config;

typedef struct raft raft;

/* Starts a node from its storage. Returns 0 and *out, or an error (invalid
 * config, storage failure, out of memory). */
int raft_new(const raft_config *config, raft **out);
void raft_free(raft *r);

/* Advances the clock by one tick. */
void raft_tick(raft *r);

/* Starts an election now, as if the election timeout had passed (a host
 * whose group has this node as its only voter need not wait). No effect on a
 * leader or a node that cannot campaign. */
void raft_campaign_now(raft *r);

/* Feeds a message from another member. The message is copied as needed. */
int raft_step(raft *r, const raft_msg *msg);

/* Proposes a command; on the leader only (RAFT_ERR_NOT_LEADER elsewhere). On
 * success *index is where it will commit if this leader keeps its term. */
int raft_propose(raft *r, const void *data, uint32_t len, raft_index_t *index);

/* Starts a linearizable read with a unique request id; the answer comes as a
 * read state in a later ready batch. Leader only. */
int raft_read_index(raft *r, uint64_t request_id);

/* Membership changes: one at a time, leader only. */
typedef enum {
    RAFT_CHANGE_ADD_VOTER,
    RAFT_CHANGE_ADD_LEARNER,
    RAFT_CHANGE_REMOVE,
} raft_change_type;

typedef struct {
    raft_change_type type;
    raft_id_t id;
} raft_change;

#define RAFT_CHANGES_MAX RAFT_MEMBERS_MAX

/* Bytes of host context a membership change may carry, at most. */
#define RAFT_CONF_CONTEXT_MAX 512

/* A membership change as carried in a RAFT_ENTRY_CONF_CHANGE entry. Empty
 * (n_changes 0) means "leave the joint configuration". The context is the
 * host's, opaque to Raft and applied with the change (a host that names its
 * members by more than their ids puts the rest there). Decoding points it
 * into the entry's data. */
typedef struct {
    uint32_t n_changes;
    raft_change changes[RAFT_CHANGES_MAX];
    const uint8_t *context;
    uint32_t context_len;
} raft_conf_change;

/* Proposes a membership change (entering a joint configuration). The leader
 * leaves the joint configuration by itself once it is applied. */
int raft_propose_conf_change(raft *r, const raft_conf_change *cc, raft_index_t *index);

/* Decodes a conf change entry's data. */
int raft_conf_change_decode(const uint8_t *data, uint32_t len, raft_conf_change *cc);

/* The host calls this when it applies a committed RAFT_ENTRY_CONF_CHANGE
 * entry; *conf receives the membership now in force, to persist. */
int raft_apply_conf_change(raft *r, const raft_entry *entry, raft_conf_state *conf);

/* Asks the leader to hand leadership to `target`. */
int raft_transfer_leader(raft *r, raft_id_t target);

/* The host tells the leader how sending a snapshot to `to` ended. */
void raft_report_snapshot(raft *r, raft_id_t to, bool ok);

/* The host tells the leader that `to` could not be reached. */
void raft_report_unreachable(raft *r, raft_id_t to);

bool raft_has_ready(const raft *r);
int raft_ready_get(raft *r, raft_ready *rd);
void raft_advance(raft *r, raft_ready *rd);

/* Observers. */
raft_id_t raft_id(const raft *r);
raft_role raft_get_role(const raft *r);
raft_id_t raft_leader(const raft *r);
raft_term_t raft_term(const raft *r);
raft_index_t raft_commit_index(const raft *r);
raft_index_t raft_last_index(const raft *r);
raft_index_t raft_applied_index(const raft *r);
/* The term of entry i of this node's log (persisted or not); RAFT_ERR_COMPACTED
 * or RAFT_ERR_UNAVAILABLE when the log does not hold it. */
int raft_term_at(const raft *r, raft_index_t i, raft_term_t *term);
/* The membership in force. */
const raft_conf_state *raft_conf(const raft *r);
/* On a leader, the lowest index every member is known to hold (what the log
 * may be compacted to without sending anyone a snapshot); 0 elsewhere. */
raft_index_t raft_min_match(const raft *r);
/* The member leadership is being handed to, or RAFT_NONE. */
raft_id_t raft_transferee(const raft *r);
const char *raft_role_name(raft_role role);

/* Frees an array of entries with their data. */
void raft_entries_free(raft_entry *entries, size_t n);

/* Copies src into dst with its own copy of the data. Returns RAFT_OK or
 * RAFT_ERR_NOMEM (dst then holds no data). */
int raft_entry_copy(raft_entry *dst, const raft_entry *src);

#endif
