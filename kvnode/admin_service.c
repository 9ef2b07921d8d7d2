/* admin_service: NodeAdmin and RaftTransport calls, handed to the loop. */
#include "kvnode/admin_service.h"

#include "runtime/error.h"

static void admin_create_replica(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_CREATE_REPLICA, call, request);
}

static void admin_remove_replica(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_REMOVE_REPLICA, call, request);
}

static void admin_update_nodes(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_UPDATE_NODES, call, request);
}

/* Picks the middle key here, on the RPC thread (it reads the whole range),
 * when the router left it to the node; the loop checks the rest. */
static void admin_split_replica(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    Basalt__V1__SplitReplicaRequest *req = (Basalt__V1__SplitReplicaRequest *)request;
    node *n = ctx;

    if (req->split_key.len == 0) {
        ProtobufCBinaryData key;
        int rc = node_split_middle_key(n->store, req->start, req->end, &key);
        if (rc == BS_ERR_NOT_FOUND) {
            rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                          "shard %llu holds too few keys to split by size; give a split key",
                          (unsigned long long)req->shard_id);
            return;
        }
        if (rc != 0) {
            rpc_call_fail(call, GRPC_STATUS_INTERNAL, "shard %llu: cannot read its keys: %s",
                          (unsigned long long)req->shard_id, bs_err_message(rc));
            return;
        }
        /* Freed with the request, as the decoded bytes would have been. */
        req->split_key = key;
    }
    node_submit(n, NODE_IN_SPLIT, call, request);
}

static void admin_hand_over(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_HAND_OVER, call, request);
}

static void admin_change_replicas(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_CHANGE_REPLICAS, call, request);
}

static void admin_status(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_STATUS, call, request);
}

static void admin_isolate(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_ISOLATE, call, request);
}

static int raft_transport_batch(const ProtobufCMessage *message, void *ctx, void **state) {
    (void)state;
    node_submit_raft(ctx, (const Basalt__V1__RaftBatch *)(const void *)message);
    return 0;
}

static const Basalt__V1__RaftBatchAck raft_transport_ack = BASALT__V1__RAFT_BATCH_ACK__INIT;
static const Basalt__V1__SnapshotAck snapshot_ack = BASALT__V1__SNAPSHOT_ACK__INIT;

int admin_service_register(rpc_server *server, node *n) {
    static const struct {
        const char *path;
        const ProtobufCMessageDescriptor *request;
        rpc_handler_cb handler;
    } methods[] = {
        {"/basalt.v1.NodeAdmin/CreateReplica", &basalt__v1__create_replica_request__descriptor,
         admin_create_replica},
        {"/basalt.v1.NodeAdmin/RemoveReplica", &basalt__v1__remove_replica_request__descriptor,
         admin_remove_replica},
        {"/basalt.v1.NodeAdmin/UpdateNodes", &basalt__v1__update_nodes_request__descriptor,
         admin_update_nodes},
        {"/basalt.v1.NodeAdmin/Status", &basalt__v1__node_status_request__descriptor, admin_status},
        {"/basalt.v1.NodeAdmin/Isolate", &basalt__v1__isolate_request__descriptor, admin_isolate},
        {"/basalt.v1.NodeAdmin/SplitReplica", &basalt__v1__split_replica_request__descriptor,
         admin_split_replica},
        {"/basalt.v1.NodeAdmin/HandOverLeadership",
         &basalt__v1__hand_over_leadership_request__descriptor, admin_hand_over},
        {"/basalt.v1.NodeAdmin/ChangeReplicas", &basalt__v1__change_replicas_request__descriptor,
         admin_change_replicas},
    };
    int rc;

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        rc = rpc_server_add_method(server, methods[i].path, methods[i].request, methods[i].handler,
                                   n);
        if (rc != 0)
            return rc;
    }
    rc = rpc_server_add_stream_method(server, "/basalt.v1.RaftTransport/SendSnapshot",
                                      &basalt__v1__snapshot_chunk__descriptor, node_snapshot_chunk,
                                      node_snapshot_stream_end, n, &snapshot_ack.base);
    if (rc != 0)
        return rc;
    return rpc_server_add_stream_method(server, "/basalt.v1.RaftTransport/Send",
                                        &basalt__v1__raft_batch__descriptor, raft_transport_batch,
                                        NULL, n, &raft_transport_ack.base);
}
