/* memory_storage: a raft_storage kept in memory, for tests and the simulator.
 * It does exactly what a durable storage does, except surviving the process:
 * "crashing" a node in a test means keeping its memory_storage and dropping
 * its raft. */
#ifndef BASALT_RAFT_MEMORY_STORAGE_H
#define BASALT_RAFT_MEMORY_STORAGE_H

#include "raft/raft.h"

typedef struct memory_storage memory_storage;

/* An empty log with the given membership. NULL when out of memory. */
memory_storage *memory_storage_new(const raft_conf_state *conf);
void memory_storage_free(memory_storage *ms);

/* The raft_storage interface over ms. */
raft_storage memory_storage_interface(memory_storage *ms);

/* Persists a ready batch's parts: entries (truncating a conflicting suffix
 * at entries[0].index), hard state, snapshot, membership. */
int memory_storage_append(memory_storage *ms, const raft_entry *entries, size_t n);
void memory_storage_set_hard_state(memory_storage *ms, const raft_hard_state *hs);
int memory_storage_apply_snapshot(memory_storage *ms, const raft_snapshot *snap);
void memory_storage_set_conf(memory_storage *ms, const raft_conf_state *conf);

/* Makes a snapshot at `index` (<= last index) holding `data`, and drops the
 * log up to it. RAFT_ERR_COMPACTED when an as-new snapshot exists. */
int memory_storage_snapshot_at(memory_storage *ms, raft_index_t index, const raft_conf_state *conf,
                               const void *data, uint32_t len);

/* Drops entries up to `index` (keeping the term of `index`). */
int memory_storage_compact(memory_storage *ms, raft_index_t index);

raft_hard_state memory_storage_hard_state(const memory_storage *ms);

#endif
