/* operations: the Admin calls by which operators steer placement: draining
 * and removing nodes, and turning the scheduler on or off or asking what it
 * does. (Moves are in move.h, splits in split.h, hand-overs in balance.h.) */
#ifndef BASALT_ROUTER_OPERATIONS_H
#define BASALT_ROUTER_OPERATIONS_H

#include "runtime/rpc_server.h"

/* Each takes the router_state as ctx and answers at once. */
void router_drain_node_call(rpc_call *call, const ProtobufCMessage *request, void *ctx);
void router_remove_node_call(rpc_call *call, const ProtobufCMessage *request, void *ctx);
void router_set_schedule_call(rpc_call *call, const ProtobufCMessage *request, void *ctx);
void router_schedule_status_call(rpc_call *call, const ProtobufCMessage *request, void *ctx);

#endif
