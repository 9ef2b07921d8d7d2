/* operations: drain, remove, and the scheduler's switch and status. */
#include "router/operations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basalt/v1/admin.pb-c.h"
#include "router/state.h"
#include "runtime/error.h"
#include "runtime/log.h"

/* Up, active nodes other than node_id (lock held). */
static int router_other_targets(router_state *s, uint64_t node_id) {
    uint64_t now = router_now_ms();
    int n = 0;

    for (int i = 0; i < s->n_nodes; i++) {
        const router_node *node = &s->nodes[i];
        n += node->id != node_id && node->admin == META_NODE_ACTIVE && node->address[0] &&
             router_node_up_locked(s, node, now);
    }
    return n;
}

static void router_reply_node(rpc_call *call, router_state *s, uint64_t node_id) {
    static uint32_t replicas[ROUTER_NODES_MAX], leaders[ROUTER_NODES_MAX]; /* under the lock */
    Basalt__V1__DrainNodeResponse resp = BASALT__V1__DRAIN_NODE_RESPONSE__INIT;
    Basalt__V1__NodeInfo info;

    pthread_mutex_lock(&s->lock);
    int at = router_node_index(s, node_id);
    if (at >= 0) {
        router_count_load(s, replicas, leaders);
        router_node_info(s, at, router_now_ms(), replicas, leaders, &info);
        resp.node = &info;
    }
    rpc_call_reply(call, &resp.base); /* encoded here, under the lock */
    pthread_mutex_unlock(&s->lock);
}

/* Ends node_id's drain; answers with the node. */
static void router_cancel_drain(rpc_call *call, router_state *s, uint64_t node_id,
                                meta_node_admin admin) {
    if (admin != META_NODE_ACTIVE) {
        int rc = router_change_node_admin(s, node_id, admin, META_NODE_ACTIVE);
        if (rc != 0) {
            rpc_call_fail(
                call,
                rc == BS_ERR_FAILED_PRECONDITION ? GRPC_STATUS_ABORTED : GRPC_STATUS_UNAVAILABLE,
                "activate node %llu: %s", (unsigned long long)node_id,
                rc == BS_ERR_FAILED_PRECONDITION ? "its state changed meanwhile; try again"
                                                 : bs_err_message(rc));
            return;
        }
        log_info("node %llu is active again (its drain was ended by an operator); it takes "
                 "replicas",
                 (unsigned long long)node_id);
    }
    router_reply_node(call, s, node_id);
}

void router_drain_node_call(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__DrainNodeRequest *req = (const void *)request;
    router_state *s = ctx;

    pthread_mutex_lock(&s->lock);
    router_node *n = router_node_of(s, req->node_id);
    meta_node_admin admin = n ? n->admin : META_NODE_ACTIVE;
    int others = router_other_targets(s, req->node_id);
    int wanted = s->replicas_wanted;
    pthread_mutex_unlock(&s->lock);
    if (n == NULL) {
        rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "%s: no node %llu",
                      req->cancel ? "activate" : "drain", (unsigned long long)req->node_id);
        return;
    }
    if (req->cancel) {
        router_cancel_drain(call, s, req->node_id, admin);
        return;
    }
    if (admin == META_NODE_ACTIVE && others < wanted) {
        rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                      "drain: node %llu's replicas need somewhere to go: shards keep %d replicas "
                      "and only %d other node(s) are up and active; add a node first",
                      (unsigned long long)req->node_id, wanted, others);
        return;
    }
    if (admin == META_NODE_ACTIVE) {
        int rc = router_change_node_admin(s, req->node_id, META_NODE_ACTIVE, META_NODE_DRAINING);
        if (rc != 0) {
            rpc_call_fail(
                call,
                rc == BS_ERR_FAILED_PRECONDITION ? GRPC_STATUS_ABORTED : GRPC_STATUS_UNAVAILABLE,
                "drain: %s",
                rc == BS_ERR_FAILED_PRECONDITION ? "its state changed meanwhile; try again"
                                                 : bs_err_message(rc));
            return;
        }
        log_info("draining node %llu: its replicas and leaderships move to other nodes",
                 (unsigned long long)req->node_id);
    }
    router_reply_node(call, s, req->node_id);
}

void router_remove_node_call(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__RemoveNodeRequest *req = (const void *)request;
    Basalt__V1__RemoveNodeResponse resp = BASALT__V1__REMOVE_NODE_RESPONSE__INIT;
    char why[320];

    int rc = router_remove_node(ctx, req->node_id, why, sizeof(why));
    if (rc == 0)
        rpc_call_reply(call, &resp.base);
    else
        rpc_call_fail(call,
                      rc == BS_ERR_NOT_FOUND             ? GRPC_STATUS_NOT_FOUND
                      : rc == BS_ERR_FAILED_PRECONDITION ? GRPC_STATUS_FAILED_PRECONDITION
                                                         : GRPC_STATUS_UNAVAILABLE,
                      "remove node %llu: %s", (unsigned long long)req->node_id, why);
}

void router_set_schedule_call(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__SetScheduleRequest *req = (const void *)request;
    Basalt__V1__SetScheduleResponse resp = BASALT__V1__SET_SCHEDULE_RESPONSE__INIT;

    int rc = router_set_schedule(ctx, req->enabled);
    if (rc != 0) {
        rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "schedule: %s", bs_err_message(rc));
        return;
    }
    log_info("scheduling turned %s by an operator", req->enabled ? "on" : "off");
    rpc_call_reply(call, &resp.base);
}

static void router_fill_move(const router_move_info *m, uint64_t now,
                             Basalt__V1__ScheduledMove *out) {
    basalt__v1__scheduled_move__init(out);
    out->shard_id = m->shard_id;
    out->from_node_id = m->from_node;
    out->to_node_id = m->to_node;
    out->reason = (char *)m->reason;
    out->step = (char *)(m->step ? m->step : "");
    out->elapsed_ms = (m->finished_ms ? m->finished_ms : now) - m->started_ms;
    out->ok = m->ok;
    out->outcome = (char *)m->outcome;
}

void router_schedule_status_call(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    static Basalt__V1__ScheduledMove running[ROUTER_MOVES_MAX], recent[ROUTER_RECENT_MOVES];
    static Basalt__V1__ScheduledMove *running_ptrs[ROUTER_MOVES_MAX];
    static Basalt__V1__ScheduledMove *recent_ptrs[ROUTER_RECENT_MOVES]; /* under the lock */
    Basalt__V1__ScheduleStatusResponse resp = BASALT__V1__SCHEDULE_STATUS_RESPONSE__INIT;
    router_state *s = ctx;
    (void)request;

    pthread_mutex_lock(&s->lock);
    uint64_t now = router_now_ms();
    for (int i = 0; i < s->n_moves; i++) {
        router_fill_move(&s->moves[i], now, &running[i]);
        running_ptrs[i] = &running[i];
    }
    for (int i = 0; i < s->n_recent; i++) {
        int at = (s->recent_next - 1 - i + ROUTER_RECENT_MOVES) % ROUTER_RECENT_MOVES;
        router_fill_move(&s->recent[at], now, &recent[i]);
        recent_ptrs[i] = &recent[i];
    }
    resp.enabled = s->schedule_enabled;
    resp.running = running_ptrs;
    resp.n_running = (size_t)s->n_moves;
    resp.recent = recent_ptrs;
    resp.n_recent = (size_t)s->n_recent;
    resp.note = s->schedule_note;
    resp.max_moves = (uint32_t)s->moves_max;
    resp.down_after_ms = s->dead_after_ms;
    rpc_call_reply(call, &resp.base);
    pthread_mutex_unlock(&s->lock);
}
