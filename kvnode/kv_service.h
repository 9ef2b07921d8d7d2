/* kv_service: the public basalt.v1.KV service of a kvnode. Handlers hand
 * each call to the node's Raft loop (node.h), which answers it. */
#ifndef BASALT_KVNODE_KV_SERVICE_H
#define BASALT_KVNODE_KV_SERVICE_H

#include "kvnode/node.h"
#include "runtime/rpc_server.h"

/* Adds Put, Get, Delete and Scan to `server`, served by `n`, which must
 * outlive the server. Returns 0 or the error of rpc_server_add_method. */
int kv_service_register(rpc_server *server, node *n);

#endif
