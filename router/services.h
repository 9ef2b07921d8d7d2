/* services: what the router serves besides the public KV API: the Cluster
 * service nodes register and heartbeat through (and that bootstraps shard 1
 * once enough nodes are up), and the operator Admin service. */
#ifndef BASALT_ROUTER_SERVICES_H
#define BASALT_ROUTER_SERVICES_H

#include "router/state.h"
#include "runtime/rpc_server.h"

int router_cluster_service_register(rpc_server *server, router_state *state);
int router_admin_service_register(rpc_server *server, router_state *state);

/* Answers an Admin call whose response has a `shard` field (ShardInfo): with
 * the shard as the map has it now when res succeeded, else with res's
 * error, prefixed by `what`. */
void router_answer_with_shard(rpc_call *call, router_state *s, uint64_t shard_id,
                              const router_result *res, ProtobufCMessage *response,
                              const char *what);

#endif
