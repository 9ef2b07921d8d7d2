/* keys: raft column family keys and fixed-width integers. */
#include "kvnode/keys.h"

void keys_put_u64_be(uint8_t *buf, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        buf[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t keys_get_u64_be(const uint8_t *buf) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | buf[i];
    return v;
}

void keys_put_u64_le(uint8_t *buf, uint64_t v) {
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(v >> (8 * i));
}

uint64_t keys_get_u64_le(const uint8_t *buf) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | buf[i];
    return v;
}

void keys_shard(uint8_t *buf, uint64_t shard_id, keys_kind kind) {
    keys_put_u64_be(buf, shard_id);
    buf[8] = (uint8_t)kind;
}

void keys_log(uint8_t *buf, uint64_t shard_id, uint64_t index) {
    keys_shard(buf, shard_id, KEYS_LOG);
    keys_put_u64_be(buf + KEYS_SHARD_BYTES, index);
}

uint64_t keys_shard_of(const uint8_t *key) {
    return keys_get_u64_be(key);
}
