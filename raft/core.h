/* core: the inside of a raft node, shared by the files of raft/ and by no one
 * else. Each file owns one concern:
 *   log.c          the log: persisted part (host storage) + unstable tail
 *   progress.c     the leader's view of each member, and in-flight appends
 *   quorum.c       majorities, joint majorities, commit index from matches
 *   raft.c         node life, tick, message dispatch, role changes
 *   election.c     campaigns, pre-vote, votes
 *   replication.c  proposals, appends, heartbeats, snapshots, commit
 *   read_index.c   linearizable reads confirmed by heartbeat rounds
 *   membership.c   conf change entries and joint consensus
 *   transfer.c     leader transfer
 *   ready.c        ready batches and advance
 */
#ifndef BASALT_RAFT_CORE_H
#define BASALT_RAFT_CORE_H

#include "raft/raft.h"

/* Upper bound on the committed entries handed out in one ready batch. */
#define RAFT_APPLY_BATCH_BYTES_MAX (64ull * 1024 * 1024)

/* ---- log.c ---- */

typedef struct {
    raft_storage storage;
    /* Entries not yet persisted: indexes unstable_offset .. +n_unstable-1. */
    raft_entry *unstable;
    size_t n_unstable;
    size_t cap_unstable;
    raft_index_t unstable_offset;
    /* A snapshot received but not yet installed by the host. */
    bool has_pending_snapshot;
    raft_snapshot pending_snapshot;
    raft_index_t committed;
    raft_index_t applied;
} raft_log;

int raft_log_init(raft_log *log, const raft_storage *storage, raft_index_t applied);
void raft_log_free(raft_log *log);
raft_index_t raft_log_first_index(const raft_log *log);
raft_index_t raft_log_last_index(const raft_log *log);
raft_term_t raft_log_last_term(const raft_log *log);
/* The last index the host has persisted (entries past it are unstable). */
raft_index_t raft_log_persisted_index(const raft_log *log);
/* Term of entry i; 0 with RAFT_ERR_COMPACTED/UNAVAILABLE when unknown. */
int raft_log_term(const raft_log *log, raft_index_t i, raft_term_t *term);
raft_term_t raft_log_term_or_zero(const raft_log *log, raft_index_t i);
bool raft_log_match_term(const raft_log *log, raft_index_t i, raft_term_t term);
/* Copies of entries [lo, hi), at most max_n entries and about max_bytes. */
int raft_log_entries(const raft_log *log, raft_index_t lo, raft_index_t hi, uint32_t max_n,
                     uint64_t max_bytes, raft_entry **out, size_t *n);
/* Appends copies of entries (entries[0].index <= last+1), truncating a
 * conflicting unstable suffix. */
int raft_log_append(raft_log *log, const raft_entry *entries, size_t n);
/* The follower's append: returns true with *last_new when the entry before
 * the batch matches; entries already present are skipped. */
int raft_log_maybe_append(raft_log *log, raft_index_t prev_index, raft_term_t prev_term,
                          raft_index_t commit, const raft_entry *entries, size_t n, bool *ok,
                          raft_index_t *last_new);
bool raft_log_is_up_to_date(const raft_log *log, raft_index_t last_index, raft_term_t last_term);
void raft_log_commit_to(raft_log *log, raft_index_t index);
bool raft_log_maybe_commit(raft_log *log, raft_index_t index, raft_term_t term);
/* The largest index <= `index` whose term is <= `term` (fast back-off). */
raft_index_t raft_log_find_conflict_by_term(const raft_log *log, raft_index_t index,
                                            raft_term_t term, raft_term_t *found_term);
/* Replaces the whole log with a snapshot (installed by the host next). */
int raft_log_restore(raft_log *log, const raft_snapshot *snap);
/* The host persisted everything unstable. */
void raft_log_stable_all(raft_log *log);
/* Highest index whose entries may be applied now. */
raft_index_t raft_log_applicable_index(const raft_log *log);

/* ---- progress.c ---- */

typedef enum { RAFT_PR_PROBE, RAFT_PR_REPLICATE, RAFT_PR_SNAPSHOT } raft_pr_state;

typedef struct {
    raft_id_t id;
    raft_index_t match;
    raft_index_t next;
    raft_pr_state state;
    raft_index_t pending_snapshot;
    bool recent_active;
    bool probe_sent;
    bool is_learner;
    uint64_t read_ack; /* highest read round this member confirmed */
    /* Ring of the last index of each append in flight. */
    raft_index_t *inflight;
    uint32_t inflight_start;
    uint32_t inflight_count;
    uint32_t inflight_cap;
} raft_progress;

void raft_pr_reset(raft_progress *pr, raft_index_t next);
bool raft_pr_is_paused(const raft_progress *pr);
void raft_pr_become_probe(raft_progress *pr);
void raft_pr_become_replicate(raft_progress *pr);
void raft_pr_become_snapshot(raft_progress *pr, raft_index_t snapshot_index);
bool raft_pr_maybe_update(raft_progress *pr, raft_index_t index);
bool raft_pr_maybe_decr_to(raft_progress *pr, raft_index_t rejected, raft_index_t match_hint);
void raft_pr_inflight_add(raft_progress *pr, raft_index_t last);
void raft_pr_inflight_free_to(raft_progress *pr, raft_index_t index);
void raft_pr_inflight_free_first(raft_progress *pr);
const char *raft_pr_state_name(raft_pr_state state);

/* ---- quorum.c ---- */

typedef enum { RAFT_VOTE_PENDING, RAFT_VOTE_LOST, RAFT_VOTE_WON } raft_vote_result;

bool raft_conf_has(const raft_id_t *ids, uint32_t n, raft_id_t id);
bool raft_conf_is_voter(const raft_conf_state *conf, raft_id_t id);
bool raft_conf_is_member(const raft_conf_state *conf, raft_id_t id);
bool raft_conf_is_joint(const raft_conf_state *conf);
/* Outcome of a vote: granted(id) says 1 yes, 0 no, -1 not heard. */
raft_vote_result raft_quorum_vote(const raft_conf_state *conf, int (*granted)(void *, raft_id_t),
                                  void *ctx);
/* The largest index a quorum has matched, given each voter's match. */
raft_index_t raft_quorum_committed(const raft_conf_state *conf,
                                   raft_index_t (*match)(void *, raft_id_t), void *ctx);

/* ---- raft.c: the node ---- */

typedef struct {
    raft_msg *items;
    size_t n;
    size_t cap;
} raft_msg_queue;

typedef struct {
    uint64_t request_id;
    raft_index_t index;
    uint64_t round; /* 0: waits for the leader's first commit in its term */
} raft_pending_read;

struct raft {
    raft_id_t id;
    raft_config cfg;
    raft_term_t term;
    raft_id_t vote;
    raft_id_t lead;
    raft_role role;
    raft_log log;
    raft_conf_state conf;
    raft_progress prs[RAFT_MEMBERS_MAX];
    uint32_t n_prs;

    /* Votes of the current (pre-)campaign: 1 granted, 0 refused. */
    raft_id_t vote_ids[RAFT_MEMBERS_MAX];
    int vote_granted[RAFT_MEMBERS_MAX];
    uint32_t n_votes;

    int election_elapsed;
    int heartbeat_elapsed;
    int randomized_election_ticks;
    uint64_t rng;

    raft_id_t lead_transferee;
    raft_index_t pending_conf_index;
    uint64_t uncommitted_bytes;

    raft_msg_queue msgs;       /* leader messages: may go before persisting */
    raft_msg_queue msgs_after; /* wait for this batch to be persisted */

    raft_pending_read *reads;
    size_t n_reads;
    uint64_t read_round;
    bool read_round_open;
    raft_read_state *read_states;
    size_t n_read_states;
    size_t cap_read_states;

    raft_hard_state prev_hard_state;
    /* What ready_get handed out, owned by the batch until advance frees it.
     * Anything queued meanwhile (raft_apply_conf_change runs inside the
     * batch) goes to the live queues above, for the next batch. */
    raft_entry *ready_committed;
    size_t n_ready_committed;
    raft_msg_queue ready_msgs;
    raft_msg_queue ready_msgs_after;
    raft_read_state *ready_read_states;
};

void raft_logf(const raft *r, raft_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
raft_progress *raft_progress_of(raft *r, raft_id_t id);
void raft_become_follower(raft *r, raft_term_t term, raft_id_t lead);
void raft_become_candidate(raft *r);
void raft_become_pre_candidate(raft *r);
void raft_become_leader(raft *r);
bool raft_is_promotable(const raft *r);
/* Queues a message; the leader's go out before persisting, others after. */
int raft_send(raft *r, raft_msg *msg);
void raft_msg_free_entries(raft_msg *msg);
int raft_rebuild_progress(raft *r);

/* ---- election.c ---- */

void raft_campaign(raft *r, bool pre_vote, bool transfer);
int raft_handle_vote_request(raft *r, const raft_msg *m);
int raft_handle_vote_response(raft *r, const raft_msg *m);
bool raft_has_unapplied_conf_change(const raft *r);

/* ---- replication.c ---- */

int raft_append_entry(raft *r, raft_entry_type type, const void *data, uint32_t len,
                      raft_index_t *index);
bool raft_maybe_send_append(raft *r, raft_id_t to, bool send_if_empty);
void raft_broadcast_append(raft *r);
void raft_broadcast_heartbeat(raft *r, uint64_t context);
bool raft_maybe_commit(raft *r);
int raft_handle_append(raft *r, const raft_msg *m);
int raft_handle_append_response(raft *r, const raft_msg *m);
int raft_handle_heartbeat(raft *r, const raft_msg *m);
int raft_handle_heartbeat_response(raft *r, const raft_msg *m);
int raft_handle_snapshot(raft *r, const raft_msg *m);
bool raft_committed_in_current_term(const raft *r);

/* ---- read_index.c ---- */

/* Releases the reads whose round a quorum has now confirmed (after an
 * acknowledgement, or a membership change that changed the quorum). */
void raft_reads_recheck(raft *r);
void raft_reads_on_commit(raft *r);
void raft_reads_drop_all(raft *r);
void raft_reads_close_round(raft *r);
int raft_push_read_state(raft *r, uint64_t request_id, raft_index_t index, int err);

/* ---- membership.c ---- */

int raft_conf_change_encode(const raft_conf_change *cc, uint8_t *buf, uint32_t cap, uint32_t *len);
void raft_maybe_auto_leave_joint(raft *r);

/* ---- transfer.c ---- */

void raft_abort_transfer(raft *r);
void raft_maybe_finish_transfer(raft *r, raft_id_t from);
void raft_send_timeout_now(raft *r, raft_id_t to);

#endif
