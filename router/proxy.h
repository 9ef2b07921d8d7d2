/* proxy: the public basalt.v1.KV service of the router. Each call goes to
 * the node that should answer it (the shard's leader for writes and strong
 * reads; a replica, preferably a follower, for eventual reads), without
 * blocking a thread, and is retried there or elsewhere when the node says it
 * is not the leader, has no leader yet, or cannot be reached, until the
 * caller's deadline. A write whose outcome is unknown is never retried. Scans
 * walk the shards in key order. */
#ifndef BASALT_ROUTER_PROXY_H
#define BASALT_ROUTER_PROXY_H

#include "router/state.h"
#include "runtime/rpc_server.h"

/* Attempts per call, at most (the caller's deadline usually ends it first). */
#define PROXY_ATTEMPTS_MAX 200
/* Retries one call makes without a pause, at most. */
#define PROXY_QUICK_RETRIES_MAX 4
/* Nodes one call remembers as unreachable, at most. */
#define PROXY_AVOID_MAX 4
/* Pause before retrying a shard with no leader (an election takes 1-2 s). */
#define PROXY_RETRY_DELAY_MS 100
/* Deadline used when the caller set none. */
#define PROXY_DEFAULT_TIMEOUT_MS 10000
/* An eventual read waits at most this long (and at most half the time
 * left) for one replica before asking another: any replica may answer it,
 * and a stopped or overloaded node should not use up the caller's deadline. */
#define PROXY_EVENTUAL_ATTEMPT_MS 1000
/* A scan response stops growing past this many bytes of keys and values. */
#define PROXY_SCAN_BYTES_MAX (2 * 1024 * 1024)

typedef struct proxy proxy;

/* zone: the router's own zone label ("" for none); eventual reads prefer
 * followers that carry it. */
proxy *proxy_create(router_state *state, const char *zone);
/* Answers every call still in flight with UNAVAILABLE and frees. */
void proxy_destroy(proxy *px);

int proxy_register(rpc_server *server, proxy *px);

#endif
