/* proxy: forwarding KV calls to kvnodes.
 *
 * Life of a call (a proxy_op):
 *   1. route: find the shard of the key (for scans, of the current start)
 *      and pick a node; with no shard known yet, wait and retry;
 *   2. send asynchronously (rpc_async) with the caller's remaining deadline;
 *   3. on the answer: success is passed back (scans continue into the next
 *      shard until the limit); a refusal that proves nothing was done
 *      (basalt-error not-leader / no-leader / key-not-here, or a node that
 *      could not be reached) goes back to 1, at once or after
 *      PROXY_RETRY_DELAY_MS; anything else, an unknown write outcome
 *      included, goes back to the caller as it is.
 * Delayed retries wait in a list served by one timer thread.
 */
#include "router/proxy.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basalt/v1/kv.pb-c.h"
#include "runtime/async_timer.h"
#include "runtime/error.h"
#include "runtime/kv_limits.h"
#include "runtime/log.h"
#include "runtime/rpc_async.h"

typedef enum { PROXY_PUT, PROXY_GET, PROXY_DELETE, PROXY_SCAN } proxy_kind;

struct proxy {
    router_state *state;
    rpc_async_pool *pool;
    async_timer *timer;
    _Atomic uint64_t spread;      /* spreads eventual reads over replicas */
    char zone[ROUTER_ZONE_BYTES]; /* the router's own zone label; may be empty */
};

typedef struct {
    proxy *px;
    rpc_call *call;
    const ProtobufCMessage *req;
    proxy_kind kind;
    int attempts;
    uint64_t deadline_ms;
    /* Nodes that could not be reached during this call: tried last. */
    uint64_t avoid[PROXY_AVOID_MAX];
    int n_avoid;
    /* A leader named by a node for a shard the map does not know yet (a
     * split just made it): the next attempt goes there. */
    uint64_t hinted_node;
    /* Scans: where the next piece starts, and what came back so far. */
    uint8_t *next_start;
    size_t next_start_len;
    Basalt__V1__KeyValue **kvs;
    size_t n_kvs;
    size_t bytes;
    Basalt__V1__ReadInfo info;
} proxy_op;

static const char *const proxy_paths[] = {
    [PROXY_PUT] = "/basalt.v1.KV/Put",
    [PROXY_GET] = "/basalt.v1.KV/Get",
    [PROXY_DELETE] = "/basalt.v1.KV/Delete",
    [PROXY_SCAN] = "/basalt.v1.KV/Scan",
};

static const ProtobufCMessageDescriptor *const proxy_responses[] = {
    [PROXY_PUT] = &basalt__v1__put_response__descriptor,
    [PROXY_GET] = &basalt__v1__get_response__descriptor,
    [PROXY_DELETE] = &basalt__v1__delete_response__descriptor,
    [PROXY_SCAN] = &basalt__v1__scan_response__descriptor,
};

static void proxy_send(proxy_op *op);

static void proxy_op_free(proxy_op *op) {
    for (size_t i = 0; i < op->n_kvs; i++)
        protobuf_c_message_free_unpacked(&op->kvs[i]->base, NULL);
    free(op->kvs);
    free(op->next_start);
    free(op);
}

static bool proxy_is_read(const proxy_op *op) {
    return op->kind == PROXY_GET || op->kind == PROXY_SCAN;
}

static bool proxy_is_eventual(const proxy_op *op) {
    Basalt__V1__Consistency c =
        op->kind == PROXY_GET ? ((const Basalt__V1__GetRequest *)(const void *)op->req)->consistency
        : op->kind == PROXY_SCAN
            ? ((const Basalt__V1__ScanRequest *)(const void *)op->req)->consistency
            : BASALT__V1__CONSISTENCY__CONSISTENCY_STRONG;
    return c == BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL;
}

/* The key that picks the shard. */
static ProtobufCBinaryData proxy_route_key(const proxy_op *op) {
    switch (op->kind) {
    case PROXY_PUT:
        return ((const Basalt__V1__PutRequest *)(const void *)op->req)->key;
    case PROXY_GET:
        return ((const Basalt__V1__GetRequest *)(const void *)op->req)->key;
    case PROXY_DELETE:
        return ((const Basalt__V1__DeleteRequest *)(const void *)op->req)->key;
    default:
        return (ProtobufCBinaryData){op->next_start_len, op->next_start};
    }
}

static bool proxy_avoided(const proxy_op *op, uint64_t node) {
    for (int i = 0; i < op->n_avoid; i++) {
        if (op->avoid[i] == node)
            return true;
    }
    return false;
}

static bool proxy_usable(proxy_op *op, uint64_t node) {
    return node != 0 && !proxy_avoided(op, node) && router_node_may_be_up(op->px->state, node);
}

/* For an eventual read: the followers that are up, in turn, so the leader
 * keeps its capacity for writes; among them, those in the router's own zone
 * when there are any (a read that stays in the zone is faster and cheaper).
 * Returns 0 when no follower is usable. */
static uint64_t proxy_pick_follower(proxy_op *op, const router_route *route) {
    uint64_t local[ROUTER_REPLICAS_MAX], remote[ROUTER_REPLICAS_MAX];
    int n_local = 0, n_remote = 0;

    for (int i = 0; i < route->n_replicas; i++) {
        uint64_t node = route->replica_nodes[i];
        if (node == route->leader_node || !proxy_usable(op, node))
            continue;
        if (router_node_in_zone(op->px->state, node, op->px->zone))
            local[n_local++] = node;
        else
            remote[n_remote++] = node;
    }
    uint64_t turn = atomic_fetch_add(&op->px->spread, 1);
    if (n_local > 0)
        return local[turn % (uint64_t)n_local];
    if (n_remote > 0)
        return remote[turn % (uint64_t)n_remote];
    return 0;
}

/* Leader for writes and strong reads (any replica when none is known: it
 * names the leader); a follower for eventual reads, else the leader. Nodes
 * known to be down, or that this call could not reach, come last. */
static uint64_t proxy_pick_node(proxy_op *op, const router_route *route) {
    if (proxy_is_eventual(op)) {
        uint64_t follower = proxy_pick_follower(op, route);
        if (follower != 0)
            return follower;
    }
    if (proxy_usable(op, route->leader_node))
        return route->leader_node;
    uint64_t turn = atomic_fetch_add(&op->px->spread, 1);
    for (int i = 0; i < route->n_replicas; i++) {
        uint64_t node = route->replica_nodes[(turn + (uint64_t)i) % (uint64_t)route->n_replicas];
        if (proxy_usable(op, node))
            return node;
    }
    return route->n_replicas ? route->replica_nodes[turn % (uint64_t)route->n_replicas] : 0;
}

static void proxy_fail(proxy_op *op, grpc_status_code code, const char *message) {
    rpc_call_fail(op->call, code, "%s", message);
    proxy_op_free(op);
}

static void proxy_retry_cb(void *ctx) {
    proxy_send(ctx);
}

/* Tries again, at once or after a pause, within the attempt and deadline
 * bounds; otherwise answers with the last error. */
static void proxy_retry(proxy_op *op, bool pause, grpc_status_code code, const char *why) {
    uint64_t now = router_now_ms();

    /* Hints can chase each other while an election settles: after a few
     * quick tries, pause between them. */
    if (op->attempts >= PROXY_QUICK_RETRIES_MAX)
        pause = true;
    if (++op->attempts >= PROXY_ATTEMPTS_MAX ||
        now + (pause ? PROXY_RETRY_DELAY_MS : 0) >= op->deadline_ms) {
        proxy_fail(op, code, why);
        return;
    }
    if (pause && async_timer_after(op->px->timer, PROXY_RETRY_DELAY_MS, proxy_retry_cb, op) == 0)
        return;
    proxy_send(op);
}

/* ---- answers ---- */

/* Takes one shard's scan answer; returns true when the scan is complete. */
static bool proxy_scan_take(proxy_op *op, Basalt__V1__ScanResponse *resp, bool *more) {
    const Basalt__V1__ScanRequest *req = (const void *)op->req;
    uint32_t limit = req->limit ? req->limit : 1000;

    for (size_t i = 0; i < resp->n_kvs; i++) {
        op->bytes += resp->kvs[i]->key.len + resp->kvs[i]->value.len;
        op->kvs[op->n_kvs++] = resp->kvs[i];
        resp->kvs[i] = NULL; /* moved */
    }
    resp->n_kvs = 0;
    if (resp->info) {
        op->info.shard_id = resp->info->shard_id;
        op->info.node_id = resp->info->node_id;
        op->info.applied_index = resp->info->applied_index;
    }
    *more = resp->more;
    if (resp->more) {
        /* Where the rest starts, as the node says: its word beats the map's,
         * which may predate a split. */
        free(op->next_start);
        op->next_start_len = resp->next_start.len;
        op->next_start = resp->next_start.len > 0 ? resp->next_start.data : NULL;
        resp->next_start = (ProtobufCBinaryData){0, NULL}; /* moved */
    }
    return !resp->more || op->next_start == NULL || op->n_kvs >= limit ||
           op->bytes >= PROXY_SCAN_BYTES_MAX;
}

static void proxy_reply_scan(proxy_op *op, bool more) {
    Basalt__V1__ScanResponse resp = BASALT__V1__SCAN_RESPONSE__INIT;
    resp.kvs = op->kvs;
    resp.n_kvs = op->n_kvs;
    resp.more = more;
    if (more)
        resp.next_start = (ProtobufCBinaryData){op->next_start_len, op->next_start};
    resp.info = &op->info;
    rpc_call_reply(op->call, &resp.base);
    proxy_op_free(op);
}

typedef struct {
    proxy_op *op;
    router_route route;
    uint64_t node; /* where this attempt went */
} proxy_flight;

static bool proxy_unreachable(const rpc_status *st) {
    return strstr(st->message, "failed to connect") != NULL ||
           strstr(st->message, "Connection refused") != NULL;
}

/* Whether the error proves the node did nothing, so trying again is safe;
 * *pause says whether to wait first (nobody leads yet, or a node is down). */
static bool proxy_may_retry(proxy_op *op, const proxy_flight *f, int rc, const rpc_status *st,
                            const rpc_trailers *t, bool *pause) {
    const char *kind = rpc_trailer(t, "basalt-error");
    const char *leader = rpc_trailer(t, "basalt-leader-node");

    *pause = true;
    if (kind != NULL && strcmp(kind, "not-ready") == 0) {
        /* That replica has no data yet: any other can answer. */
        if (op->n_avoid < PROXY_AVOID_MAX && !proxy_avoided(op, f->node))
            op->avoid[op->n_avoid++] = f->node;
        *pause = false;
        return true;
    }
    if (kind != NULL) {
        /* A fresh leader hint is worth trying at once; a hint naming a node
         * we could not reach means the election is not over. */
        if ((strcmp(kind, "not-leader") == 0 || strcmp(kind, "key-not-here") == 0) &&
            leader != NULL && !proxy_avoided(op, strtoull(leader, NULL, 10)))
            *pause = false;
        return true;
    }
    if (rc == BS_ERR_DEADLINE_EXCEEDED && proxy_is_eventual(op) &&
        router_now_ms() < op->deadline_ms) {
        /* Only this attempt's share of the time ran out: ask another replica. */
        if (op->n_avoid < PROXY_AVOID_MAX && !proxy_avoided(op, f->node))
            op->avoid[op->n_avoid++] = f->node;
        *pause = false;
        return true;
    }
    if (rc != BS_ERR_UNAVAILABLE)
        return false;
    if (proxy_unreachable(st) && op->n_avoid < PROXY_AVOID_MAX && !proxy_avoided(op, f->node))
        op->avoid[op->n_avoid++] = f->node;
    /* Reads may always be repeated; writes only when never delivered. */
    return proxy_is_read(op) || proxy_unreachable(st);
}

static void proxy_answer_cb(void *ctx, int rc, ProtobufCMessage *response, const rpc_status *st,
                            const rpc_trailers *t) {
    proxy_flight *f = ctx;
    proxy_op *op = f->op;
    bool pause, more;

    if (rc == 0 && op->kind == PROXY_SCAN) {
        bool done = proxy_scan_take(op, (Basalt__V1__ScanResponse *)response, &more);
        uint64_t node = f->node;
        protobuf_c_message_free_unpacked(response, NULL);
        free(f);
        if (more && op->next_start == NULL) {
            char message[128];
            snprintf(message, sizeof(message),
                     "scan: node %llu said the range goes on but not where",
                     (unsigned long long)node);
            proxy_fail(op, GRPC_STATUS_INTERNAL, message);
        } else if (done)
            proxy_reply_scan(op, more);
        else
            proxy_send(op);
        return;
    }
    if (rc == 0) {
        rpc_call_reply(op->call, response);
        protobuf_c_message_free_unpacked(response, NULL);
        proxy_op_free(op);
        free(f);
        return;
    }
    const char *leader = rpc_trailer(t, "basalt-leader-node");
    const char *shard = rpc_trailer(t, "basalt-shard-id");
    if (leader != NULL && shard != NULL && strtoull(shard, NULL, 10) != f->route.shard_id)
        op->hinted_node = strtoull(leader, NULL, 10);
    else if (leader != NULL)
        router_set_leader(op->px->state, f->route.shard_id, strtoull(leader, NULL, 10));
    bool retry = proxy_may_retry(op, f, rc, st, t, &pause);
    uint64_t node = f->node;
    free(f);
    if (retry) {
        proxy_retry(op, pause, st->code, st->message);
    } else if (!proxy_is_read(op) && rc == BS_ERR_UNAVAILABLE &&
               rpc_trailer(t, "basalt-error") == NULL && !strstr(st->message, "unknown")) {
        /* The connection broke with the write delivered: say so plainly. */
        char message[RPC_STATUS_MESSAGE_BYTES];
        snprintf(message, sizeof(message),
                 "node %llu failed while handling the write: its outcome is unknown (%.200s)",
                 (unsigned long long)node, st->message);
        proxy_fail(op, st->code, message);
    } else {
        proxy_fail(op, st->code, st->message);
    }
}

/* ---- sending ---- */

static const ProtobufCMessage *proxy_request_for(proxy_op *op, Basalt__V1__ScanRequest *scan) {
    if (op->kind != PROXY_SCAN)
        return op->req;
    const Basalt__V1__ScanRequest *req = (const void *)op->req;
    uint32_t limit = req->limit ? req->limit : 1000;
    *scan = *req;
    scan->start = (ProtobufCBinaryData){op->next_start_len, op->next_start};
    scan->limit = limit - (uint32_t)op->n_kvs;
    return &scan->base;
}

/* The time one attempt may take: what is left of the caller's deadline, or
 * for an eventual read a share of it (another replica can answer). */
static int64_t proxy_attempt_ms(const proxy_op *op, uint64_t now) {
    uint64_t left = op->deadline_ms - now;

    if (proxy_is_eventual(op) && left / 2 > 0) {
        uint64_t share = left / 2;
        return (int64_t)(share < PROXY_EVENTUAL_ATTEMPT_MS ? share : PROXY_EVENTUAL_ATTEMPT_MS);
    }
    return (int64_t)left;
}

static void proxy_send(proxy_op *op) {
    ProtobufCBinaryData key = proxy_route_key(op);
    proxy_flight *f = calloc(1, sizeof(*f));
    Basalt__V1__ScanRequest scan;

    if (f == NULL) {
        proxy_fail(op, GRPC_STATUS_RESOURCE_EXHAUSTED, "router out of memory");
        return;
    }
    f->op = op;
    if (!router_route_key(op->px->state, key.data, key.len, &f->route)) {
        free(f);
        proxy_retry(op, true, GRPC_STATUS_UNAVAILABLE,
                    "no shard is known for this key yet (the cluster is starting or the router "
                    "restarted); retry");
        return;
    }
    uint64_t node = proxy_pick_node(op, &f->route);
    if (op->hinted_node != 0 && proxy_usable(op, op->hinted_node))
        node = op->hinted_node;
    op->hinted_node = 0;
    f->node = node;
    rpc_channel *ch = node ? router_node_channel(op->px->state, node) : NULL;
    uint64_t now = router_now_ms();
    if (ch == NULL || now >= op->deadline_ms) {
        free(f);
        proxy_retry(op, true, GRPC_STATUS_UNAVAILABLE, "no replica of the shard can be reached");
        return;
    }
    if (rpc_async_unary(op->px->pool, ch, proxy_paths[op->kind], proxy_request_for(op, &scan),
                        proxy_responses[op->kind], proxy_attempt_ms(op, now), proxy_answer_cb,
                        f) != 0) {
        free(f);
        proxy_fail(op, GRPC_STATUS_RESOURCE_EXHAUSTED, "router out of memory");
    }
}

/* ---- the service ---- */

static uint64_t proxy_deadline(rpc_call *call) {
    gpr_timespec d = gpr_convert_clock_type(rpc_call_deadline(call), GPR_CLOCK_MONOTONIC);
    if (gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0)
        return router_now_ms() + PROXY_DEFAULT_TIMEOUT_MS;
    gpr_timespec left = gpr_time_sub(d, gpr_now(GPR_CLOCK_MONOTONIC));
    int64_t ms = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
    return router_now_ms() + (ms > 0 ? (uint64_t)ms : 0);
}

/* The router checks every limit itself: a bad request never leaves it. */
static int proxy_check(proxy_kind kind, const ProtobufCMessage *req, char *msg, size_t size) {
    uint32_t limit;

    switch (kind) {
    case PROXY_PUT:
        return kv_check_put((const void *)req, msg, size);
    case PROXY_GET:
        return kv_check_get((const void *)req, msg, size);
    case PROXY_DELETE:
        return kv_check_delete((const void *)req, msg, size);
    default:
        return kv_check_scan((const void *)req, &limit, msg, size);
    }
}

static void proxy_start(proxy *px, proxy_kind kind, rpc_call *call, const ProtobufCMessage *req) {
    char msg[KV_ERROR_MESSAGE_BYTES];
    proxy_op *op;

    if (proxy_check(kind, req, msg, sizeof(msg)) != 0) {
        rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", msg);
        return;
    }
    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "router out of memory");
        return;
    }
    op->px = px;
    op->call = call;
    op->req = req;
    op->kind = kind;
    op->deadline_ms = proxy_deadline(call);
    basalt__v1__read_info__init(&op->info);
    if (kind == PROXY_SCAN) {
        const Basalt__V1__ScanRequest *scan = (const void *)req;
        uint32_t limit = scan->limit ? scan->limit : 1000;
        op->kvs = calloc(limit, sizeof(*op->kvs));
        op->next_start_len = scan->start.len;
        op->next_start = malloc(scan->start.len ? scan->start.len : 1);
        if (op->kvs == NULL || op->next_start == NULL) {
            proxy_fail(op, GRPC_STATUS_RESOURCE_EXHAUSTED, "router out of memory");
            return;
        }
        memcpy(op->next_start, scan->start.data, scan->start.len);
    }
    proxy_send(op);
}

#define PROXY_HANDLER(name, kind)                                                                  \
    static void name(rpc_call *call, const ProtobufCMessage *request, void *ctx) {                 \
        proxy_start(ctx, kind, call, request);                                                     \
    }
PROXY_HANDLER(proxy_put, PROXY_PUT)
PROXY_HANDLER(proxy_get, PROXY_GET)
PROXY_HANDLER(proxy_delete, PROXY_DELETE)
PROXY_HANDLER(proxy_scan, PROXY_SCAN)

int proxy_register(rpc_server *server, proxy *px) {
    static const struct {
        const char *path;
        const ProtobufCMessageDescriptor *request;
        rpc_handler_cb handler;
    } methods[] = {
        {"/basalt.v1.KV/Put", &basalt__v1__put_request__descriptor, proxy_put},
        {"/basalt.v1.KV/Get", &basalt__v1__get_request__descriptor, proxy_get},
        {"/basalt.v1.KV/Delete", &basalt__v1__delete_request__descriptor, proxy_delete},
        {"/basalt.v1.KV/Scan", &basalt__v1__scan_request__descriptor, proxy_scan},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        int rc = rpc_server_add_method(server, methods[i].path, methods[i].request,
                                       methods[i].handler, px);
        if (rc != 0)
            return rc;
    }
    return 0;
}

proxy *proxy_create(router_state *state, const char *zone) {
    proxy *px = calloc(1, sizeof(*px));

    if (px == NULL)
        return NULL;
    px->state = state;
    snprintf(px->zone, sizeof(px->zone), "%s", zone);
    px->pool = rpc_async_pool_create();
    px->timer = async_timer_create();
    if (px->pool == NULL || px->timer == NULL) {
        proxy_destroy(px);
        return NULL;
    }
    return px;
}

void proxy_destroy(proxy *px) {
    if (px == NULL)
        return;
    /* The timer first: waiting retries run now, and fail fast or are sent. */
    async_timer_destroy(px->timer);
    rpc_async_pool_destroy(px->pool);
    free(px);
}
