/* balance: moving shard leadership between nodes. Operators ask for one
 * hand-over (Admin.TransferLeader, kvctl transfer-leader); the leader
 * balancer, run by the scheduler every few seconds, hands one
 * leadership at a time from the node leading the most shards to the one
 * leading the fewest, until no node leads more than one shard over another. */
#ifndef BASALT_ROUTER_BALANCE_H
#define BASALT_ROUTER_BALANCE_H

#include <stdint.h>

#include "router/state.h"
#include "runtime/rpc_server.h"

/* A hand-over must finish within this time. */
#define ROUTER_TRANSFER_TIMEOUT_MS 5000
/* The leader balancer looks at the shards this often. */
#define ROUTER_BALANCE_CHECK_MS 3000
/* A shard whose leader move failed waits this long before the next. */
#define ROUTER_BALANCE_BACKOFF_MS 30000
/* Balanced: no up node leads more than this many shards over another. */
#define ROUTER_LEADER_SPREAD_MAX 1

/* Hands shard_id's leadership to node_id and waits until that node leads it.
 * Blocks up to ROUTER_TRANSFER_TIMEOUT_MS. */
void router_transfer_leader(router_state *s, uint64_t shard_id, uint64_t node_id,
                            router_result *out);

/* Admin.TransferLeader; blocks (services.c runs it on a thread of its own). */
void router_transfer_leader_call(rpc_call *call, const ProtobufCMessage *request, void *ctx);

/* One round of the leader balancer: at most one hand-over. */
void router_balance_leaders(router_state *s);

#endif
