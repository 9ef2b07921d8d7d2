/* store: kvnode's one RocksDB instance.
 *
 * Column families, as the design names them:
 *   "data"    user keys of every shard the node hosts, stored as they are;
 *   "raft"    per shard: Raft log, hard state, apply state, replica state,
 *             under keys that start with the big-endian shard id (keys.h);
 *   "default" required by RocksDB, unused.
 * All writes go through batches (kvs_batch), written by the Raft loop: the
 * log and hard state of every group in one synced write per loop iteration,
 * applied commands with their applied index in another.
 */
#ifndef BASALT_KVNODE_STORE_H
#define BASALT_KVNODE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kvs kvs;
typedef struct kvs_batch kvs_batch;

typedef enum { KVS_CF_DATA = 1, KVS_CF_RAFT = 2 } kvs_cf;

/* Opens (creating if needed) the store in directory `dir`. On error returns
 * BS_ERR_IO with the reason logged, and *out is NULL. */
int kvs_open(const char *dir, kvs **out);

void kvs_close(kvs *store);

/* Free disk space kept in reserve when none is set. Writes that would eat
 * into it are refused before they are proposed, because RocksDB cannot be
 * trusted to fail gracefully on a full disk (Debian's 7.8 aborts). */
#define KVS_DISK_RESERVE_BYTES_DEFAULT (64ull * 1024 * 1024)

void kvs_set_disk_reserve(kvs *store, uint64_t bytes);

/* Returns 0 when `bytes` more can be written without eating into the reserve
 * (`fraction_pct` percent of it: deletes, which free space in the end, pass
 * 50), or BS_ERR_RESOURCE_EXHAUSTED. */
int kvs_check_space(kvs *store, uint64_t bytes, int fraction_pct);

/* Reads key of cf. On 0, *found says whether it exists; when it does, *value
 * is a malloc'd copy of *value_len bytes for the caller to free. Returns 0,
 * BS_ERR_IO or BS_ERR_CORRUPTION. Safe from any thread. */
int kvs_get(kvs *store, kvs_cf cf, const void *key, size_t key_len, bool *found, char **value,
            size_t *value_len);

/* Called for each pair of a scan, in ascending key order. The bytes are valid
 * only during the call. Returning non-zero stops the scan with that code. */
typedef int (*kvs_scan_cb)(const char *key, size_t key_len, const char *value, size_t value_len,
                           void *ctx);

/* Visits the pairs of cf with start <= key < end (end_len 0: no upper bound),
 * at most `limit` of them. *more says whether a further pair exists in range.
 * Returns 0, the callback's non-zero code, BS_ERR_IO or BS_ERR_CORRUPTION.
 * Safe from any thread. */
int kvs_scan(kvs *store, kvs_cf cf, const void *start, size_t start_len, const void *end,
             size_t end_len, uint32_t limit, kvs_scan_cb cb, void *ctx, bool *more);

/* The approximate bytes RocksDB's files hold for keys of cf in [start, end)
 * (end_len 0: no upper bound). What is still in the memtable is not counted.
 * Safe from any thread. */
uint64_t kvs_approximate_size(kvs *store, kvs_cf cf, const void *start, size_t start_len,
                              const void *end, size_t end_len);

/* Writes every memtable to files, waiting until done (so that size
 * estimates see everything). Returns 0 or BS_ERR_IO. */
int kvs_flush(kvs *store);

/* ---- batches: one thread at a time per batch ---- */

kvs_batch *kvs_batch_new(kvs *store);
void kvs_batch_free(kvs_batch *batch);

void kvs_batch_put(kvs_batch *batch, kvs_cf cf, const void *key, size_t key_len, const void *value,
                   size_t value_len);
void kvs_batch_delete(kvs_batch *batch, kvs_cf cf, const void *key, size_t key_len);

/* Reads key as the store would after this batch is written. */
int kvs_batch_get(kvs_batch *batch, kvs_cf cf, const void *key, size_t key_len, bool *found,
                  char **value, size_t *value_len);

/* Number of operations in the batch. */
size_t kvs_batch_count(kvs_batch *batch);

/* Writes the batch atomically (syncing the WAL when `sync`, so it survives a
 * power cut) and empties it. Returns 0 or BS_ERR_IO. */
int kvs_batch_write(kvs_batch *batch, bool sync);

/* Deletes every key of cf in [start, end) (end_len 0: to the end of the
 * keyspace), durably. Returns 0 or BS_ERR_IO. */
int kvs_delete_range(kvs *store, kvs_cf cf, const void *start, size_t start_len, const void *end,
                     size_t end_len);

/* A key range of one column family. */
typedef struct {
    kvs_cf cf;
    const void *start;
    size_t start_len;
    const void *end; /* end_len 0: to the end of the keyspace */
    size_t end_len;
} kvs_range;

/* Deletes several ranges in one atomic, durable write: after a crash either
 * all are gone or none. Returns 0 or BS_ERR_IO. */
int kvs_delete_ranges(kvs *store, const kvs_range *ranges, size_t n);

/* ---- snapshots of a key range, as SST files ---- */

typedef struct kvs_snapshot kvs_snapshot;

/* A consistent view of the store as of now; any thread may read through it
 * until kvs_snapshot_release. */
kvs_snapshot *kvs_snapshot_take(kvs *store);
void kvs_snapshot_release(kvs *store, kvs_snapshot *snap);

/* Writes the pairs of cf in [start, end) (end_len 0: to the end) as seen by
 * `snap` into a new SST file at `path`. *keys says how many; with none, no
 * file is made (RocksDB cannot write an empty SST). Returns 0 or BS_ERR_IO. */
int kvs_write_sst(kvs *store, kvs_snapshot *snap, kvs_cf cf, const void *start, size_t start_len,
                  const void *end, size_t end_len, const char *path, uint64_t *keys);

/* Adds the pairs of an SST file to cf, atomically and durably, leaving the
 * file in place. Returns 0 or BS_ERR_IO. */
int kvs_ingest_sst(kvs *store, kvs_cf cf, const char *path);

/* The directory the store lives in. */
const char *kvs_dir(const kvs *store);

/* Synced writes so far: what the Raft loop's group commit is measured by. */
uint64_t kvs_synced_writes(kvs *store);

#endif
