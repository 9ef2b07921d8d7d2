/* split: planning splits and asking the shard's leader to carry them out. */
#include "router/split.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basalt/v1/raft.pb-c.h"
#include "router/leader_call.h"
#include "runtime/error.h"
#include "runtime/kv_limits.h"
#include "runtime/log.h"

static void router_split_fail(router_split_result *out, grpc_status_code code, const char *fmt,
                              unsigned long long shard) {
    out->code = code;
    snprintf(out->message, sizeof(out->message), fmt, shard);
}

/* Whether key may split d: inside its range, not its start, a valid key. */
static bool router_split_key_fits(const Basalt__V1__ShardDescriptor *d, ProtobufCBinaryData key) {
    return key.len <= KV_KEY_BYTES_MAX && router_desc_contains(d, key.data, key.len) &&
           !(key.len == d->start.len &&
             (key.len == 0 || memcmp(key.data, d->start.data, key.len) == 0));
}

/* Sends the planned split to the shard's leader; fills out. */
static void router_split_send(router_state *s, const Basalt__V1__ShardDescriptor *d,
                              uint64_t leader, const Basalt__V1__SplitReplicaRequest *req,
                              router_split_result *out) {
    Basalt__V1__SplitReplicaResponse *resp;
    uint64_t node = 0;
    rpc_status st;
    int rc = router_call_leader(s, d, leader, "/basalt.v1.NodeAdmin/SplitReplica", &req->base,
                                &basalt__v1__split_replica_response__descriptor,
                                router_now_ms() + ROUTER_SPLIT_TIMEOUT_MS,
                                (ProtobufCMessage **)&resp, &st, &node);

    if (rc == 0 && resp->left != NULL && resp->right != NULL) {
        out->code = GRPC_STATUS_OK;
        out->left = resp->left;
        out->right = resp->right;
        resp->left = resp->right = NULL;
        out->leader_node = node;
    } else {
        /* A split applied where the new shard has no replica answers
         * without it (node-side: the new replica ids did not fit). */
        out->code = rc == 0 ? GRPC_STATUS_INTERNAL : st.code;
        snprintf(out->message, sizeof(out->message), "node %llu: %s%s", (unsigned long long)node,
                 rc == 0 ? "the split's answer lacks a shard" : st.message,
                 st.code == GRPC_STATUS_DEADLINE_EXCEEDED
                     ? " (the split may or may not have happened: list the shards)"
                     : "");
    }
    if (resp)
        basalt__v1__split_replica_response__free_unpacked(resp, NULL);
}

/* Plans the split: the request to send, with fresh ids. */
static int router_split_plan(router_state *s, const Basalt__V1__ShardDescriptor *d,
                             ProtobufCBinaryData key, Basalt__V1__SplitReplicaRequest *req,
                             Basalt__V1__ReplicaDescriptor *reps,
                             Basalt__V1__ReplicaDescriptor **ptrs) {
    uint64_t shard, first_replica;
    int rc;

    if ((rc = meta_alloc_ids(s->meta, META_ID_SHARD, 1, &shard)) != 0 ||
        (rc = meta_alloc_ids(s->meta, META_ID_REPLICA, d->n_replicas, &first_replica)) != 0)
        return rc;
    req->shard_id = d->id;
    req->split_key = key;
    req->conf_ver = d->conf_ver;
    req->version = d->version;
    req->new_shard_id = shard;
    req->start = d->start;
    req->end = d->end;
    for (size_t i = 0; i < d->n_replicas; i++) {
        basalt__v1__replica_descriptor__init(&reps[i]);
        reps[i].node_id = d->replicas[i]->node_id;
        reps[i].role = d->replicas[i]->role;
        reps[i].replica_id = first_replica + i;
        ptrs[i] = &reps[i];
    }
    req->n_new_replicas = d->n_replicas;
    req->new_replicas = ptrs;
    return 0;
}

static void router_split_planned(router_state *s, const Basalt__V1__ShardDescriptor *d,
                                 uint64_t leader, ProtobufCBinaryData key,
                                 router_split_result *out) {
    Basalt__V1__SplitReplicaRequest req = BASALT__V1__SPLIT_REPLICA_REQUEST__INIT;
    Basalt__V1__ReplicaDescriptor reps[ROUTER_REPLICAS_MAX], *ptrs[ROUTER_REPLICAS_MAX];

    if (d->n_replicas == 0 || d->n_replicas > ROUTER_REPLICAS_MAX) {
        router_split_fail(out, GRPC_STATUS_FAILED_PRECONDITION,
                          "shard %llu has no usable replica list", (unsigned long long)d->id);
        return;
    }
    if (router_split_plan(s, d, key, &req, reps, ptrs) != 0) {
        router_split_fail(out, GRPC_STATUS_UNAVAILABLE,
                          "cannot allocate ids for splitting shard %llu (router store)",
                          (unsigned long long)d->id);
        return;
    }
    log_info("splitting shard %llu (epoch %llu/%llu) into shard %llu%s", (unsigned long long)d->id,
             (unsigned long long)d->conf_ver, (unsigned long long)d->version,
             (unsigned long long)req.new_shard_id,
             key.len ? " at the given key" : " at its middle");
    router_split_send(s, d, leader, &req, out);
    if (out->code != GRPC_STATUS_OK) {
        log_warn("splitting shard %llu failed: %s", (unsigned long long)d->id, out->message);
        return;
    }
    /* The new shard's first leader is the old one's (it campaigns at once). */
    router_learn(s, out->left, out->leader_node);
    router_learn(s, out->right, out->leader_node);
    log_info("shard %llu split: shard %llu now starts at the split key", (unsigned long long)d->id,
             (unsigned long long)out->right->id);
}

void router_split(router_state *s, uint64_t shard_id, ProtobufCBinaryData key,
                  router_split_result *out) {
    uint64_t leader = 0;

    memset(out, 0, sizeof(*out));
    Basalt__V1__ShardDescriptor *d = router_shard_copy(s, shard_id, &leader);
    if (d == NULL) {
        router_split_fail(out, GRPC_STATUS_NOT_FOUND, "no shard %llu in the cluster",
                          (unsigned long long)shard_id);
        return;
    }
    if (key.len > 0 && !router_split_key_fits(d, key)) {
        router_split_fail(out, GRPC_STATUS_INVALID_ARGUMENT,
                          "the split key must lie inside shard %llu's range, after its start key "
                          "(and be at most 4096 bytes)",
                          (unsigned long long)shard_id);
    } else {
        int rc = router_split_begin(s, shard_id, ROUTER_SPLITS_IN_FLIGHT_MAX);
        if (rc == BS_ERR_FAILED_PRECONDITION)
            router_split_fail(out, GRPC_STATUS_FAILED_PRECONDITION,
                              "shard %llu is being split, or a replica of it moved, already; "
                              "retry once that is done",
                              (unsigned long long)shard_id);
        else if (rc != 0)
            router_split_fail(out, GRPC_STATUS_UNAVAILABLE,
                              "too many splits in flight; retry (shard %llu)",
                              (unsigned long long)shard_id);
        if (rc == 0) {
            router_split_planned(s, d, leader, key, out);
            router_split_end(s, shard_id, out->code == GRPC_STATUS_OK);
        }
    }
    basalt__v1__shard_descriptor__free_unpacked(d, NULL);
}

void router_split_result_free(router_split_result *res) {
    if (res->left)
        basalt__v1__shard_descriptor__free_unpacked(res->left, NULL);
    if (res->right)
        basalt__v1__shard_descriptor__free_unpacked(res->right, NULL);
    res->left = res->right = NULL;
}

/* ---- Admin.SplitShard ---- */

void router_split_shard_call(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__SplitShardRequest *req = (const void *)request;
    router_split_result res;

    router_split(ctx, req->shard_id, req->split_key, &res);
    if (res.code != GRPC_STATUS_OK) {
        rpc_call_fail(call, res.code, "%s", res.message);
    } else {
        Basalt__V1__SplitShardResponse resp = BASALT__V1__SPLIT_SHARD_RESPONSE__INIT;
        Basalt__V1__ShardInfo left = BASALT__V1__SHARD_INFO__INIT;
        Basalt__V1__ShardInfo right = BASALT__V1__SHARD_INFO__INIT;
        left.descriptor = res.left;
        left.leader_node_id = res.leader_node;
        right.descriptor = res.right;
        right.leader_node_id = res.leader_node;
        resp.left = &left;
        resp.right = &right;
        rpc_call_reply(call, &resp.base);
    }
    router_split_result_free(&res);
}
