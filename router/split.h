/* split: the router's side of shard splits. A split is planned here (new
 * shard id and replica ids, allocated durably), carried out by the shard's
 * leader (NodeAdmin.SplitReplica, a Raft command), and learned back. Splits
 * come from operators (Admin.SplitShard) and from the scheduler (shards grown
 * past a size or kept past a request rate). */
#ifndef BASALT_ROUTER_SPLIT_H
#define BASALT_ROUTER_SPLIT_H

#include <stdint.h>

#include "basalt/v1/admin.pb-c.h"
#include "router/state.h"
#include "runtime/rpc_client.h"
#include "runtime/rpc_server.h"

/* Splits in flight at once at most, from operators and the scheduler. */
#define ROUTER_SPLITS_IN_FLIGHT_MAX 4
/* One split may take this long, leader changes included. */
#define ROUTER_SPLIT_TIMEOUT_MS 10000
/* After a failed automatic split, the shard waits this long for the next. */
#define ROUTER_SPLIT_BACKOFF_MS 30000
/* A shard splits for load once its rate stayed over --split-qps this long. */
#define ROUTER_SPLIT_QPS_WINDOW_MS 10000
/* --split-size-mb and --split-qps defaults. */
#define ROUTER_SPLIT_SIZE_MB_DEFAULT 64
#define ROUTER_SPLIT_QPS_DEFAULT     2000

typedef struct {
    grpc_status_code code; /* GRPC_STATUS_OK on success */
    char message[RPC_STATUS_MESSAGE_BYTES + 128];
    Basalt__V1__ShardDescriptor *left; /* owned, on success */
    Basalt__V1__ShardDescriptor *right;
    uint64_t leader_node;
} router_split_result;

/* Splits shard_id at key (empty: the middle by size, as the leader finds
 * it). Blocks up to ROUTER_SPLIT_TIMEOUT_MS. Free the result with
 * router_split_result_free. */
void router_split(router_state *s, uint64_t shard_id, ProtobufCBinaryData key,
                  router_split_result *out);
void router_split_result_free(router_split_result *res);

/* Admin.SplitShard; blocks (services.c runs it on a thread of its own). */
void router_split_shard_call(rpc_call *call, const ProtobufCMessage *request, void *ctx);

#endif
