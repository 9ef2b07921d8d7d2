/* balance: leader hand-overs, asked for and automatic. */
#include "router/balance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basalt/v1/admin.pb-c.h"
#include "basalt/v1/raft.pb-c.h"
#include "router/leader_call.h"
#include "router/services.h"
#include "runtime/error.h"
#include "runtime/log.h"

/* How often a hand-over's progress is looked at. */
#define ROUTER_TRANSFER_POLL_MS 100

static void router_transfer_fail(router_result *out, grpc_status_code code, const char *message) {
    out->code = code;
    snprintf(out->message, sizeof(out->message), "%s", message);
}

/* The term in which node_id leads shard_id now, or 0 when it does not
 * (asked directly: the map waits for heartbeats). */
static uint64_t router_node_leads(router_state *s, uint64_t node_id, uint64_t shard_id) {
    Basalt__V1__NodeStatusRequest req = BASALT__V1__NODE_STATUS_REQUEST__INIT;
    Basalt__V1__NodeStatusResponse *resp = NULL;
    rpc_channel *ch = router_node_channel(s, node_id);
    uint64_t term = 0;
    rpc_status st;

    if (ch == NULL || rpc_unary(ch, "/basalt.v1.NodeAdmin/Status", &req.base,
                                &basalt__v1__node_status_response__descriptor,
                                ROUTER_TRANSFER_POLL_MS * 20, (ProtobufCMessage **)&resp, &st) != 0)
        return 0;
    for (size_t i = 0; i < resp->n_replicas; i++) {
        const Basalt__V1__ReplicaStatus *r = resp->replicas[i];
        if (r->descriptor != NULL && r->descriptor->id == shard_id && r->is_leader)
            term = r->term;
    }
    basalt__v1__node_status_response__free_unpacked(resp, NULL);
    return term;
}

/* Asks the shard's leader to hand leadership to node_id. */
static int router_ask_hand_over(router_state *s, const Basalt__V1__ShardDescriptor *d,
                                uint64_t leader, uint64_t node_id, uint64_t deadline,
                                rpc_status *st) {
    Basalt__V1__HandOverLeadershipRequest req = BASALT__V1__HAND_OVER_LEADERSHIP_REQUEST__INIT;
    ProtobufCMessage *resp;
    uint64_t answered_by;

    req.shard_id = d->id;
    req.to_node_id = node_id;
    int rc = router_call_leader(s, d, leader, "/basalt.v1.NodeAdmin/HandOverLeadership", &req.base,
                                &basalt__v1__hand_over_leadership_response__descriptor, deadline,
                                &resp, st, &answered_by);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

static bool router_has_voter_on(const Basalt__V1__ShardDescriptor *d, uint64_t node_id) {
    for (size_t i = 0; i < d->n_replicas; i++) {
        if (d->replicas[i]->node_id == node_id &&
            d->replicas[i]->role == BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_VOTER)
            return true;
    }
    return false;
}

void router_transfer_leader(router_state *s, uint64_t shard_id, uint64_t node_id,
                            router_result *out) {
    uint64_t leader = 0, deadline = router_now_ms() + ROUTER_TRANSFER_TIMEOUT_MS;
    Basalt__V1__ShardDescriptor *d = router_shard_copy(s, shard_id, &leader);
    rpc_status st = {GRPC_STATUS_UNAVAILABLE, "no replica of the shard could be reached"};

    memset(out, 0, sizeof(*out));
    if (d == NULL) {
        router_transfer_fail(out, GRPC_STATUS_NOT_FOUND, "no such shard");
        return;
    }
    /* The codes kvctl move gives for the same cases. */
    if (!router_node_known(s, node_id)) {
        router_transfer_fail(out, GRPC_STATUS_NOT_FOUND, "no such node");
    } else if (!router_has_voter_on(d, node_id)) {
        router_transfer_fail(out, GRPC_STATUS_FAILED_PRECONDITION,
                             "the node holds no voting replica of the shard");
    } else if (!router_node_is_up(s, node_id)) {
        router_transfer_fail(out, GRPC_STATUS_UNAVAILABLE, "the node is down");
    } else if (leader != node_id || router_node_leads(s, node_id, shard_id) == 0) {
        uint64_t term = 0;
        if (router_ask_hand_over(s, d, leader, node_id, deadline, &st) != 0) {
            router_transfer_fail(out, st.code, st.message);
        } else {
            while ((term = router_node_leads(s, node_id, shard_id)) == 0 &&
                   router_now_ms() < deadline)
                router_sleep_ms(ROUTER_TRANSFER_POLL_MS);
            if (term != 0)
                router_set_leader_term(s, shard_id, node_id, term);
            else
                router_transfer_fail(out, GRPC_STATUS_UNAVAILABLE,
                                     "the hand-over did not finish in time (the node may be "
                                     "behind); the old leader keeps the shard");
        }
    }
    if (out->code == GRPC_STATUS_OK)
        log_info("shard %llu is led by node %llu", (unsigned long long)shard_id,
                 (unsigned long long)node_id);
    basalt__v1__shard_descriptor__free_unpacked(d, NULL);
}

/* ---- Admin.TransferLeader ---- */

void router_transfer_leader_call(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__TransferLeaderRequest *req = (const void *)request;
    router_result res;

    Basalt__V1__TransferLeaderResponse resp = BASALT__V1__TRANSFER_LEADER_RESPONSE__INIT;
    char what[96];

    router_transfer_leader(ctx, req->shard_id, req->node_id, &res);
    snprintf(what, sizeof(what), "shard %llu to node %llu", (unsigned long long)req->shard_id,
             (unsigned long long)req->node_id);
    router_answer_with_shard(call, ctx, req->shard_id, &res, &resp.base, what);
}

/* ---- the balancer ---- */

void router_balance_leaders(router_state *s) {
    uint64_t shard, to;
    router_result res;

    if (!router_pick_leader_move(s, ROUTER_LEADER_SPREAD_MAX, ROUTER_BALANCE_BACKOFF_MS, &shard,
                                 &to))
        return;
    log_info("balancing leaders: shard %llu to node %llu", (unsigned long long)shard,
             (unsigned long long)to);
    router_transfer_leader(s, shard, to, &res);
    if (res.code != GRPC_STATUS_OK)
        router_balance_failed(s, shard);
    if (res.code != GRPC_STATUS_OK)
        log_warn("balancing leaders: shard %llu to node %llu failed: %s", (unsigned long long)shard,
                 (unsigned long long)to, res.message);
}
