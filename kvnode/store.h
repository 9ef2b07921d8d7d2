/* store: kvnode's RocksDB instance and the user data in it.
 *
 * One RocksDB per node, with the column families of the design:
 *   "data"  user keys, stored as they are (any bytes), ordered bytewise;
 *   "raft"  per-shard Raft log, hard state, apply state and descriptor
 *           (used once replication exists);
 *   "default" required by RocksDB, unused.
 * Every write goes through the WAL with sync on, so a write that returned 0 is
 * on disk and survives kill -9 or a power cut.
 */
#ifndef BASALT_KVNODE_STORE_H
#define BASALT_KVNODE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kvs kvs;

/* Opens (creating if needed) the store in directory `dir`. On error returns
 * BS_ERR_IO with the reason logged, and *out is NULL. */
int kvs_open(const char *dir, kvs **out);

/* Free disk space kept in reserve when none is set: writes that would eat
 * into it are refused, because RocksDB cannot be trusted to fail gracefully on
 * a full disk (Debian's 7.8 aborts). */
#define KVS_DISK_RESERVE_BYTES_DEFAULT (64ull * 1024 * 1024)

/* Sets the reserve: puts are refused with BS_ERR_RESOURCE_EXHAUSTED while the
 * file system holding the store has less than this much free space; deletes,
 * which free space in the end, only below half of it. */
void kvs_set_disk_reserve(kvs *store, uint64_t bytes);

/* Flushes nothing (every write is already durable) and closes. */
void kvs_close(kvs *store);

/* Durably sets key to value. Returns 0, BS_ERR_RESOURCE_EXHAUSTED (disk
 * reserve reached) or BS_ERR_IO. */
int kvs_put(kvs *store, const void *key, size_t key_len, const void *value, size_t value_len);

/* Reads key. On 0, *found says whether it exists; when it does, *value is a
 * malloc'd copy of *value_len bytes for the caller to free. Returns 0,
 * BS_ERR_IO or BS_ERR_CORRUPTION. */
int kvs_get(kvs *store, const void *key, size_t key_len, bool *found, char **value,
            size_t *value_len);

/* Durably removes key; *existed says whether it was there just before. */
int kvs_delete(kvs *store, const void *key, size_t key_len, bool *existed);

/* Called for each pair of a scan, in ascending key order. The bytes are valid
 * only during the call. Returning non-zero stops the scan with that code. */
typedef int (*kvs_scan_cb)(const char *key, size_t key_len, const char *value, size_t value_len,
                           void *ctx);

/* Visits the pairs with start <= key < end (end_len 0: no upper bound), at
 * most `limit` of them. *more says whether a further pair exists in range.
 * Returns 0, the callback's non-zero code, BS_ERR_IO or BS_ERR_CORRUPTION. */
int kvs_scan(kvs *store, const void *start, size_t start_len, const void *end, size_t end_len,
             uint32_t limit, kvs_scan_cb cb, void *ctx, bool *more);

#endif
