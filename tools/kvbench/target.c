/* target: Basalt's and etcd's APIs behind one set of calls. */
#include "tools/kvbench/target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basalt/v1/kv.pb-c.h"
#include "etcd/v3/kv.pb-c.h"
#include "runtime/error.h"
#include "runtime/parse.h"

struct target {
    target_kind kind;
    int n_conns;
    rpc_channel *conns[TARGET_CONNS_MAX];
};

static const char *const target_schemes[] = {
    [TARGET_BASALT] = "basalt",
    [TARGET_ETCD] = "etcd",
};

const char *target_kind_name(target_kind kind) {
    return target_schemes[kind];
}

target_kind target_kind_of(const target *t) {
    return t->kind;
}

/* ---- opening ---- */

/* Splits "a,b,c" into endpoints, each HOST:PORT; the count, or -1. */
static int target_split_endpoints(char *list, char **out, char *why, size_t why_size) {
    int n = 0;

    for (char *save = NULL, *e = strtok_r(list, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        if (n == TARGET_ENDPOINTS_MAX) {
            snprintf(why, why_size, "more than %d endpoints", TARGET_ENDPOINTS_MAX);
            return -1;
        }
        if (!parse_host_port(e, 1)) {
            snprintf(why, why_size, "'%s' is not HOST:PORT with a port from 1 to %d", e,
                     PARSE_PORT_MAX);
            return -1;
        }
        out[n++] = e;
    }
    if (n == 0)
        snprintf(why, why_size, "no endpoint after the scheme");
    return n > 0 ? n : -1;
}

static int target_parse_scheme(const char *spec, target_kind *kind, const char **rest) {
    for (size_t k = 0; k < sizeof(target_schemes) / sizeof(target_schemes[0]); k++) {
        size_t len = strlen(target_schemes[k]);
        if (strncmp(spec, target_schemes[k], len) == 0 && strncmp(spec + len, "://", 3) == 0) {
            *kind = (target_kind)k;
            *rest = spec + len + 3;
            return 0;
        }
    }
    return -1;
}

target *target_open(const char *spec, int conns, char *why, size_t why_size) {
    char *endpoints[TARGET_ENDPOINTS_MAX];
    target_kind kind;
    const char *rest;

    if (target_parse_scheme(spec, &kind, &rest) != 0) {
        snprintf(why, why_size, "'%s' is not basalt://HOST:PORT[,...] or etcd://HOST:PORT[,...]",
                 spec);
        return NULL;
    }
    if (conns < 1 || conns > TARGET_CONNS_MAX) {
        snprintf(why, why_size, "connections must be from 1 to %d", TARGET_CONNS_MAX);
        return NULL;
    }
    char *list = strdup(rest);
    target *t = calloc(1, sizeof(*t));
    int n = list && t ? target_split_endpoints(list, endpoints, why, why_size) : -1;
    if (list == NULL || t == NULL)
        snprintf(why, why_size, "out of memory");
    for (int i = 0; n > 0 && i < conns; i++) {
        if ((t->conns[i] = rpc_channel_open(endpoints[i % n])) == NULL) {
            snprintf(why, why_size, "out of memory");
            n = -1;
            break;
        }
        t->n_conns++;
    }
    free(list);
    if (n < 0) {
        target_close(t);
        return NULL;
    }
    t->kind = kind;
    return t;
}

void target_close(target *t) {
    if (t == NULL)
        return;
    for (int i = 0; i < t->n_conns; i++)
        rpc_channel_close(t->conns[i]);
    free(t);
}

/* ---- answers ---- */

/* Hands the result to the caller and frees the response. */
static void target_finish(target_call *call, const rpc_status *status, ProtobufCMessage *response,
                          bool found, uint32_t records) {
    target_result result = {
        .code = status->code, .message = status->message, .found = found, .records = records};

    call->cb(call->ctx, &result);
    if (response != NULL)
        protobuf_c_message_free_unpacked(response, NULL);
}

static void basalt_get_cb(void *ctx, int rc, ProtobufCMessage *response, const rpc_status *status,
                          const rpc_trailers *trailers) {
    const Basalt__V1__GetResponse *r = (const void *)response;
    (void)trailers;
    target_finish(ctx, status, response, rc == 0 && r->found, rc == 0 && r->found);
}

static void basalt_scan_cb(void *ctx, int rc, ProtobufCMessage *response, const rpc_status *status,
                           const rpc_trailers *trailers) {
    const Basalt__V1__ScanResponse *r = (const void *)response;
    (void)trailers;
    target_finish(ctx, status, response, rc == 0 && r->n_kvs > 0, rc == 0 ? (uint32_t)r->n_kvs : 0);
}

static void etcd_range_cb(void *ctx, int rc, ProtobufCMessage *response, const rpc_status *status,
                          const rpc_trailers *trailers) {
    const Etcdserverpb__RangeResponse *r = (const void *)response;
    (void)trailers;
    target_finish(ctx, status, response, rc == 0 && r->n_kvs > 0, rc == 0 ? (uint32_t)r->n_kvs : 0);
}

static void target_write_cb(void *ctx, int rc, ProtobufCMessage *response, const rpc_status *status,
                            const rpc_trailers *trailers) {
    (void)rc;
    (void)trailers;
    target_finish(ctx, status, response, false, 0);
}

/* ---- calls ---- */

static rpc_channel *target_conn(const target_call *call, int conn) {
    return call->target->conns[conn % call->target->n_conns];
}

int target_read(target_call *call, rpc_async_pool *pool, int conn, const uint8_t *key,
                size_t key_len, bool eventual, int64_t timeout_ms) {
    ProtobufCBinaryData k = {key_len, (uint8_t *)key};

    if (call->target->kind == TARGET_ETCD) {
        Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
        req.key = k;
        req.serializable = eventual;
        return rpc_async_unary(pool, target_conn(call, conn), "/etcdserverpb.KV/Range", &req.base,
                               &etcdserverpb__range_response__descriptor, timeout_ms, etcd_range_cb,
                               call);
    }
    Basalt__V1__GetRequest req = BASALT__V1__GET_REQUEST__INIT;
    req.key = k;
    req.consistency = eventual ? BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL
                               : BASALT__V1__CONSISTENCY__CONSISTENCY_STRONG;
    return rpc_async_unary(pool, target_conn(call, conn), "/basalt.v1.KV/Get", &req.base,
                           &basalt__v1__get_response__descriptor, timeout_ms, basalt_get_cb, call);
}

int target_write(target_call *call, rpc_async_pool *pool, int conn, const uint8_t *key,
                 size_t key_len, const uint8_t *value, size_t value_len, int64_t timeout_ms) {
    ProtobufCBinaryData k = {key_len, (uint8_t *)key}, v = {value_len, (uint8_t *)value};

    if (call->target->kind == TARGET_ETCD) {
        Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
        req.key = k;
        req.value = v;
        return rpc_async_unary(pool, target_conn(call, conn), "/etcdserverpb.KV/Put", &req.base,
                               &etcdserverpb__put_response__descriptor, timeout_ms, target_write_cb,
                               call);
    }
    Basalt__V1__PutRequest req = BASALT__V1__PUT_REQUEST__INIT;
    req.key = k;
    req.value = v;
    return rpc_async_unary(pool, target_conn(call, conn), "/basalt.v1.KV/Put", &req.base,
                           &basalt__v1__put_response__descriptor, timeout_ms, target_write_cb,
                           call);
}

int target_scan(target_call *call, rpc_async_pool *pool, int conn, const uint8_t *start,
                size_t start_len, uint32_t count, bool eventual, int64_t timeout_ms) {
    ProtobufCBinaryData s = {start_len, (uint8_t *)start};

    if (call->target->kind == TARGET_ETCD) {
        static uint8_t to_the_end = 0; /* range_end "\0": every key from key on */
        Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
        req.key = s;
        req.range_end = (ProtobufCBinaryData){1, &to_the_end};
        req.limit = count;
        req.serializable = eventual;
        return rpc_async_unary(pool, target_conn(call, conn), "/etcdserverpb.KV/Range", &req.base,
                               &etcdserverpb__range_response__descriptor, timeout_ms, etcd_range_cb,
                               call);
    }
    Basalt__V1__ScanRequest req = BASALT__V1__SCAN_REQUEST__INIT;
    req.start = s;
    req.limit = count;
    req.consistency = eventual ? BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL
                               : BASALT__V1__CONSISTENCY__CONSISTENCY_STRONG;
    return rpc_async_unary(pool, target_conn(call, conn), "/basalt.v1.KV/Scan", &req.base,
                           &basalt__v1__scan_response__descriptor, timeout_ms, basalt_scan_cb,
                           call);
}
