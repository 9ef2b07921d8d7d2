/* placement: where a shard's replicas should be, and which moves get the
 * cluster there. The scheduler asks for moves by priority:
 *
 *   1. repair: a replica on a node down longer than --down-after, or on a
 *      removed node, is made again on a healthy node;
 *   2. drain: a replica on a node being drained goes elsewhere;
 *   3. zones: a shard whose replicas span fewer zones than it could gets one
 *      replica moved into a zone it lacks;
 *   4. balance: while one node holds more than ROUTER_REPLICA_SPREAD_MAX
 *      replicas over another, one replica goes between the two nodes
 *      furthest apart in count that some shard can move between (zones may
 *      forbid the fullest and the emptiest).
 *
 * A target is an up, active node without a replica of the shard: the one
 * that spreads the shard over the most zones, then the one with the fewest
 * replicas. No move lowers a shard's zone spread. Balance moves only while
 * the gap is over the tolerance, and a move narrows it, so a balanced
 * cluster stays still and two nodes never trade a replica back and forth.
 * Everything here runs under the state's lock. */
#ifndef BASALT_ROUTER_PLACEMENT_H
#define BASALT_ROUTER_PLACEMENT_H

#include <stdint.h>

#include "router/state.h"

/* Balanced: no up, active node holds more than this many replicas over
 * another. */
#define ROUTER_REPLICA_SPREAD_MAX 1

typedef struct {
    uint64_t shard_id;
    uint64_t from_node;
    uint64_t to_node;
    char reason[ROUTER_MOVE_REASON_BYTES];
} router_move_plan;

/* Plans at most `cap` moves, one per shard, skipping shards that are busy
 * or whose last move failed within ROUTER_MOVE_BACKOFF_MS; with drains_only
 * (the scheduler is off), only rule 2's. Notes what it found in
 * s->schedule_note. Returns how many. */
int router_plan_moves(router_state *s, router_move_plan *out, int cap, bool drains_only);

/* Learners that no running move owns (a move cut short by a restart), as
 * (shard, replica) pairs; returns how many. */
int router_stray_learners(router_state *s, uint64_t *shards, uint64_t *replicas, int cap);

/* Takes the replicas nodes reported that their shards no longer have. */
int router_take_garbage(router_state *s, router_garbage *out, int cap);

/* Nodes being drained that now hold no replica: fills their ids. */
int router_drained_nodes(router_state *s, uint64_t *ids, int cap);

#endif
