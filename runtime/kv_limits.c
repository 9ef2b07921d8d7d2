/* kv_limits: validation of public KV requests. */
#include "runtime/kv_limits.h"

#include <stdio.h>
#include <string.h>

#include "runtime/error.h"

static int kv_invalid(char *msg, size_t msg_size, const char *text, size_t got, size_t max) {
    snprintf(msg, msg_size, text, got, max);
    return BS_ERR_INVALID_ARGUMENT;
}

static int kv_check_key(ProtobufCBinaryData key, char *msg, size_t msg_size) {
    if (key.len == 0) {
        snprintf(msg, msg_size, "key must not be empty");
        return BS_ERR_INVALID_ARGUMENT;
    }
    if (key.len > KV_KEY_BYTES_MAX)
        return kv_invalid(msg, msg_size, "key is %zu bytes, over the limit of %zu bytes", key.len,
                          (size_t)KV_KEY_BYTES_MAX);
    return 0;
}

static int kv_check_consistency(Basalt__V1__Consistency c, char *msg, size_t msg_size) {
    switch (c) {
    case BASALT__V1__CONSISTENCY__CONSISTENCY_UNSPECIFIED:
    case BASALT__V1__CONSISTENCY__CONSISTENCY_STRONG:
    case BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL:
        return 0;
    default:
        snprintf(msg, msg_size, "unknown consistency level %d", (int)c);
        return BS_ERR_INVALID_ARGUMENT;
    }
}

int kv_check_put(const Basalt__V1__PutRequest *req, char *msg, size_t msg_size) {
    int rc = kv_check_key(req->key, msg, msg_size);
    if (rc != 0)
        return rc;
    if (req->value.len > KV_VALUE_BYTES_MAX)
        return kv_invalid(msg, msg_size, "value is %zu bytes, over the limit of %zu bytes",
                          req->value.len, (size_t)KV_VALUE_BYTES_MAX);
    return 0;
}

int kv_check_get(const Basalt__V1__GetRequest *req, char *msg, size_t msg_size) {
    int rc = kv_check_key(req->key, msg, msg_size);
    if (rc != 0)
        return rc;
    return kv_check_consistency(req->consistency, msg, msg_size);
}

int kv_check_delete(const Basalt__V1__DeleteRequest *req, char *msg, size_t msg_size) {
    return kv_check_key(req->key, msg, msg_size);
}

/* Bytewise order with the shorter of two equal prefixes first. */
static int kv_compare(ProtobufCBinaryData a, ProtobufCBinaryData b) {
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.data, b.data, n) : 0;
    if (c != 0)
        return c;
    return (a.len > b.len) - (a.len < b.len);
}

int kv_check_scan(const Basalt__V1__ScanRequest *req, uint32_t *limit_out, char *msg,
                  size_t msg_size) {
    if (req->start.len > KV_SCAN_BOUND_BYTES_MAX)
        return kv_invalid(msg, msg_size, "scan start is %zu bytes, over the limit of %zu bytes",
                          req->start.len, (size_t)KV_SCAN_BOUND_BYTES_MAX);
    if (req->end.len > KV_SCAN_BOUND_BYTES_MAX)
        return kv_invalid(msg, msg_size, "scan end is %zu bytes, over the limit of %zu bytes",
                          req->end.len, (size_t)KV_SCAN_BOUND_BYTES_MAX);
    if (req->end.len > 0 && kv_compare(req->start, req->end) > 0) {
        snprintf(msg, msg_size, "scan start must not be after scan end");
        return BS_ERR_INVALID_ARGUMENT;
    }
    if (req->limit > KV_SCAN_LIMIT_MAX)
        return kv_invalid(msg, msg_size, "scan limit %zu is over the maximum of %zu",
                          (size_t)req->limit, (size_t)KV_SCAN_LIMIT_MAX);
    *limit_out = req->limit == 0 ? KV_SCAN_LIMIT_DEFAULT : req->limit;
    return kv_check_consistency(req->consistency, msg, msg_size);
}

Basalt__V1__Consistency kv_effective_consistency(Basalt__V1__Consistency c) {
    return c == BASALT__V1__CONSISTENCY__CONSISTENCY_UNSPECIFIED
               ? BASALT__V1__CONSISTENCY__CONSISTENCY_STRONG
               : c;
}
