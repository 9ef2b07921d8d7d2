/* meta: the router's own durable state, in a small RocksDB of its own: the
 * cluster id, the id allocators (nodes, shards, replicas), and the node
 * registry (id, address, zone). Shard descriptors are not here: the shards
 * themselves hold them, and heartbeats bring them back after a restart. */
#ifndef BASALT_ROUTER_META_H
#define BASALT_ROUTER_META_H

#include <stdint.h>

typedef struct meta meta;

typedef enum { META_ID_NODE = 0, META_ID_SHARD = 1, META_ID_REPLICA = 2 } meta_id_kind;

/* Opens (creating if needed) the store in `dir`; a new store gets a random
 * cluster id. Returns 0 or BS_ERR_IO (logged). */
int meta_open(const char *dir, meta **out);
void meta_close(meta *m);

const char *meta_cluster_id(const meta *m);

/* Allocates `count` consecutive ids of a kind, durably (an id is never
 * handed out twice, even across crashes); *first is the first. With count 0
 * it only reads the next free id. */
int meta_alloc_ids(meta *m, meta_id_kind kind, uint64_t count, uint64_t *first);

/* Makes sure ids up to `id` of a kind are never handed out (they are in use:
 * a node came back with its id, a heartbeat named a shard). */
int meta_reserve_ids(meta *m, meta_id_kind kind, uint64_t id);

/* Records a node's address and zone durably. */
int meta_put_node(meta *m, uint64_t id, const char *address, const char *zone);

/* Calls cb for each recorded node. */
typedef void (*meta_node_cb)(void *ctx, uint64_t id, const char *address, const char *zone);
int meta_each_node(meta *m, meta_node_cb cb, void *ctx);

#endif
