/* scheduler: the router's background jobs, on one thread. */
#include "router/scheduler.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "basalt/v1/raft.pb-c.h"
#include "router/balance.h"
#include "router/split.h"
#include "runtime/log.h"

struct router_scheduler {
    router_state *state;
    router_scheduler_config config;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
};

/* Waits one check interval; false when stopping. */
static bool router_scheduler_wait(router_scheduler *sc) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ROUTER_SCHEDULER_CHECK_MS / 1000;
    ts.tv_nsec += (long)(ROUTER_SCHEDULER_CHECK_MS % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&sc->lock);
    if (!sc->stopping)
        pthread_cond_timedwait(&sc->wake, &sc->lock, &ts);
    bool go_on = !sc->stopping;
    pthread_mutex_unlock(&sc->lock);
    return go_on;
}

/* One split at a time from here: a shard that keeps growing splits again at
 * a later check, once its halves report their sizes. */
static void router_split_one(router_scheduler *sc) {
    uint64_t shard;

    if (router_split_candidates(sc->state, sc->config.split_bytes, ROUTER_SPLIT_QPS_WINDOW_MS,
                                ROUTER_SPLIT_BACKOFF_MS, &shard, 1) == 1) {
        router_split_result res;
        router_split(sc->state, shard, (ProtobufCBinaryData){0, NULL}, &res);
        router_split_result_free(&res);
    }
}

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
                                    ROUTER_REPAIR_TIMEOUT_MS, &resp, &st) == 0)
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

static void *router_scheduler_main(void *arg) {
    router_scheduler *sc = arg;
    uint64_t next_balance_ms = router_now_ms() + ROUTER_BALANCE_CHECK_MS;

    while (router_scheduler_wait(sc)) {
        router_split_one(sc);
        router_repair_missing(sc->state);
        if (sc->config.balance_leaders && router_now_ms() >= next_balance_ms) {
            router_balance_leaders(sc->state);
            next_balance_ms = router_now_ms() + ROUTER_BALANCE_CHECK_MS;
        }
    }
    return NULL;
}

router_scheduler *router_scheduler_start(router_state *s, const router_scheduler_config *config) {
    router_scheduler *sc = calloc(1, sizeof(*sc));

    if (sc == NULL)
        return NULL;
    sc->state = s;
    sc->config = *config;
    pthread_mutex_init(&sc->lock, NULL);
    pthread_cond_init(&sc->wake, NULL);
    if (pthread_create(&sc->thread, NULL, router_scheduler_main, sc) != 0) {
        pthread_mutex_destroy(&sc->lock);
        pthread_cond_destroy(&sc->wake);
        free(sc);
        return NULL;
    }
    return sc;
}

void router_scheduler_stop(router_scheduler *sc) {
    if (sc == NULL)
        return;
    pthread_mutex_lock(&sc->lock);
    sc->stopping = true;
    pthread_cond_signal(&sc->wake);
    pthread_mutex_unlock(&sc->lock);
    pthread_join(sc->thread, NULL);
    pthread_mutex_destroy(&sc->lock);
    pthread_cond_destroy(&sc->wake);
    free(sc);
}
