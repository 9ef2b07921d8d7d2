/* scheduler: the router's background jobs, on one thread. */
#include "router/scheduler.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "basalt/v1/raft.pb-c.h"
#include "router/balance.h"
#include "router/move.h"
#include "router/placement.h"
#include "router/split.h"
#include "runtime/log.h"

struct router_scheduler {
    router_state *state;
    router_scheduler_config config;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    int moves_running; /* move threads not yet ended, under lock */
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

/* Replicas nodes still hold that their shards have moved on from. */
static void router_collect_garbage(router_state *s) {
    router_garbage garbage[ROUTER_GARBAGE_PER_CHECK];
    int n = router_take_garbage(s, garbage, ROUTER_GARBAGE_PER_CHECK);

    /* A node that went down since is asked again when it reports the
     * replica again; calling it now would only wait out the deadline. */
    for (int i = 0; i < n; i++) {
        if (router_node_is_up(s, garbage[i].node_id))
            router_delete_replica(s, garbage[i].node_id, garbage[i].shard_id, garbage[i].replica_id,
                                  garbage[i].conf_ver);
    }
}

/* Learners left by moves a router restart cut short: rolled back. */
static void router_remove_stray_learners(router_state *s) {
    uint64_t shards[ROUTER_STRAYS_PER_CHECK], replicas[ROUTER_STRAYS_PER_CHECK];
    int n = router_stray_learners(s, shards, replicas, ROUTER_STRAYS_PER_CHECK);

    for (int i = 0; i < n; i++)
        router_remove_learner(s, shards[i], replicas[i]);
}

static void router_finish_drains(router_state *s) {
    uint64_t ids[ROUTER_NODES_MAX];
    int n = router_drained_nodes(s, ids, ROUTER_NODES_MAX);

    for (int i = 0; i < n; i++) {
        if (router_change_node_admin(s, ids[i], META_NODE_DRAINING, META_NODE_DRAINED) == 0)
            log_info("node %llu is drained: it holds no replica and can be stopped",
                     (unsigned long long)ids[i]);
    }
}

typedef struct {
    router_scheduler *sc;
    router_move_plan plan;
} router_move_job;

static void *router_move_main(void *arg) {
    router_move_job *job = arg;
    router_scheduler *sc = job->sc;
    router_result res;

    router_move(sc->state, job->plan.shard_id, job->plan.from_node, job->plan.to_node,
                job->plan.reason, &res);
    free(job);
    pthread_mutex_lock(&sc->lock);
    sc->moves_running--;
    pthread_cond_broadcast(&sc->wake);
    pthread_mutex_unlock(&sc->lock);
    return NULL;
}

/* Starts the moves placement asks for, each on a thread of its own, up to
 * --max-moves at once (moves asked for by operators count too). */
static void router_start_moves(router_scheduler *sc, bool drains_only) {
    router_move_plan plans[ROUTER_MOVES_MAX];
    router_state *s = sc->state;

    pthread_mutex_lock(&s->lock);
    int room = s->moves_max - s->n_moves;
    pthread_mutex_unlock(&s->lock);
    int n = room > 0 ? router_plan_moves(s, plans, room, drains_only) : 0;
    for (int i = 0; i < n; i++) {
        router_move_job *job = calloc(1, sizeof(*job));
        pthread_t thread;
        if (job == NULL)
            return;
        job->sc = sc;
        job->plan = plans[i];
        pthread_mutex_lock(&sc->lock);
        sc->moves_running++;
        pthread_mutex_unlock(&sc->lock);
        if (pthread_create(&thread, NULL, router_move_main, job) != 0) {
            free(job);
            pthread_mutex_lock(&sc->lock);
            sc->moves_running--;
            pthread_mutex_unlock(&sc->lock);
            return;
        }
        pthread_detach(thread);
    }
}

static void *router_scheduler_main(void *arg) {
    router_scheduler *sc = arg;
    uint64_t next_balance_ms = router_now_ms() + ROUTER_BALANCE_CHECK_MS;

    while (router_scheduler_wait(sc)) {
        router_log_liveness(sc->state);
        router_split_one(sc);
        router_repair_missing(sc->state);
        router_collect_garbage(sc->state);
        router_finish_drains(sc->state);
        /* Rolling back a cut-short move is cleanup, not scheduling. */
        router_remove_stray_learners(sc->state);
        if (!router_schedule_enabled(sc->state)) {
            /* An operator's drain is an order, not a schedule. */
            router_start_moves(sc, true);
            continue;
        }
        /* Leaders first: a hand-over is cheap, a replica move copies data. */
        if (sc->config.balance_leaders && router_now_ms() >= next_balance_ms) {
            router_balance_leaders(sc->state);
            next_balance_ms = router_now_ms() + ROUTER_BALANCE_CHECK_MS;
        }
        router_start_moves(sc, false);
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
    sc->moves_running = 0;
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
    pthread_cond_broadcast(&sc->wake);
    pthread_mutex_unlock(&sc->lock);
    pthread_join(sc->thread, NULL);
    router_set_stopping(sc->state);
    /* Moves see the state stopping and end at their next step. */
    pthread_mutex_lock(&sc->lock);
    while (sc->moves_running > 0)
        pthread_cond_wait(&sc->wake, &sc->lock);
    pthread_mutex_unlock(&sc->lock);
    pthread_mutex_destroy(&sc->lock);
    pthread_cond_destroy(&sc->wake);
    free(sc);
}
