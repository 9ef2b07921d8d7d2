/* services: node registration, heartbeats, bootstrap, and Admin. */
#include "router/services.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basalt/v1/raft.pb-c.h"
#include "router/balance.h"
#include "router/move.h"
#include "router/operations.h"
#include "router/split.h"
#include "runtime/error.h"
#include "runtime/log.h"

#define ROUTER_BOOTSTRAP_TIMEOUT_MS 10000

/* ---- bootstrap: shard 1 over every key, on the first nodes ---- */

typedef struct {
    router_state *state;
    uint64_t nodes[ROUTER_REPLICAS_MAX];
    int n;
} router_bootstrap_job;

static void *router_bootstrap_main(void *arg) {
    router_bootstrap_job *job = arg;
    Basalt__V1__ShardDescriptor d = BASALT__V1__SHARD_DESCRIPTOR__INIT;
    Basalt__V1__ReplicaDescriptor reps[ROUTER_REPLICAS_MAX], *ptrs[ROUTER_REPLICAS_MAX];
    Basalt__V1__CreateReplicaRequest req = BASALT__V1__CREATE_REPLICA_REQUEST__INIT;
    uint64_t shard, first_replica;

    if (meta_alloc_ids(job->state->meta, META_ID_SHARD, 1, &shard) != 0 ||
        meta_alloc_ids(job->state->meta, META_ID_REPLICA, (uint64_t)job->n, &first_replica) != 0) {
        log_error("bootstrap: cannot allocate ids");
        free(job);
        return NULL;
    }
    d.id = shard;
    for (int i = 0; i < job->n; i++) {
        basalt__v1__replica_descriptor__init(&reps[i]);
        reps[i].node_id = job->nodes[i];
        reps[i].replica_id = first_replica + (uint64_t)i;
        ptrs[i] = &reps[i];
    }
    d.n_replicas = (size_t)job->n;
    d.replicas = ptrs;
    req.descriptor = &d;
    req.bootstrap = true;
    log_info("bootstrap: creating shard %llu over every key on %d nodes", (unsigned long long)shard,
             job->n);
    for (int i = 0; i < job->n; i++) {
        rpc_channel *ch = router_node_channel(job->state, job->nodes[i]);
        ProtobufCMessage *resp = NULL;
        rpc_status st;
        if (ch == NULL || rpc_unary(ch, "/basalt.v1.NodeAdmin/CreateReplica", &req.base,
                                    &basalt__v1__create_replica_response__descriptor,
                                    ROUTER_BOOTSTRAP_TIMEOUT_MS, &resp, &st) != 0)
            log_error("bootstrap: node %llu did not create its replica: %s",
                      (unsigned long long)job->nodes[i], ch ? st.message : "no address");
        if (resp)
            protobuf_c_message_free_unpacked(resp, NULL);
    }
    free(job);
    return NULL;
}

/* Starts the bootstrap once, when enough nodes are up and this cluster never
 * had a shard (durably: a restarted router never bootstraps again). */
static void router_maybe_bootstrap(router_state *s) {
    router_bootstrap_job *job = calloc(1, sizeof(*job));
    uint64_t next_shard;
    pthread_t thread;

    if (job == NULL)
        return;
    job->state = s;
    /* The cheap in-memory check first; it is true once at most. */
    if (!router_should_bootstrap(s, job->nodes, &job->n) ||
        meta_alloc_ids(s->meta, META_ID_SHARD, 0, &next_shard) != 0 || next_shard != 1) {
        free(job);
        return;
    }
    if (pthread_create(&thread, NULL, router_bootstrap_main, job) != 0) {
        free(job);
        return;
    }
    pthread_detach(thread);
}

/* ---- Cluster service ---- */

static void router_register_node(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__RegisterRequest *req = (const void *)request;
    Basalt__V1__RegisterResponse resp = BASALT__V1__REGISTER_RESPONSE__INIT;
    router_state *s = ctx;
    uint64_t id;

    /* The address may come later, with the first heartbeat (a node learns
     * its port only once it serves, and needs its id before that). */
    if ((req->address[0] != '\0' && strchr(req->address, ':') == NULL) ||
        strlen(req->address) >= ROUTER_ADDRESS_BYTES || strlen(req->zone) >= ROUTER_ZONE_BYTES) {
        rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                      "register: needs a HOST:PORT address (or none yet) and a zone under %d "
                      "bytes",
                      ROUTER_ZONE_BYTES);
        return;
    }
    int rc = router_register(s, req->node_id, req->address, req->zone, &id);
    if (rc == BS_ERR_FAILED_PRECONDITION) {
        rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                      "register: node %llu was removed from the cluster; to bring the machine "
                      "back, start a kvnode with an empty data directory",
                      (unsigned long long)req->node_id);
        return;
    }
    if (rc != 0) {
        rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "register: %s", bs_err_message(rc));
        return;
    }
    resp.node_id = id;
    resp.cluster_id = (char *)meta_cluster_id(s->meta);
    rpc_call_reply(call, &resp.base);
    router_maybe_bootstrap(s);
}

static void router_heartbeat_call(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__HeartbeatRequest *req = (const void *)request;
    Basalt__V1__HeartbeatResponse resp = BASALT__V1__HEARTBEAT_RESPONSE__INIT;
    Basalt__V1__NodeAddress addrs[ROUTER_NODES_MAX], *ptrs[ROUTER_NODES_MAX];
    router_state *s = ctx;

    if (req->address[0] != '\0' && strchr(req->address, ':') != NULL &&
        strlen(req->address) < ROUTER_ADDRESS_BYTES && strlen(req->zone) < ROUTER_ZONE_BYTES &&
        router_update_address(s, req->node_id, req->address, req->zone) != 0) {
        rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "heartbeat: cannot record the address");
        return;
    }
    if (router_heartbeat(s, req) != 0) {
        rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "node %llu is not registered",
                      (unsigned long long)req->node_id);
        return;
    }
    pthread_mutex_lock(&s->lock);
    size_t n = 0;
    for (int i = 0; i < s->n_nodes; i++) {
        if (s->nodes[i].address[0] == '\0')
            continue; /* registered, address not known yet */
        basalt__v1__node_address__init(&addrs[n]);
        addrs[n].node_id = s->nodes[i].id;
        addrs[n].address = s->nodes[i].address;
        ptrs[n] = &addrs[n];
        n++;
    }
    resp.n_nodes = n;
    resp.nodes = ptrs;
    rpc_call_reply(call, &resp.base); /* encoded here, under the lock */
    pthread_mutex_unlock(&s->lock);
    router_maybe_bootstrap(s);
}

int router_cluster_service_register(rpc_server *server, router_state *s) {
    int rc =
        rpc_server_add_method(server, "/basalt.v1.Cluster/RegisterNode",
                              &basalt__v1__register_request__descriptor, router_register_node, s);
    if (rc == 0)
        rc = rpc_server_add_method(server, "/basalt.v1.Cluster/Heartbeat",
                                   &basalt__v1__heartbeat_request__descriptor,
                                   router_heartbeat_call, s);
    return rc;
}

/* ---- Admin service ---- */

static void router_fill_nodes(router_state *s, Basalt__V1__NodeInfo *infos,
                              Basalt__V1__NodeInfo **ptrs) {
    static uint32_t replicas[ROUTER_NODES_MAX], leaders[ROUTER_NODES_MAX]; /* under the lock */
    uint64_t now = router_now_ms();

    router_count_load(s, replicas, leaders);
    for (int i = 0; i < s->n_nodes; i++) {
        router_node_info(s, i, now, replicas, leaders, &infos[i]);
        ptrs[i] = &infos[i];
    }
}

static void router_cluster_status(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    Basalt__V1__ClusterStatusResponse resp = BASALT__V1__CLUSTER_STATUS_RESPONSE__INIT;
    static Basalt__V1__NodeInfo infos[ROUTER_NODES_MAX];
    static Basalt__V1__NodeInfo *ptrs[ROUTER_NODES_MAX];
    router_state *s = ctx;
    (void)request;

    pthread_mutex_lock(&s->lock);
    router_fill_nodes(s, infos, ptrs);
    resp.cluster_id = (char *)meta_cluster_id(s->meta);
    resp.n_nodes = (size_t)s->n_nodes;
    resp.nodes = ptrs;
    resp.shards = (uint32_t)s->n_shards;
    rpc_call_reply(call, &resp.base);
    pthread_mutex_unlock(&s->lock);
}

static void router_list_nodes(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    Basalt__V1__ListNodesResponse resp = BASALT__V1__LIST_NODES_RESPONSE__INIT;
    static Basalt__V1__NodeInfo infos[ROUTER_NODES_MAX];
    static Basalt__V1__NodeInfo *ptrs[ROUTER_NODES_MAX];
    router_state *s = ctx;
    (void)request;

    pthread_mutex_lock(&s->lock);
    router_fill_nodes(s, infos, ptrs);
    resp.n_nodes = (size_t)s->n_nodes;
    resp.nodes = ptrs;
    rpc_call_reply(call, &resp.base);
    pthread_mutex_unlock(&s->lock);
}

static void router_list_shards(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    Basalt__V1__ListShardsResponse resp = BASALT__V1__LIST_SHARDS_RESPONSE__INIT;
    router_state *s = ctx;
    (void)request;

    pthread_mutex_lock(&s->lock);
    Basalt__V1__ShardInfo *infos = calloc((size_t)s->n_shards + 1, sizeof(*infos));
    Basalt__V1__ShardInfo **ptrs = calloc((size_t)s->n_shards + 1, sizeof(*ptrs));
    if (infos == NULL || ptrs == NULL) {
        pthread_mutex_unlock(&s->lock);
        free(infos);
        free(ptrs);
        rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "router out of memory");
        return;
    }
    for (int i = 0; i < s->n_shards; i++) {
        basalt__v1__shard_info__init(&infos[i]);
        infos[i].descriptor = s->shards[i].desc;
        infos[i].leader_node_id = s->shards[i].leader_node;
        ptrs[i] = &infos[i];
    }
    resp.n_shards = (size_t)s->n_shards;
    resp.shards = ptrs;
    rpc_call_reply(call, &resp.base);
    pthread_mutex_unlock(&s->lock);
    free(infos);
    free(ptrs);
}

/* An Admin call that waits on nodes (splits, hand-overs: seconds at worst)
 * runs on a thread of its own rather than hold one of the server's few. */
typedef struct {
    rpc_handler_cb handler;
    rpc_call *call;
    const ProtobufCMessage *request;
    void *ctx;
} router_blocking_call;

static void *router_blocking_call_main(void *arg) {
    router_blocking_call *bc = arg;
    bc->handler(bc->call, bc->request, bc->ctx);
    free(bc);
    return NULL;
}

static void router_run_blocking(rpc_handler_cb handler, rpc_call *call,
                                const ProtobufCMessage *request, void *ctx) {
    router_blocking_call *bc = calloc(1, sizeof(*bc));
    pthread_t thread;

    if (bc == NULL) {
        rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "router out of memory");
        return;
    }
    *bc = (router_blocking_call){handler, call, request, ctx};
    if (pthread_create(&thread, NULL, router_blocking_call_main, bc) != 0) {
        free(bc);
        rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "router cannot start a thread");
        return;
    }
    pthread_detach(thread);
}

static void router_split_shard_blocking(rpc_call *call, const ProtobufCMessage *request,
                                        void *ctx) {
    router_run_blocking(router_split_shard_call, call, request, ctx);
}

static void router_transfer_leader_blocking(rpc_call *call, const ProtobufCMessage *request,
                                            void *ctx) {
    router_run_blocking(router_transfer_leader_call, call, request, ctx);
}

static void router_move_replica_blocking(rpc_call *call, const ProtobufCMessage *request,
                                         void *ctx) {
    router_run_blocking(router_move_call, call, request, ctx);
}

int router_admin_service_register(rpc_server *server, router_state *s) {
    static const struct {
        const char *path;
        const ProtobufCMessageDescriptor *request;
        rpc_handler_cb handler;
    } methods[] = {
        {"/basalt.v1.Admin/ClusterStatus", &basalt__v1__cluster_status_request__descriptor,
         router_cluster_status},
        {"/basalt.v1.Admin/ListNodes", &basalt__v1__list_nodes_request__descriptor,
         router_list_nodes},
        {"/basalt.v1.Admin/ListShards", &basalt__v1__list_shards_request__descriptor,
         router_list_shards},
        {"/basalt.v1.Admin/SplitShard", &basalt__v1__split_shard_request__descriptor,
         router_split_shard_blocking},
        {"/basalt.v1.Admin/TransferLeader", &basalt__v1__transfer_leader_request__descriptor,
         router_transfer_leader_blocking},
        {"/basalt.v1.Admin/MoveReplica", &basalt__v1__move_replica_request__descriptor,
         router_move_replica_blocking},
        {"/basalt.v1.Admin/DrainNode", &basalt__v1__drain_node_request__descriptor,
         router_drain_node_call},
        {"/basalt.v1.Admin/RemoveNode", &basalt__v1__remove_node_request__descriptor,
         router_remove_node_call},
        {"/basalt.v1.Admin/SetSchedule", &basalt__v1__set_schedule_request__descriptor,
         router_set_schedule_call},
        {"/basalt.v1.Admin/ScheduleStatus", &basalt__v1__schedule_status_request__descriptor,
         router_schedule_status_call},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        int rc = rpc_server_add_method(server, methods[i].path, methods[i].request,
                                       methods[i].handler, s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void router_answer_with_shard(rpc_call *call, router_state *s, uint64_t shard_id,
                              const router_result *res, ProtobufCMessage *response,
                              const char *what) {
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name(response->descriptor, "shard");
    Basalt__V1__ShardInfo info = BASALT__V1__SHARD_INFO__INIT;
    uint64_t leader = 0;
    Basalt__V1__ShardDescriptor *d = router_shard_copy(s, shard_id, &leader);

    if (res->code != GRPC_STATUS_OK || d == NULL || field == NULL) {
        rpc_call_fail(call, res->code != GRPC_STATUS_OK ? res->code : GRPC_STATUS_NOT_FOUND,
                      "%s: %s", what,
                      res->code != GRPC_STATUS_OK ? res->message : "the shard is gone");
    } else {
        info.descriptor = d;
        info.leader_node_id = leader;
        *(Basalt__V1__ShardInfo **)((char *)response + field->offset) = &info;
        rpc_call_reply(call, response);
    }
    if (d)
        basalt__v1__shard_descriptor__free_unpacked(d, NULL);
}
