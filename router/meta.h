/* meta: the router's own durable state, in a small RocksDB of its own: the
 * cluster id, the id allocators (nodes, shards, replicas), the node
 * registry (id, address, zone, drain state, removed ids) and the
 * scheduler's on/off switch. Shard descriptors are not here: the shards
 * themselves hold them, and heartbeats bring them back after a restart. */
#ifndef BASALT_ROUTER_META_H
#define BASALT_ROUTER_META_H

#include <stdbool.h>
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

/* What an operator made of a node: in service, having its replicas moved
 * off, or done with that (safe to stop). */
typedef enum {
    META_NODE_ACTIVE = 0,
    META_NODE_DRAINING = 1,
    META_NODE_DRAINED = 2
} meta_node_admin;

int meta_put_node_admin(meta *m, uint64_t id, meta_node_admin admin);
meta_node_admin meta_node_admin_of(meta *m, uint64_t id);

/* Forgets a node for good: its record goes, and its id may never register
 * again. */
int meta_remove_node(meta *m, uint64_t id);
bool meta_node_removed(meta *m, uint64_t id);

/* Whether the scheduler may start replica moves and leader hand-overs (an
 * operator's switch, kept across restarts; on unless turned off). */
int meta_put_schedule_enabled(meta *m, bool enabled);
bool meta_schedule_enabled(meta *m);

/* Calls cb for each recorded node. */
typedef void (*meta_node_cb)(void *ctx, uint64_t id, const char *address, const char *zone);
int meta_each_node(meta *m, meta_node_cb cb, void *ctx);

#endif
