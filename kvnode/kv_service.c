/* kv_service: basalt.v1.KV calls, handed to the Raft loop as they come. */
#include "kvnode/kv_service.h"

static void kv_put(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_PUT, call, request);
}

static void kv_get(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_GET, call, request);
}

static void kv_delete(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_DELETE, call, request);
}

static void kv_scan(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    node_submit(ctx, NODE_IN_SCAN, call, request);
}

int kv_service_register(rpc_server *server, node *n) {
    static const struct {
        const char *path;
        const ProtobufCMessageDescriptor *request;
        rpc_handler_cb handler;
    } methods[] = {
        {"/basalt.v1.KV/Put", &basalt__v1__put_request__descriptor, kv_put},
        {"/basalt.v1.KV/Get", &basalt__v1__get_request__descriptor, kv_get},
        {"/basalt.v1.KV/Delete", &basalt__v1__delete_request__descriptor, kv_delete},
        {"/basalt.v1.KV/Scan", &basalt__v1__scan_request__descriptor, kv_scan},
    };

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        int rc = rpc_server_add_method(server, methods[i].path, methods[i].request,
                                       methods[i].handler, n);
        if (rc != 0)
            return rc;
    }
    return 0;
}
