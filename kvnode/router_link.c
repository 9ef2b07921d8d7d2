/* router_link: registration and heartbeats, on a thread of their own so the
 * Raft loop never waits on the router. The node's own status comes from its
 * NodeAdmin.Status (over loopback: the same view operators get). */
#include "kvnode/router_link.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basalt/v1/cluster.pb-c.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/rpc_client.h"

struct router_link {
    node *n;
    char *address;
    char *zone;
    rpc_channel *router;
    rpc_channel *self;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    atomic_bool removed; /* the router said this node was removed */
};

/* Waits a second between registration attempts (the router may be
 * starting), or less when SIGTERM or SIGINT arrives: those are blocked in
 * every thread and meant for the main thread's sigwait, so it is taken here
 * and reported. Returns true when the node was told to stop. */
static bool router_link_pause_unless_stopped(void) {
    struct timespec pause = {1, 0};
    sigset_t stop;

    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    int sig = sigtimedwait(&stop, NULL, &pause);
    if (sig > 0)
        log_info("stopping on signal %s while waiting for the router", strsignal(sig));
    return sig > 0;
}

int router_link_allocate_id(const char *router, const char *zone, int attempts, uint64_t *id) {
    Basalt__V1__RegisterRequest req = BASALT__V1__REGISTER_REQUEST__INIT;
    rpc_channel *ch = rpc_channel_open(router);
    int rc = BS_ERR_UNAVAILABLE;

    req.address = "";
    req.zone = (char *)zone;
    for (int i = 0; i < attempts && rc != 0; i++) {
        Basalt__V1__RegisterResponse *resp = NULL;
        rpc_status st;
        rc = rpc_unary(ch, "/basalt.v1.Cluster/RegisterNode", &req.base,
                       &basalt__v1__register_response__descriptor, ROUTER_LINK_TIMEOUT_MS,
                       (ProtobufCMessage **)&resp, &st);
        if (rc == 0) {
            *id = resp->node_id;
            log_info("the router at %s gave this node id %llu (cluster %s)", router,
                     (unsigned long long)*id, resp->cluster_id);
            protobuf_c_message_free_unpacked(&resp->base, NULL);
        } else {
            log_warn("router at %s: %s; retrying", router, st.message);
            if (router_link_pause_unless_stopped()) {
                rc = BS_ERR_DEADLINE_EXCEEDED;
                break;
            }
        }
    }
    rpc_channel_close(ch);
    return rc;
}

bool router_link_removed(router_link *l) {
    return atomic_load(&l->removed);
}

/* The router forgot this node for good (kvctl node remove): its replicas
 * are no longer members of their shards, so serving their data (eventual
 * reads) or campaigning would only do harm. The node stops, through the
 * main thread's orderly shutdown. */
static void router_link_removed_from_cluster(router_link *l, const char *why) {
    if (atomic_exchange(&l->removed, true))
        return;
    log_error("stopping: the router refuses this node (%s); its data is stale, so start the "
              "machine again with an empty data directory to bring it back as a new node",
              why);
    kill(getpid(), SIGTERM);
}

/* One heartbeat: our replicas out, the cluster's addresses back. */
static void router_link_beat(router_link *l) {
    Basalt__V1__NodeStatusRequest sreq = BASALT__V1__NODE_STATUS_REQUEST__INIT;
    Basalt__V1__NodeStatusResponse *status = NULL;
    Basalt__V1__HeartbeatRequest hb = BASALT__V1__HEARTBEAT_REQUEST__INIT;
    Basalt__V1__HeartbeatResponse *resp = NULL;
    rpc_status st;

    if (rpc_unary(l->self, "/basalt.v1.NodeAdmin/Status", &sreq.base,
                  &basalt__v1__node_status_response__descriptor, ROUTER_LINK_TIMEOUT_MS,
                  (ProtobufCMessage **)&status, &st) != 0)
        return;
    hb.node_id = status->node_id;
    hb.address = l->address;
    hb.zone = l->zone;
    hb.n_replicas = status->n_replicas;
    hb.replicas = status->replicas;
    if (rpc_unary(l->router, "/basalt.v1.Cluster/Heartbeat", &hb.base,
                  &basalt__v1__heartbeat_response__descriptor, ROUTER_LINK_TIMEOUT_MS,
                  (ProtobufCMessage **)&resp, &st) == 0) {
        /* Peers: handed to the loop like an UpdateNodes call. */
        Basalt__V1__UpdateNodesRequest *update = calloc(1, sizeof(*update));
        if (update != NULL) {
            basalt__v1__update_nodes_request__init(update);
            update->n_nodes = resp->n_nodes;
            update->nodes = resp->nodes;
            resp->n_nodes = 0;
            resp->nodes = NULL;
            node_submit_owned_peers(l->n, update);
        }
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    } else if (st.code == GRPC_STATUS_NOT_FOUND) {
        /* The router lost us (its store was replaced): register again. */
        Basalt__V1__RegisterRequest reg = BASALT__V1__REGISTER_REQUEST__INIT;
        ProtobufCMessage *r = NULL;
        reg.node_id = status->node_id;
        reg.address = l->address;
        reg.zone = l->zone;
        if (rpc_unary(l->router, "/basalt.v1.Cluster/RegisterNode", &reg.base,
                      &basalt__v1__register_response__descriptor, ROUTER_LINK_TIMEOUT_MS, &r,
                      &st) == 0)
            protobuf_c_message_free_unpacked(r, NULL);
        else if (st.code == GRPC_STATUS_FAILED_PRECONDITION)
            router_link_removed_from_cluster(l, st.message);
    }
    protobuf_c_message_free_unpacked(&status->base, NULL);
}

static void *router_link_main(void *arg) {
    router_link *l = arg;

    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        pthread_mutex_unlock(&l->lock);
        router_link_beat(l);
        pthread_mutex_lock(&l->lock);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ROUTER_LINK_HEARTBEAT_MS / 1000;
        while (!l->stopping && pthread_cond_timedwait(&l->wake, &l->lock, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

router_link *router_link_start(node *n, const char *router, const char *address, const char *zone) {
    router_link *l = calloc(1, sizeof(*l));
    pthread_condattr_t attr;

    if (l == NULL)
        return NULL;
    l->n = n;
    l->address = strdup(address);
    l->zone = strdup(zone);
    l->router = rpc_channel_open(router);
    l->self = rpc_channel_open(address);
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&l->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&l->thread, NULL, router_link_main, l) != 0) {
        router_link_stop(l);
        return NULL;
    }
    return l;
}

void router_link_stop(router_link *l) {
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->lock);
    bool started = !l->stopping;
    l->stopping = true;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    if (started && l->thread)
        pthread_join(l->thread, NULL);
    rpc_channel_close(l->router);
    rpc_channel_close(l->self);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    free(l->address);
    free(l->zone);
    free(l);
}
