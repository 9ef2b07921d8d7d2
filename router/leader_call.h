/* leader_call: the router's own calls to a shard's leader (splits, leader
 * hand-overs). The map's leader may be stale, so the replicas are asked in
 * turn, the known leader first: a replica that does not lead refuses with
 * UNAVAILABLE before doing anything, and the next is asked. */
#ifndef BASALT_ROUTER_LEADER_CALL_H
#define BASALT_ROUTER_LEADER_CALL_H

#include <stdint.h>

#include "router/state.h"
#include "runtime/rpc_client.h"

/* Pause between rounds over the replicas, while leadership settles. */
#define ROUTER_LEADER_RETRY_MS 100

/* Calls `method` on the replicas of d until one answers other than
 * UNAVAILABLE or deadline_ms (router_now_ms clock) passes. Returns what
 * rpc_unary returns for the last attempt, with *answered_by the node that
 * answered it. */
int router_call_leader(router_state *s, const Basalt__V1__ShardDescriptor *d, uint64_t leader,
                       const char *method, const ProtobufCMessage *request,
                       const ProtobufCMessageDescriptor *response_desc, uint64_t deadline_ms,
                       ProtobufCMessage **response, rpc_status *status, uint64_t *answered_by);

#endif
