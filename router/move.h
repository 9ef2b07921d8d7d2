/* move: one replica of a shard moved from one node to another, online, as
 * a sequence of the shard's own membership changes:
 *
 *   1. if the source node leads the shard, leadership goes to another voter;
 *   2. a new replica on the target joins as a learner (conf change), and the
 *      target node creates it, empty;
 *   3. the leader fills it with a snapshot; the move waits until it has one;
 *   4. one joint change promotes the learner and removes the old replica;
 *      Raft leaves the joint membership by itself;
 *   5. the source node deletes its old replica.
 *
 * Each step bumps the shard's conf_ver and is checked against it, so a step
 * planned on a stale view changes nothing. One move per shard at a time
 * (router_shard.moving). A move that fails before step 4 removes its learner
 * again; one cut short by a router restart leaves either a learner (which
 * the scheduler removes: rolled back) or a committed step 4 (which Raft
 * finishes; the old replica is then deleted as garbage: rolled forward). */
#ifndef BASALT_ROUTER_MOVE_H
#define BASALT_ROUTER_MOVE_H

#include <stdint.h>

#include "router/state.h"
#include "runtime/rpc_server.h"

/* Each membership change must be answered within this time. */
#define ROUTER_CHANGE_TIMEOUT_MS 15000
/* The new replica must have its snapshot within this time. */
#define ROUTER_CATCH_UP_TIMEOUT_MS (5 * 60 * 1000)
/* How often the new replica's progress is looked at. */
#define ROUTER_CATCH_UP_POLL_MS 200
/* A shard whose move failed is not moved by the scheduler for this long. */
#define ROUTER_MOVE_BACKOFF_MS 30000

/* Moves shard_id's replica on from_node to to_node; blocks until done or
 * failed (and rolled back). `reason` is shown by schedule status. */
void router_move(router_state *s, uint64_t shard_id, uint64_t from_node, uint64_t to_node,
                 const char *reason, router_result *out);

/* Removes a learner: one no move owns (left by a router restart), or the one
 * a failing move added. True once the shard is known to be without it;
 * false (changing nothing) when the map does not show it as a learner or
 * the change failed or was refused. */
bool router_remove_learner(router_state *s, uint64_t shard_id, uint64_t replica_id);

/* Deletes a replica its shard no longer has from the node holding it.
 * gone_at_conf_ver: a conf_ver of the shard without the replica; the node
 * refuses while its own copy of the shard, that new or newer, still lists it. */
void router_delete_replica(router_state *s, uint64_t node_id, uint64_t shard_id,
                           uint64_t replica_id, uint64_t gone_at_conf_ver);

/* Admin.MoveReplica; blocks (services.c runs it on a thread of its own). */
void router_move_call(rpc_call *call, const ProtobufCMessage *request, void *ctx);

#endif
