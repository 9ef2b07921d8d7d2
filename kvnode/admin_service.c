/* admin_service: NodeAdmin and RaftTransport calls, handed to the loop. */
#include "kvnode/admin_service.h"

static void admin_create_replica(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_CREATE_REPLICA, call, request);
}

static void admin_remove_replica(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_REMOVE_REPLICA, call, request);
}

static void admin_update_nodes(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_UPDATE_NODES, call, request);
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
