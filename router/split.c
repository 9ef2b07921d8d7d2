/* split: planning splits, asking the leader, and the splitter thread. */
#include "router/split.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basalt/v1/raft.pb-c.h"
#include "router/balance.h"
#include "runtime/error.h"
#include "runtime/kv_limits.h"
#include "runtime/log.h"

/* Pause between attempts while the shard's leadership settles. */
#define ROUTER_SPLIT_RETRY_MS 200

static int router_bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    return c != 0 ? c : (al > bl) - (al < bl);
}

static void router_split_fail(router_split_result *out, grpc_status_code code, const char *fmt,
                              unsigned long long shard) {
    out->code = code;
    snprintf(out->message, sizeof(out->message), fmt, shard);
}

/* Whether key may split d: inside its range, not its start, a valid key. */
static bool router_split_key_fits(const Basalt__V1__ShardDescriptor *d, ProtobufCBinaryData key) {
    if (key.len > KV_KEY_BYTES_MAX)
        return false;
    if (router_bytes_cmp(key.data, key.len, d->start.data, d->start.len) <= 0)
        return false;
    return d->end.len == 0 || router_bytes_cmp(key.data, key.len, d->end.data, d->end.len) < 0;
}

static void router_sleep_ms(uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The nodes to ask, the known leader first. */
static int router_split_targets(const Basalt__V1__ShardDescriptor *d, uint64_t leader,
                                uint64_t *nodes) {
    int n = 0;

    if (leader != 0)
        nodes[n++] = leader;
    for (size_t i = 0; i < d->n_replicas && n < ROUTER_REPLICAS_MAX; i++) {
        if (d->replicas[i]->node_id != leader)
            nodes[n++] = d->replicas[i]->node_id;
    }
    return n;
}

/* Whether a refusal came before anything was proposed, from a replica that
 * does not lead (or from a node that could not be reached). */
static bool router_split_may_retry(int rc, const rpc_status *st) {
    return rc == BS_ERR_UNAVAILABLE &&
           (strstr(st->message, "not the leader") != NULL ||
            strstr(st->message, "no leader") != NULL || strstr(st->message, "connect") != NULL ||
            strstr(st->message, "not taken now") != NULL);
}

/* Sends the planned split to the shard's replicas in turn until the leader
 * takes it, or the time is up. */
static void router_split_send(router_state *s, const Basalt__V1__ShardDescriptor *d,
                              uint64_t leader, const Basalt__V1__SplitReplicaRequest *req,
                              router_split_result *out) {
    uint64_t deadline = router_now_ms() + ROUTER_SPLIT_TIMEOUT_MS;
    uint64_t nodes[ROUTER_REPLICAS_MAX];
    int n_nodes = router_split_targets(d, leader, nodes);

    for (int attempt = 0;; attempt++) {
        uint64_t node = nodes[attempt % n_nodes], now = router_now_ms();
        rpc_channel *ch = router_node_channel(s, node);
        Basalt__V1__SplitReplicaResponse *resp = NULL;
        rpc_status st = {GRPC_STATUS_UNAVAILABLE, "no address known for the node"};
        int rc = ch ? rpc_unary(ch, "/basalt.v1.NodeAdmin/SplitReplica", &req->base,
                                &basalt__v1__split_replica_response__descriptor,
                                (int64_t)(deadline - now), (ProtobufCMessage **)&resp, &st)
                    : BS_ERR_UNAVAILABLE;
        if (rc == 0 && (resp->left == NULL || resp->right == NULL))
            rc = BS_ERR_CORRUPTION;
        if (rc == 0) {
            out->code = GRPC_STATUS_OK;
            out->left = resp->left;
            out->right = resp->right;
            resp->left = resp->right = NULL;
            out->leader_node = node;
            basalt__v1__split_replica_response__free_unpacked(resp, NULL);
            return;
        }
        if (resp)
            basalt__v1__split_replica_response__free_unpacked(resp, NULL);
        bool again = router_split_may_retry(rc, &st);
        if (!again || router_now_ms() + ROUTER_SPLIT_RETRY_MS >= deadline) {
            out->code = rc == BS_ERR_CORRUPTION ? GRPC_STATUS_INTERNAL : st.code;
            snprintf(out->message, sizeof(out->message), "node %llu: %s%s",
                     (unsigned long long)node, st.message,
                     st.code == GRPC_STATUS_DEADLINE_EXCEEDED
                         ? " (the split may or may not have happened: list the shards)"
                         : "");
            return;
        }
        if ((attempt + 1) % n_nodes == 0)
            router_sleep_ms(ROUTER_SPLIT_RETRY_MS);
    }
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
                              "shard %llu is being split already", (unsigned long long)shard_id);
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

typedef struct {
    router_state *state;
    rpc_call *call;
    const Basalt__V1__SplitShardRequest *req;
} router_split_job;

static void *router_split_job_main(void *arg) {
    router_split_job *job = arg;
    router_split_result res;

    router_split(job->state, job->req->shard_id, job->req->split_key, &res);
    if (res.code != GRPC_STATUS_OK) {
        rpc_call_fail(job->call, res.code, "%s", res.message);
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
        rpc_call_reply(job->call, &resp.base);
    }
    router_split_result_free(&res);
    free(job);
    return NULL;
}

void router_split_shard_call(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    router_split_job *job = calloc(1, sizeof(*job));
    pthread_t thread;

    if (job == NULL) {
        rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "router out of memory");
        return;
    }
    *job = (router_split_job){ctx, call, (const void *)request};
    if (pthread_create(&thread, NULL, router_split_job_main, job) != 0) {
        free(job);
        rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "router cannot start a thread");
        return;
    }
    pthread_detach(thread);
}

/* ---- the splitter ---- */

struct router_splitter {
    router_state *state;
    uint64_t max_bytes;
    uint64_t max_qps;
    bool balance_leaders;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
};

/* Waits one check interval; false when stopping. */
static bool router_splitter_wait(router_splitter *sp) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ROUTER_SPLIT_CHECK_MS / 1000;
    ts.tv_nsec += (long)(ROUTER_SPLIT_CHECK_MS % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&sp->lock);
    if (!sp->stopping)
        pthread_cond_timedwait(&sp->wake, &sp->lock, &ts);
    bool go_on = !sp->stopping;
    pthread_mutex_unlock(&sp->lock);
    return go_on;
}

/* ---- replicas a split did not make ---- */

/* A shard's range must be this old before its missing replicas are made:
 * nodes apply a split within moments, and report it within a heartbeat. */
#define ROUTER_REPAIR_SETTLED_MS 5000
/* Missing replicas made per check, at most. */
#define ROUTER_REPAIRS_PER_CHECK 8

/* A node that caught up past a split by a snapshot of the shard it kept never
 * made the new shard's replica. It gets an empty one, which the new shard's
 * leader fills with a snapshot. A node that still holds the unsplit range
 * refuses (the ranges overlap) until it has caught up. */
static void router_repair_missing(router_state *s) {
    router_missing_replica missing[ROUTER_REPAIRS_PER_CHECK];
    int n = router_missing_replicas(s, ROUTER_REPAIR_SETTLED_MS, missing, ROUTER_REPAIRS_PER_CHECK);

    for (int i = 0; i < n; i++) {
        Basalt__V1__CreateReplicaRequest req = BASALT__V1__CREATE_REPLICA_REQUEST__INIT;
        rpc_channel *ch = router_node_channel(s, missing[i].node_id);
        ProtobufCMessage *resp = NULL;
        rpc_status st;

        req.descriptor = missing[i].desc;
        if (ch != NULL && rpc_unary(ch, "/basalt.v1.NodeAdmin/CreateReplica", &req.base,
                                    &basalt__v1__create_replica_response__descriptor,
                                    ROUTER_SPLIT_TIMEOUT_MS, &resp, &st) == 0)
            log_info("node %llu lacked its replica of shard %llu: created, to be filled by a "
                     "snapshot",
                     (unsigned long long)missing[i].node_id,
                     (unsigned long long)missing[i].desc->id);
        else if (ch != NULL)
            log_debug("node %llu cannot take its replica of shard %llu yet: %s",
                      (unsigned long long)missing[i].node_id,
                      (unsigned long long)missing[i].desc->id, st.message);
        if (resp)
            protobuf_c_message_free_unpacked(resp, NULL);
        basalt__v1__shard_descriptor__free_unpacked(missing[i].desc, NULL);
    }
}

static void *router_splitter_main(void *arg) {
    router_splitter *sp = arg;
    uint64_t ids[ROUTER_SPLITS_IN_FLIGHT_MAX];

    uint64_t next_balance_ms = router_now_ms() + ROUTER_BALANCE_CHECK_MS;

    while (router_splitter_wait(sp)) {
        /* One split at a time from here: a shard that keeps growing splits
         * again at its next check, once its halves report their sizes. */
        int n =
            router_split_candidates(sp->state, sp->max_bytes, sp->max_qps,
                                    ROUTER_SPLIT_QPS_WINDOW_MS, ROUTER_SPLIT_BACKOFF_MS, ids, 1);
        for (int i = 0; i < n; i++) {
            router_split_result res;
            router_split(sp->state, ids[i], (ProtobufCBinaryData){0, NULL}, &res);
            router_split_result_free(&res);
        }
        router_repair_missing(sp->state);
        if (sp->balance_leaders && router_now_ms() >= next_balance_ms) {
            router_balance_leaders(sp->state);
            next_balance_ms = router_now_ms() + ROUTER_BALANCE_CHECK_MS;
        }
    }
    return NULL;
}

router_splitter *router_splitter_start(router_state *s, uint64_t max_bytes, uint64_t max_qps,
                                       bool balance_leaders) {
    router_splitter *sp = calloc(1, sizeof(*sp));

    if (sp == NULL)
        return NULL;
    *sp = (router_splitter){
        .state = s, .max_bytes = max_bytes, .max_qps = max_qps, .balance_leaders = balance_leaders};
    pthread_mutex_init(&sp->lock, NULL);
    pthread_cond_init(&sp->wake, NULL);
    if (pthread_create(&sp->thread, NULL, router_splitter_main, sp) != 0) {
        free(sp);
        return NULL;
    }
    return sp;
}

void router_splitter_stop(router_splitter *sp) {
    if (sp == NULL)
        return;
    pthread_mutex_lock(&sp->lock);
    sp->stopping = true;
    pthread_cond_signal(&sp->wake);
    pthread_mutex_unlock(&sp->lock);
    pthread_join(sp->thread, NULL);
    pthread_mutex_destroy(&sp->lock);
    pthread_cond_destroy(&sp->wake);
    free(sp);
}
