/* kv_service: basalt.v1.KV handlers over the node's store.
 *
 * With a single node every read is both strong and eventual: there is one
 * copy, and every acknowledged write is already in it.
 */
#include "kvnode/kv_service.h"

#include <stdlib.h>
#include <string.h>

#include "basalt/v1/kv.pb-c.h"
#include "runtime/error.h"
#include "runtime/kv_limits.h"
#include "runtime/log.h"

/* Answers a call whose store operation failed. The details are in the log. */
static void kv_fail_store(rpc_call *call, int rc, const char *what) {
    if (rc == BS_ERR_NOMEM)
        rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: server out of memory", what);
    else if (rc == BS_ERR_RESOURCE_EXHAUSTED)
        rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      "%s: the node's disk is nearly full (its reserve is kept free)", what);
    else if (rc == BS_ERR_CORRUPTION)
        rpc_call_fail(call, GRPC_STATUS_DATA_LOSS, "%s: the store found corrupt data", what);
    else
        rpc_call_fail(call, GRPC_STATUS_INTERNAL, "%s: the store failed: %s", what,
                      bs_err_message(rc));
}

static void kv_put(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__PutRequest *req = (const void *)request;
    Basalt__V1__PutResponse resp = BASALT__V1__PUT_RESPONSE__INIT;
    char msg[KV_ERROR_MESSAGE_BYTES];
    int rc;

    if (kv_check_put(req, msg, sizeof(msg)) != 0) {
        rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", msg);
        return;
    }
    rc = kvs_put(ctx, req->key.data, req->key.len, req->value.data, req->value.len);
    if (rc != 0) {
        kv_fail_store(call, rc, "put");
        return;
    }
    rpc_call_reply(call, &resp.base);
}

static void kv_get(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__GetRequest *req = (const void *)request;
    Basalt__V1__GetResponse resp = BASALT__V1__GET_RESPONSE__INIT;
    Basalt__V1__ReadInfo info = BASALT__V1__READ_INFO__INIT;
    char msg[KV_ERROR_MESSAGE_BYTES];
    bool found;
    char *value;
    size_t value_len;
    int rc;

    if (kv_check_get(req, msg, sizeof(msg)) != 0) {
        rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", msg);
        return;
    }
    rc = kvs_get(ctx, req->key.data, req->key.len, &found, &value, &value_len);
    if (rc != 0) {
        kv_fail_store(call, rc, "get");
        return;
    }
    resp.found = found;
    resp.value.data = (uint8_t *)value;
    resp.value.len = value_len;
    resp.info = &info;
    rpc_call_reply(call, &resp.base);
    free(value);
}

static void kv_delete(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__DeleteRequest *req = (const void *)request;
    Basalt__V1__DeleteResponse resp = BASALT__V1__DELETE_RESPONSE__INIT;
    char msg[KV_ERROR_MESSAGE_BYTES];
    bool existed;
    int rc;

    if (kv_check_delete(req, msg, sizeof(msg)) != 0) {
        rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", msg);
        return;
    }
    rc = kvs_delete(ctx, req->key.data, req->key.len, &existed);
    if (rc != 0) {
        kv_fail_store(call, rc, "delete");
        return;
    }
    resp.deleted = existed;
    rpc_call_reply(call, &resp.base);
}

/* ---- Scan ---- */

/* The pairs of one scan response, filled by kv_scan_collect. */
typedef struct {
    Basalt__V1__KeyValue *pairs; /* capacity: the scan's limit */
    Basalt__V1__KeyValue **pointers;
    size_t count;
    size_t bytes;
    bool cut_by_size;
} kv_scan_result;

/* Stops the scan with this (not an error) when the response is full. */
#define KV_SCAN_FULL (-1)

static void *kv_dup(const char *src, size_t len) {
    void *p = malloc(len ? len : 1);
    if (p != NULL)
        memcpy(p, src, len);
    return p;
}

static int kv_scan_collect(const char *key, size_t key_len, const char *value, size_t value_len,
                           void *ctx) {
    kv_scan_result *r = ctx;
    Basalt__V1__KeyValue *kv = &r->pairs[r->count];

    if (r->count > 0 && r->bytes + key_len + value_len > KV_SCAN_RESPONSE_BYTES_MAX) {
        r->cut_by_size = true;
        return KV_SCAN_FULL;
    }
    basalt__v1__key_value__init(kv);
    kv->key.data = kv_dup(key, key_len);
    kv->value.data = kv_dup(value, value_len);
    if (kv->key.data == NULL || kv->value.data == NULL) {
        free(kv->key.data);
        free(kv->value.data);
        return BS_ERR_NOMEM;
    }
    kv->key.len = key_len;
    kv->value.len = value_len;
    r->pointers[r->count++] = kv;
    r->bytes += key_len + value_len;
    return 0;
}

static void kv_scan_result_free(kv_scan_result *r) {
    for (size_t i = 0; i < r->count; i++) {
        free(r->pairs[i].key.data);
        free(r->pairs[i].value.data);
    }
    free(r->pairs);
    free(r->pointers);
}

static void kv_scan(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__ScanRequest *req = (const void *)request;
    Basalt__V1__ScanResponse resp = BASALT__V1__SCAN_RESPONSE__INIT;
    Basalt__V1__ReadInfo info = BASALT__V1__READ_INFO__INIT;
    kv_scan_result result = {0};
    char msg[KV_ERROR_MESSAGE_BYTES];
    uint32_t limit;
    bool more;
    int rc;

    if (kv_check_scan(req, &limit, msg, sizeof(msg)) != 0) {
        rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", msg);
        return;
    }
    result.pairs = calloc(limit, sizeof(*result.pairs));
    result.pointers = calloc(limit, sizeof(*result.pointers));
    if (result.pairs == NULL || result.pointers == NULL) {
        kv_scan_result_free(&result);
        kv_fail_store(call, BS_ERR_NOMEM, "scan");
        return;
    }

    rc = kvs_scan(ctx, req->start.data, req->start.len, req->end.data, req->end.len, limit,
                  kv_scan_collect, &result, &more);
    if (rc != 0 && rc != KV_SCAN_FULL) {
        kv_scan_result_free(&result);
        kv_fail_store(call, rc, "scan");
        return;
    }
    resp.n_kvs = result.count;
    resp.kvs = result.pointers;
    resp.more = more || result.cut_by_size;
    resp.info = &info;
    rpc_call_reply(call, &resp.base);
    kv_scan_result_free(&result);
}

int kv_service_register(rpc_server *server, kvs *store) {
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
                                       methods[i].handler, store);
        if (rc != 0)
            return rc;
    }
    return 0;
}
