/* admin_service: the node-internal services: basalt.v1.NodeAdmin (replica
 * lifecycle, peers, status; used by tests now and the router later) and
 * basalt.v1.RaftTransport (Raft messages from other nodes). Not part of the
 * public API. */
#ifndef BASALT_KVNODE_ADMIN_SERVICE_H
#define BASALT_KVNODE_ADMIN_SERVICE_H

#include "kvnode/node.h"
#include "runtime/rpc_server.h"

int admin_service_register(rpc_server *server, node *n);

#endif
