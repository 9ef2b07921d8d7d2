/* router_link: a kvnode's link to the router: it gets its node id at first
 * start (when it has none), then heartbeats about every second with its
 * address, zone and replicas, and learns its peers' addresses from each
 * answer. */
#ifndef BASALT_KVNODE_ROUTER_LINK_H
#define BASALT_KVNODE_ROUTER_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include "kvnode/node.h"

#define ROUTER_LINK_HEARTBEAT_MS 1000
#define ROUTER_LINK_TIMEOUT_MS   3000

typedef struct router_link router_link;

/* Asks the router for a node id, retrying (logged) until it answers or
 * `attempts` are used. Returns 0 with *id, BS_ERR_UNAVAILABLE, or
 * BS_ERR_DEADLINE_EXCEEDED when SIGTERM or SIGINT arrived meanwhile (call
 * with those signals blocked). */
int router_link_allocate_id(const char *router, const char *zone, int attempts, uint64_t *id);

/* Starts heartbeating for node n, which serves at `address`. */
router_link *router_link_start(node *n, const char *router, const char *address, const char *zone);
void router_link_stop(router_link *link);

/* Whether the router refused the node as removed from the cluster; the link
 * then raised SIGTERM, so the node stops (it must not serve stale data). */
bool router_link_removed(router_link *link);

#endif
