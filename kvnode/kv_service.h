/* kv_service: the public basalt.v1.KV service of a kvnode, served from its
 * local store. Every request is checked against the limits of
 * runtime/kv_limits.h first; a refused request changes nothing. */
#ifndef BASALT_KVNODE_KV_SERVICE_H
#define BASALT_KVNODE_KV_SERVICE_H

#include "kvnode/store.h"
#include "runtime/rpc_server.h"

/* A scan response stops growing once its pairs reach this many bytes (and says
 * `more`), so a response stays under gRPC's default 4 MiB message limit of
 * every client. It always holds at least one pair when one is in range. */
#define KV_SCAN_RESPONSE_BYTES_MAX (2 * 1024 * 1024)

/* Adds Put, Get, Delete and Scan to `server`, served from `store`, which must
 * outlive the server. Returns 0 or the error of rpc_server_add_method. */
int kv_service_register(rpc_server *server, kvs *store);

#endif
