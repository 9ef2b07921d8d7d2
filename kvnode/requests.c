/* requests: the public API's writes and reads, inside the Raft loop.
 *
 * Writes: the shard's leader checks the request, proposes it, and answers
 * once its own entry is applied (apply.c marks it). A write whose entry was
 * replaced, or whose leader lost leadership first, is answered UNAVAILABLE
 * saying its outcome is unknown: it may or may not have committed.
 * Strong reads: the leader asks Raft for a ReadIndex, waits until its
 * applied index reaches it, then reads locally: linearizable.
 * Eventual reads: served at once from the local state of any replica.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvnode/node.h"
#include "runtime/error.h"
#include "runtime/kv_limits.h"
#include "runtime/log.h"

/* Trailing metadata of typed errors. basalt-error names the kind, so a
 * router knows what it may retry: "not-leader", "no-leader" and "not-taken"
 * were refused before anything was proposed; "not-applied" was proposed but
 * can never commit; "key-not-here" means its shard map is stale; "not-ready"
 * that this replica has no data yet (ask another). */
#define NODE_TRAILER_ERROR          "basalt-error"
#define NODE_TRAILER_LEADER_NODE    "basalt-leader-node"
#define NODE_TRAILER_LEADER_ADDRESS "basalt-leader-address"
#define NODE_TRAILER_SHARD          "basalt-shard-id"
/* A scan response stops growing once its pairs reach this many bytes (and
 * says `more`), so it stays under gRPC's default 4 MiB message limit. */
#define NODE_SCAN_RESPONSE_BYTES_MAX (2 * 1024 * 1024)

static void node_answer(node_in *in) {
    free(in);
}

/* Makes room for one more element in a pending array (growing by doubling,
 * up to NODE_PENDING_MAX). Returns false when it cannot. */
static bool node_pending_room(void **items, size_t count, size_t *cap, size_t size) {
    if (count < *cap)
        return true;
    if (count >= NODE_PENDING_MAX)
        return false;
    size_t new_cap = *cap ? *cap * 2 : 16;
    if (new_cap > NODE_PENDING_MAX)
        new_cap = NODE_PENDING_MAX;
    void *p = realloc(*items, new_cap * size);
    if (p == NULL)
        return false;
    *items = p;
    *cap = new_cap;
    return true;
}

/* Names r's shard and, when known, the node leading it in the call's
 * trailers; returns that node (0: none known). */
static uint64_t node_add_leader_trailers(node_replica *r, rpc_call *call) {
    raft_id_t leader = raft_leader(r->raft);
    uint64_t leader_node = leader ? node_of_replica(r, leader) : 0;
    char buf[32];

    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->shard_id);
    rpc_call_add_trailer(call, NODE_TRAILER_SHARD, buf);
    if (leader_node != 0) {
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)leader_node);
        rpc_call_add_trailer(call, NODE_TRAILER_LEADER_NODE, buf);
    }
    return leader_node;
}

void node_fail_not_leader(node *n, node_replica *r, rpc_call *call) {
    uint64_t leader_node = node_add_leader_trailers(r, call);
    const char *address = leader_node ? node_peer_address(n, leader_node) : NULL;

    rpc_call_add_trailer(call, NODE_TRAILER_ERROR, leader_node ? "not-leader" : "no-leader");
    if (leader_node != 0) {
        if (address != NULL)
            rpc_call_add_trailer(call, NODE_TRAILER_LEADER_ADDRESS, address);
        rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE,
                      "not the leader of shard %llu: node %llu (%s) is",
                      (unsigned long long)r->shard_id, (unsigned long long)leader_node,
                      address ? address : "address unknown");
    } else {
        rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE,
                      "shard %llu has no leader right now (election in progress); retry",
                      (unsigned long long)r->shard_id);
    }
}

void node_fail_key_not_here(node *n, rpc_call *call, ProtobufCBinaryData key) {
    node_replica *now = node_replica_by_key(n, key.data, key.len);

    rpc_call_add_trailer(call, NODE_TRAILER_ERROR, "key-not-here");
    /* A split gave the key to a shard hosted here: name its leader, so the
     * router goes there before its map catches up. */
    if (now != NULL)
        node_add_leader_trailers(now, call);
    rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                  "no shard on node %llu holds this key (now): the shard map used is stale",
                  (unsigned long long)n->id);
}

static node_replica *node_route(node *n, node_in *in, const uint8_t *key, size_t key_len) {
    node_replica *r = node_replica_by_key(n, key, key_len);

    if (r == NULL) {
        node_fail_key_not_here(n, in->call, (ProtobufCBinaryData){key_len, (uint8_t *)key});
        node_answer(in);
    }
    return r;
}

/* ---- writes ---- */

static int node_check_write(node *n, node_in *in, ProtobufCBinaryData *key,
                            ProtobufCBinaryData *value, Basalt__V1__KvCommand__Op *op) {
    char msg[KV_ERROR_MESSAGE_BYTES];
    int rc;

    if (in->kind == NODE_IN_PUT) {
        const Basalt__V1__PutRequest *req = (const void *)in->request;
        rc = kv_check_put(req, msg, sizeof(msg));
        *key = req->key;
        *value = req->value;
        *op = BASALT__V1__KV_COMMAND__OP__OP_PUT;
    } else {
        const Basalt__V1__DeleteRequest *req = (const void *)in->request;
        rc = kv_check_delete(req, msg, sizeof(msg));
        *key = req->key;
        value->len = 0;
        value->data = NULL;
        *op = BASALT__V1__KV_COMMAND__OP__OP_DELETE;
    }
    if (rc != 0) {
        rpc_call_fail(in->call, GRPC_STATUS_INVALID_ARGUMENT, "%s", msg);
        return rc;
    }
    rc = kvs_check_space(n->store, key->len + value->len,
                         *op == BASALT__V1__KV_COMMAND__OP__OP_PUT ? 100 : 50);
    if (rc != 0)
        rpc_call_fail(in->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      "the node's disk is nearly full (its reserve is kept free)");
    return rc;
}

static int node_propose(node_replica *r, Basalt__V1__KvCommand__Op op, ProtobufCBinaryData key,
                        ProtobufCBinaryData value, raft_index_t *index) {
    Basalt__V1__KvCommand cmd = BASALT__V1__KV_COMMAND__INIT;
    uint8_t *buf;
    int rc;

    cmd.op = op;
    cmd.key = key;
    cmd.value = value;
    size_t len = basalt__v1__kv_command__get_packed_size(&cmd);
    buf = malloc(len ? len : 1);
    if (buf == NULL)
        return RAFT_ERR_NOMEM;
    basalt__v1__kv_command__pack(&cmd, buf);
    rc = raft_propose(r->raft, buf, (uint32_t)len, index);
    free(buf);
    return rc;
}

void node_handle_write(node *n, node_in *in) {
    ProtobufCBinaryData key, value;
    Basalt__V1__KvCommand__Op op;
    raft_index_t index;
    node_replica *r;
    int rc;

    if (node_check_write(n, in, &key, &value, &op) != 0) {
        node_answer(in);
        return;
    }
    if ((r = node_route(n, in, key.data, key.len)) == NULL)
        return;
    if (raft_get_role(r->raft) != RAFT_LEADER) {
        node_fail_not_leader(n, r, in->call);
        node_answer(in);
        return;
    }
    r->requests++;
    if (!node_pending_room((void **)&r->writes, r->n_writes, &r->cap_writes, sizeof(*r->writes))) {
        rpc_call_fail(in->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      "shard %llu has %d writes waiting; retry later",
                      (unsigned long long)r->shard_id, NODE_PENDING_MAX);
        node_answer(in);
        return;
    }
    rc = node_propose(r, op, key, value, &index);
    if (rc == RAFT_ERR_PROPOSAL_DROPPED) {
        rpc_call_add_trailer(in->call, NODE_TRAILER_ERROR, "not-taken");
        rpc_call_fail(in->call, GRPC_STATUS_UNAVAILABLE,
                      "shard %llu did not take the write (its leadership is being handed over, "
                      "or too much is uncommitted): nothing was written; retry",
                      (unsigned long long)r->shard_id);
        node_answer(in);
        return;
    }
    if (rc != RAFT_OK) {
        rpc_call_fail(in->call, GRPC_STATUS_UNAVAILABLE, "shard %llu did not take the write: %s",
                      (unsigned long long)r->shard_id, raft_err_message(rc));
        node_answer(in);
        return;
    }
    node_track_write(r, index, in);
}

bool node_track_write(node_replica *r, raft_index_t index, node_in *in) {
    if (!node_pending_room((void **)&r->writes, r->n_writes, &r->cap_writes, sizeof(*r->writes)))
        return false;
    r->writes[r->n_writes++] =
        (node_pending_write){.index = index, .term = raft_term(r->raft), .in = in};
    return true;
}

static void node_reply_split(node *n, node_replica *r, node_in *in) {
    const Basalt__V1__SplitReplicaRequest *req = (const void *)in->request;
    Basalt__V1__SplitReplicaResponse resp = BASALT__V1__SPLIT_REPLICA_RESPONSE__INIT;
    node_replica *right = node_replica_by_shard(n, req->new_shard_id);

    resp.left = r->desc;
    resp.right = right ? right->desc : NULL;
    rpc_call_reply(in->call, &resp.base);
}

static ProtobufCBinaryData node_write_key(const node_in *in) {
    if (in->kind == NODE_IN_PUT)
        return ((const Basalt__V1__PutRequest *)(const void *)in->request)->key;
    return ((const Basalt__V1__DeleteRequest *)(const void *)in->request)->key;
}

static void node_reply_write(node *n, node_replica *r, node_pending_write *w) {
    node_in *in = w->in;

    if (w->result == NODE_APPLIED_KEY_MOVED) {
        node_fail_key_not_here(n, in->call, node_write_key(in));
    } else if (w->result == NODE_APPLIED_STALE_SPLIT) {
        rpc_call_fail(in->call, GRPC_STATUS_FAILED_PRECONDITION,
                      "shard %llu changed before the split applied: nothing was split",
                      (unsigned long long)r->shard_id);
    } else if (w->result == NODE_APPLIED_STALE_CONF) {
        rpc_call_fail(in->call, GRPC_STATUS_FAILED_PRECONDITION,
                      "shard %llu: its membership changed before the change applied: nothing "
                      "was changed",
                      (unsigned long long)r->shard_id);
    } else if (in->kind == NODE_IN_SPLIT) {
        node_reply_split(n, r, in);
    } else if (in->kind == NODE_IN_CHANGE_REPLICAS) {
        Basalt__V1__ChangeReplicasResponse resp = BASALT__V1__CHANGE_REPLICAS_RESPONSE__INIT;
        resp.descriptor = r->desc;
        rpc_call_reply(in->call, &resp.base);
    } else if (in->kind == NODE_IN_PUT) {
        Basalt__V1__PutResponse resp = BASALT__V1__PUT_RESPONSE__INIT;
        rpc_call_reply(in->call, &resp.base);
    } else {
        Basalt__V1__DeleteResponse resp = BASALT__V1__DELETE_RESPONSE__INIT;
        resp.deleted = w->existed;
        rpc_call_reply(in->call, &resp.base);
    }
    node_answer(in);
    w->in = NULL;
}

/* ---- reads ---- */

static void node_read_info(node *n, node_replica *r, Basalt__V1__ReadInfo *info) {
    basalt__v1__read_info__init(info);
    info->shard_id = r->shard_id;
    info->node_id = n->id;
    info->applied_index = rlog_applied(r->log);
}

static void node_serve_get(node *n, node_replica *r, node_in *in) {
    const Basalt__V1__GetRequest *req = (const void *)in->request;
    Basalt__V1__GetResponse resp = BASALT__V1__GET_RESPONSE__INIT;
    Basalt__V1__ReadInfo info;
    bool found;
    char *value;
    size_t len;

    node_read_info(n, r, &info);
    if (kvs_get(n->store, KVS_CF_DATA, req->key.data, req->key.len, &found, &value, &len) != 0) {
        rpc_call_fail(in->call, GRPC_STATUS_INTERNAL, "get: the store failed");
        return;
    }
    resp.found = found;
    resp.value.data = (uint8_t *)value;
    resp.value.len = len;
    resp.info = &info;
    rpc_call_reply(in->call, &resp.base);
    free(value);
}

typedef struct {
    Basalt__V1__KeyValue *pairs;
    Basalt__V1__KeyValue **pointers;
    size_t count;
    size_t bytes;
    bool cut_by_size;
} node_scan_result;

#define NODE_SCAN_FULL (-1)

static void *node_dup(const char *src, size_t len) {
    void *p = malloc(len ? len : 1);
    if (p != NULL)
        memcpy(p, src, len);
    return p;
}

static int node_scan_collect(const char *key, size_t key_len, const char *value, size_t value_len,
                             void *ctx) {
    node_scan_result *res = ctx;
    Basalt__V1__KeyValue *kv = &res->pairs[res->count];

    if (res->count > 0 && res->bytes + key_len + value_len > NODE_SCAN_RESPONSE_BYTES_MAX) {
        res->cut_by_size = true;
        return NODE_SCAN_FULL;
    }
    basalt__v1__key_value__init(kv);
    kv->key.data = node_dup(key, key_len);
    kv->value.data = node_dup(value, value_len);
    if (kv->key.data == NULL || kv->value.data == NULL) {
        free(kv->key.data);
        free(kv->value.data);
        return BS_ERR_NOMEM;
    }
    kv->key.len = key_len;
    kv->value.len = value_len;
    res->pointers[res->count++] = kv;
    res->bytes += key_len + value_len;
    return 0;
}

static void node_scan_result_free(node_scan_result *res) {
    for (size_t i = 0; i < res->count; i++) {
        free(res->pairs[i].key.data);
        free(res->pairs[i].value.data);
    }
    free(res->pairs);
    free(res->pointers);
}

/* The scan's end, cut at the shard's end: a scan never reads past its shard
 * (whose keys beyond are not this replica's to serve). */
static ProtobufCBinaryData node_scan_end(const Basalt__V1__ScanRequest *req, node_replica *r,
                                         bool *clipped) {
    ProtobufCBinaryData end = req->end, shard_end = r->desc->end;
    size_t n;

    *clipped = false;
    if (shard_end.len == 0)
        return end;
    n = end.len < shard_end.len ? end.len : shard_end.len;
    int c = n ? memcmp(end.data, shard_end.data, n) : 0;
    if (end.len == 0 || c > 0 || (c == 0 && end.len > shard_end.len)) {
        *clipped = true;
        return shard_end;
    }
    return end;
}

static void node_serve_scan(node *n, node_replica *r, node_in *in) {
    const Basalt__V1__ScanRequest *req = (const void *)in->request;
    Basalt__V1__ScanResponse resp = BASALT__V1__SCAN_RESPONSE__INIT;
    node_scan_result res = {0};
    Basalt__V1__ReadInfo info;
    uint32_t limit = req->limit ? req->limit : KV_SCAN_LIMIT_DEFAULT;
    bool more, clipped;
    ProtobufCBinaryData end = node_scan_end(req, r, &clipped);

    res.pairs = calloc(limit, sizeof(*res.pairs));
    res.pointers = calloc(limit, sizeof(*res.pointers));
    if (res.pairs == NULL || res.pointers == NULL) {
        node_scan_result_free(&res);
        rpc_call_fail(in->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "scan: node out of memory");
        return;
    }
    node_read_info(n, r, &info);
    int rc = kvs_scan(n->store, KVS_CF_DATA, req->start.data, req->start.len, end.data, end.len,
                      limit, node_scan_collect, &res, &more);
    if (rc != 0 && rc != NODE_SCAN_FULL) {
        node_scan_result_free(&res);
        rpc_call_fail(in->call, GRPC_STATUS_INTERNAL, "scan: the store failed");
        return;
    }
    resp.n_kvs = res.count;
    resp.kvs = res.pointers;
    resp.more = more || res.cut_by_size || clipped;
    resp.info = &info;
    uint8_t *next = NULL;
    if (more || res.cut_by_size) {
        /* Bounded by the limit or the size: on after the last key. */
        const Basalt__V1__KeyValue *last = res.pointers[res.count - 1];
        next = calloc(1, last->key.len + 1);
        if (next != NULL) {
            memcpy(next, last->key.data, last->key.len);
            resp.next_start = (ProtobufCBinaryData){last->key.len + 1, next};
        }
    } else if (clipped) {
        resp.next_start = end; /* the shard's end: the next shard goes on */
    }
    rpc_call_reply(in->call, &resp.base);
    free(next);
    node_scan_result_free(&res);
}

/* The key that placed a read in its shard. */
static ProtobufCBinaryData node_read_key(const node_in *in) {
    if (in->kind == NODE_IN_GET)
        return ((const Basalt__V1__GetRequest *)(const void *)in->request)->key;
    return ((const Basalt__V1__ScanRequest *)(const void *)in->request)->start;
}

static void node_serve_read(node *n, node_replica *r, node_in *in) {
    ProtobufCBinaryData key = node_read_key(in);

    r->requests++;
    /* A strong read waits for apply; a split applied meanwhile may have
     * given its key to another shard. */
    if (!node_desc_contains(r->desc, key.data, key.len))
        node_fail_key_not_here(n, in->call, key);
    else if (in->kind == NODE_IN_GET)
        node_serve_get(n, r, in);
    else
        node_serve_scan(n, r, in);
    node_answer(in);
}

static int node_check_read(node_in *in, const uint8_t **key, size_t *key_len,
                           Basalt__V1__Consistency *level) {
    char msg[KV_ERROR_MESSAGE_BYTES];
    int rc;

    if (in->kind == NODE_IN_GET) {
        const Basalt__V1__GetRequest *req = (const void *)in->request;
        rc = kv_check_get(req, msg, sizeof(msg));
        *key = req->key.data;
        *key_len = req->key.len;
        *level = kv_effective_consistency(req->consistency);
    } else {
        const Basalt__V1__ScanRequest *req = (const void *)in->request;
        uint32_t limit;
        rc = kv_check_scan(req, &limit, msg, sizeof(msg));
        *key = req->start.data;
        *key_len = req->start.len;
        *level = kv_effective_consistency(req->consistency);
    }
    if (rc != 0)
        rpc_call_fail(in->call, GRPC_STATUS_INVALID_ARGUMENT, "%s", msg);
    return rc;
}

void node_handle_read(node *n, node_in *in) {
    Basalt__V1__Consistency level;
    const uint8_t *key;
    size_t key_len;
    node_replica *r;

    if (node_check_read(in, &key, &key_len, &level) != 0) {
        node_answer(in);
        return;
    }
    if ((r = node_route(n, in, key, key_len)) == NULL)
        return;
    if (level == BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL && rlog_applied(r->log) == 0) {
        /* Nothing applied yet: a replica waiting for its first snapshot (a
         * shard it missed being made) would answer as if the shard were empty. */
        rpc_call_add_trailer(in->call, NODE_TRAILER_ERROR, "not-ready");
        rpc_call_fail(in->call, GRPC_STATUS_UNAVAILABLE,
                      "shard %llu: the replica on node %llu holds no data yet; read from another",
                      (unsigned long long)r->shard_id, (unsigned long long)n->id);
        node_answer(in);
        return;
    }
    if (level == BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL &&
        node_of_replica(r, r->replica_id) == 0) {
        /* Removed from its shard, and no longer told what is written. */
        rpc_call_add_trailer(in->call, NODE_TRAILER_ERROR, "not-ready");
        rpc_call_fail(in->call, GRPC_STATUS_UNAVAILABLE,
                      "shard %llu: the replica on node %llu was removed from the shard; read "
                      "from another",
                      (unsigned long long)r->shard_id, (unsigned long long)n->id);
        node_answer(in);
        return;
    }
    if (level == BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL) {
        node_serve_read(n, r, in);
        return;
    }
    if (raft_get_role(r->raft) != RAFT_LEADER) {
        node_fail_not_leader(n, r, in->call);
        node_answer(in);
        return;
    }
    if (!node_pending_room((void **)&r->reads, r->n_reads, &r->cap_reads, sizeof(*r->reads)) ||
        raft_read_index(r->raft, ++n->next_read_id) != RAFT_OK) {
        rpc_call_fail(in->call, GRPC_STATUS_UNAVAILABLE,
                      "shard %llu cannot confirm a strong read now; retry",
                      (unsigned long long)r->shard_id);
        node_answer(in);
        return;
    }
    r->reads[r->n_reads++] = (node_pending_read){.read_id = n->next_read_id, .index = 0, .in = in};
}

void node_take_read_states(node *n, node_replica *r) {
    (void)n;
    for (size_t i = 0; i < r->rd.n_read_states; i++) {
        const raft_read_state *rs = &r->rd.read_states[i];
        for (size_t k = 0; k < r->n_reads; k++) {
            node_pending_read *p = &r->reads[k];
            if (p->read_id != rs->request_id || p->in == NULL)
                continue;
            if (rs->err != RAFT_OK) {
                rpc_call_fail(p->in->call, GRPC_STATUS_UNAVAILABLE,
                              "leadership of shard %llu changed before the read was confirmed; "
                              "retry",
                              (unsigned long long)r->shard_id);
                node_answer(p->in);
                p->in = NULL;
            } else {
                p->index = rs->index;
            }
            break;
        }
    }
}

/* ---- answering and failing what waits ---- */

/* Drops answered entries from the front of the pending arrays. */
static void node_compact_pending(node_replica *r) {
    size_t w = 0, k = 0;

    while (w < r->n_writes && r->writes[w].in == NULL)
        w++;
    memmove(r->writes, r->writes + w, (r->n_writes - w) * sizeof(*r->writes));
    r->n_writes -= w;
    for (size_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].in != NULL)
            r->reads[k++] = r->reads[i];
    }
    r->n_reads = k;
}

void node_answer_after_apply(node *n, node_replica *r) {
    raft_index_t applied = rlog_applied(r->log);

    for (size_t i = 0; i < r->n_writes && r->writes[i].index <= applied; i++) {
        node_pending_write *w = &r->writes[i];
        if (w->in == NULL)
            continue;
        if (w->applied) {
            /* A membership change is answered once the joint one is left. */
            if (w->in->kind == NODE_IN_CHANGE_REPLICAS && w->result == NODE_APPLIED_DONE &&
                !node_change_replicas_answerable(r))
                continue;
            node_reply_write(n, r, w);
        } else if (w->superseded) {
            /* Another entry is committed at its index: by Raft's log
             * matching, this one never will be. */
            rpc_call_add_trailer(w->in->call, NODE_TRAILER_ERROR, "not-applied");
            rpc_call_fail(w->in->call, GRPC_STATUS_UNAVAILABLE,
                          "shard %llu changed leader and the write was not committed: nothing "
                          "was written; retry",
                          (unsigned long long)r->shard_id);
            node_answer(w->in);
            w->in = NULL;
        } else {
            /* Another entry took its index, or a snapshot covered it: it may
             * or may not have committed. */
            rpc_call_fail(w->in->call, GRPC_STATUS_UNAVAILABLE,
                          "leadership changed before the write was known to commit: its outcome "
                          "is unknown");
            node_answer(w->in);
            w->in = NULL;
        }
    }
    for (size_t i = 0; i < r->n_reads; i++) {
        node_pending_read *p = &r->reads[i];
        if (p->in != NULL && p->index != 0 && p->index <= applied) {
            node_serve_read(n, r, p->in);
            p->in = NULL;
        }
    }
    node_compact_pending(r);
}

void node_fail_pending(node *n, node_replica *r, const char *why_writes, const char *why_reads) {
    (void)n;
    for (size_t i = 0; why_writes != NULL && i < r->n_writes; i++) {
        if (r->writes[i].in != NULL) {
            rpc_call_fail(r->writes[i].in->call, GRPC_STATUS_UNAVAILABLE, "shard %llu: %s",
                          (unsigned long long)r->shard_id, why_writes);
            node_answer(r->writes[i].in);
            r->writes[i].in = NULL;
        }
    }
    for (size_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].in != NULL) {
            rpc_call_fail(r->reads[i].in->call, GRPC_STATUS_UNAVAILABLE, "shard %llu: %s",
                          (unsigned long long)r->shard_id, why_reads);
            node_answer(r->reads[i].in);
            r->reads[i].in = NULL;
        }
    }
    node_compact_pending(r);
}

void node_fail_earlier_writes(node *n, node_replica *r) {
    raft_term_t term = raft_term(r->raft);

    (void)n;
    for (size_t i = 0; i < r->n_writes; i++) {
        node_in *in = r->writes[i].in;
        if (in != NULL && r->writes[i].term < term) {
            rpc_call_fail(in->call, GRPC_STATUS_UNAVAILABLE,
                          "shard %llu changed leader twice before the write was known to commit: "
                          "its outcome is unknown",
                          (unsigned long long)r->shard_id);
            node_answer(in);
            r->writes[i].in = NULL;
        }
    }
    node_compact_pending(r);
}

void node_expire_pending(node *n, node_replica *r, uint64_t now_ms) {
    (void)n;
    for (size_t i = 0; i < r->n_writes; i++) {
        node_in *in = r->writes[i].in;
        if (in != NULL && in->deadline_ms != 0 && in->deadline_ms <= now_ms) {
            rpc_call_fail(in->call, GRPC_STATUS_DEADLINE_EXCEEDED,
                          "deadline passed before the write was known to commit: its outcome is "
                          "unknown");
            node_answer(in);
            r->writes[i].in = NULL;
        }
    }
    for (size_t i = 0; i < r->n_reads; i++) {
        node_in *in = r->reads[i].in;
        if (in != NULL && in->deadline_ms != 0 && in->deadline_ms <= now_ms) {
            rpc_call_fail(in->call, GRPC_STATUS_DEADLINE_EXCEEDED,
                          "deadline passed before the read was confirmed");
            node_answer(in);
            r->reads[i].in = NULL;
        }
    }
    node_compact_pending(r);
}
