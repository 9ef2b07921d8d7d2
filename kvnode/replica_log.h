/* replica_log: one replica's Raft log and states in the "raft" column
 * family, seen by the Raft library through raft_storage.
 *
 * What raft_storage reads is what earlier ready batches persisted, kept in
 * memory where cheap (hard state, membership, bounds, every entry's term, the
 * entries not yet applied) and read from RocksDB otherwise (older entries).
 * Everything is changed only by the Raft loop's thread: rlog_stage_* add the
 * writes to a batch and update the memory at once, and the loop writes that
 * batch before raft_advance.
 */
#ifndef BASALT_KVNODE_REPLICA_LOG_H
#define BASALT_KVNODE_REPLICA_LOG_H

#include "kvnode/store.h"
#include "raft/raft.h"

typedef struct rlog rlog;

/* Loads the log of `shard_id` from the store; a shard never written has an
 * empty log and no membership. Returns 0, BS_ERR_CORRUPTION or BS_ERR_IO. */
int rlog_open(kvs *store, uint64_t shard_id, rlog **out);
void rlog_free(rlog *log);

raft_storage rlog_interface(rlog *log);

/* The membership raft_storage reports; the replica keeps it current. */
void rlog_set_conf(rlog *log, const raft_conf_state *conf);

/* Adds a ready batch's snapshot, entries and hard state to `batch`. */
void rlog_stage_ready(rlog *log, kvs_batch *batch, const raft_ready *rd);

/* Replaces the whole log with a snapshot's state (what a ready batch with a
 * snapshot does; also used to finish an install after a crash). */
void rlog_stage_snapshot(rlog *log, kvs_batch *batch, const raft_snapshot *snap);

/* Drops log entries up to `index` (<= applied), keeping its term. Returns 0,
 * or BS_ERR_INVALID_ARGUMENT when there is nothing to drop. */
int rlog_stage_compact(rlog *log, kvs_batch *batch, raft_index_t index);

/* The state of a replica that starts with its log already applied and
 * truncated at (index, term), as the replicas of a shard a split creates do:
 * they all start alike, so none needs what came before. */
void rlog_stage_initial(kvs_batch *batch, uint64_t shard_id, raft_index_t index, raft_term_t term);

/* Records in `batch` that entries up to `applied` are applied. */
void rlog_stage_applied(rlog *log, kvs_batch *batch, raft_index_t applied);

raft_index_t rlog_applied(const rlog *log);
raft_index_t rlog_last_index(const rlog *log);
raft_index_t rlog_first_index(const rlog *log);
raft_hard_state rlog_hard_state(const rlog *log);

#endif
