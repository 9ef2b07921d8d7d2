/* keys: the layout of the "raft" column family.
 *
 * Every key starts with the shard id as 8 big-endian bytes, so one shard's
 * keys are contiguous and shards sort by id; a kind byte follows:
 *
 *   [shard][0x01]                hard state      term, vote, commit
 *   [shard][0x02]                apply state     applied index, truncated index and term
 *   [shard][0x03]                replica state   descriptor, replica id, membership
 *   [shard][0x04][index BE 8]    log entry       term, type, data
 *   [shard][0x07]                snapshot install in progress (SnapshotInstall)
 *   [0][0x05]                    peers           UpdateNodesRequest: node id -> address
 *   [0][0x06]                    node id         the node this directory belongs to
 *
 * Integers inside values are little-endian fixed width.
 */
#ifndef BASALT_KVNODE_KEYS_H
#define BASALT_KVNODE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEYS_SHARD_BYTES 9
#define KEYS_LOG_BYTES   17

typedef enum {
    KEYS_HARD_STATE = 0x01,
    KEYS_APPLY_STATE = 0x02,
    KEYS_REPLICA_STATE = 0x03,
    KEYS_LOG = 0x04,
    KEYS_SNAPSHOT_INSTALL = 0x07,
    /* Node-wide records, under shard id 0 (which no shard uses). */
    KEYS_NODE_PEERS = 0x05,
    KEYS_NODE_ID = 0x06,
} keys_kind;

/* Writes [shard][kind] into buf (KEYS_SHARD_BYTES). */
void keys_shard(uint8_t *buf, uint64_t shard_id, keys_kind kind);

/* Writes [shard][0x04][index] into buf (KEYS_LOG_BYTES). */
void keys_log(uint8_t *buf, uint64_t shard_id, uint64_t index);

/* The shard id of a raft key (at least 8 bytes). */
uint64_t keys_shard_of(const uint8_t *key);

void keys_put_u64_be(uint8_t *buf, uint64_t v);
uint64_t keys_get_u64_be(const uint8_t *buf);
void keys_put_u64_le(uint8_t *buf, uint64_t v);
uint64_t keys_get_u64_le(const uint8_t *buf);

#endif
