/* scheduler: the router's background jobs, on one thread that looks at the
 * cluster every ROUTER_SCHEDULER_CHECK_MS:
 *   - automatic splits of shards grown past a size or kept past a request
 *     rate (split.c), one at a time;
 *   - replicas a split did not make: a node that caught up past a split by a
 *     snapshot of the shard it kept gets an empty replica of the new shard,
 *     which that shard's leader fills with a snapshot;
 *   - replicas nodes still hold that their shards no longer have (removed
 *     while the node was away, or a move's old replica): deleted;
 *   - nodes being drained that hold nothing more: marked drained;
 *   - learners no move owns (a move a restart cut short): removed;
 *   and, unless an operator turned scheduling off (kvctl schedule off):
 *   - leader balance (balance.c), every ROUTER_BALANCE_CHECK_MS;
 *   - replica moves (placement.c decides, move.c moves): repair, drain,
 *     zones and balance, up to --max-moves at once, each on its own thread. */
#ifndef BASALT_ROUTER_SCHEDULER_H
#define BASALT_ROUTER_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "router/state.h"

#define ROUTER_SCHEDULER_CHECK_MS 1000
/* A shard's range must be this old before its missing replicas are made:
 * nodes apply a split within moments, and report it within a heartbeat. */
#define ROUTER_REPAIR_SETTLED_MS 5000
/* Missing replicas made per check, at most. */
#define ROUTER_REPAIRS_PER_CHECK 8
/* How long the router waits for a node to create a replica. */
#define ROUTER_REPAIR_TIMEOUT_MS 10000
/* Replicas deleted as garbage, and stray learners removed, per check. */
#define ROUTER_GARBAGE_PER_CHECK 16
#define ROUTER_STRAYS_PER_CHECK  4

typedef struct {
    uint64_t split_bytes; /* split shards larger than this; 0: never */
    bool balance_leaders;
} router_scheduler_config;

typedef struct router_scheduler router_scheduler;

router_scheduler *router_scheduler_start(router_state *s, const router_scheduler_config *config);
void router_scheduler_stop(router_scheduler *sc);

#endif
