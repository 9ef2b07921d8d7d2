/* move: one replica moved between nodes through membership changes. */
#include "router/move.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basalt/v1/admin.pb-c.h"
#include "basalt/v1/raft.pb-c.h"
#include "router/balance.h"
#include "router/leader_call.h"
#include "router/services.h"
#include "runtime/error.h"
#include "runtime/log.h"

static void router_move_fail(router_result *out, grpc_status_code code, const char *fmt, ...) {
    va_list ap;

    out->code = code;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
}

static const Basalt__V1__ReplicaDescriptor *router_replica_on(const Basalt__V1__ShardDescriptor *d,
                                                              uint64_t node_id) {
    for (size_t i = 0; i < d->n_replicas; i++) {
        if (d->replicas[i]->node_id == node_id)
            return d->replicas[i];
    }
    return NULL;
}

/* ---- bookkeeping (one move per shard; what schedule status shows) ---- */

/* Why the move cannot start (lock held), or NULL. */
static const char *router_move_refusal(router_state *s, uint64_t shard_id, uint64_t from,
                                       uint64_t to, grpc_status_code *code) {
    int at = router_shard_index(s, shard_id);
    router_node *target = router_node_of(s, to);

    *code = GRPC_STATUS_FAILED_PRECONDITION;
    if (from == to) {
        *code = GRPC_STATUS_INVALID_ARGUMENT;
        return "the source and target are the same node";
    }
    if (at < 0) {
        *code = GRPC_STATUS_NOT_FOUND;
        return "no such shard";
    }
    const router_shard *sh = &s->shards[at];
    if (router_replica_on(sh->desc, from) == NULL)
        return "the source node holds no replica of the shard";
    if (router_desc_has_learner(sh->desc))
        return "the shard has a learner (a move, or its roll-back, is unfinished)";
    if (router_replica_on(sh->desc, to) != NULL)
        return "the target node already holds a replica of the shard";
    if (target == NULL) {
        *code = GRPC_STATUS_NOT_FOUND;
        return "no such target node";
    }
    if (!router_node_up_locked(s, target, router_now_ms()))
        return "the target node is down";
    if (target->admin != META_NODE_ACTIVE)
        return "the target node is drained or being drained";
    if (sh->moving || sh->splitting)
        return "another move or a split of the shard is running";
    if (s->n_moves >= s->moves_max) {
        *code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        return "as many moves as --max-moves allows are running; retry later";
    }
    return NULL;
}

static bool router_move_begin(router_state *s, uint64_t shard_id, uint64_t from, uint64_t to,
                              const char *reason, router_result *out) {
    grpc_status_code code;

    pthread_mutex_lock(&s->lock);
    const char *why = router_move_refusal(s, shard_id, from, to, &code);
    if (why == NULL) {
        router_move_info *m = &s->moves[s->n_moves++];
        memset(m, 0, sizeof(*m));
        m->shard_id = shard_id;
        m->from_node = from;
        m->to_node = to;
        m->step = "starting";
        m->started_ms = router_now_ms();
        snprintf(m->reason, sizeof(m->reason), "%s", reason);
        s->shards[router_shard_index(s, shard_id)].moving = true;
    }
    pthread_mutex_unlock(&s->lock);
    if (why != NULL)
        router_move_fail(out, code, "%s", why);
    return why == NULL;
}

static void router_move_step(router_state *s, uint64_t shard_id, const char *step) {
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_moves; i++) {
        if (s->moves[i].shard_id == shard_id)
            s->moves[i].step = step;
    }
    pthread_mutex_unlock(&s->lock);
}

static void router_move_end(router_state *s, uint64_t shard_id, const router_result *res) {
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_moves; i++) {
        if (s->moves[i].shard_id != shard_id)
            continue;
        router_move_info *done = &s->recent[s->recent_next];
        *done = s->moves[i];
        done->finished_ms = router_now_ms();
        done->ok = res->code == GRPC_STATUS_OK;
        done->step = "";
        snprintf(done->outcome, sizeof(done->outcome), "%s", done->ok ? "done" : res->message);
        s->recent_next = (s->recent_next + 1) % ROUTER_RECENT_MOVES;
        if (s->n_recent < ROUTER_RECENT_MOVES)
            s->n_recent++;
        s->moves[i] = s->moves[--s->n_moves];
        break;
    }
    int at = router_shard_index(s, shard_id);
    if (at >= 0) {
        s->shards[at].moving = false;
        s->shards[at].move_failed_ms = res->code == GRPC_STATUS_OK ? 0 : router_now_ms();
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- calls to the nodes ---- */

/* One membership change through the shard's leader; on success the router
 * learns the new descriptor and *after (when not NULL) gets a copy. */
static int router_change_replicas(router_state *s, uint64_t shard_id,
                                  Basalt__V1__ReplicaChange **changes, size_t n_changes,
                                  Basalt__V1__ShardDescriptor **after, rpc_status *st) {
    Basalt__V1__ChangeReplicasRequest req = BASALT__V1__CHANGE_REPLICAS_REQUEST__INIT;
    Basalt__V1__ChangeReplicasResponse *resp = NULL;
    uint64_t leader = 0, answered_by = 0;
    Basalt__V1__ShardDescriptor *d = router_shard_copy(s, shard_id, &leader);
    int rc;

    if (after)
        *after = NULL;
    if (d == NULL) {
        *st = (rpc_status){GRPC_STATUS_NOT_FOUND, "the shard is gone"};
        return -1;
    }
    req.shard_id = shard_id;
    req.conf_ver = d->conf_ver;
    req.changes = changes;
    req.n_changes = n_changes;
    rc = router_call_leader(s, d, leader, "/basalt.v1.NodeAdmin/ChangeReplicas", &req.base,
                            &basalt__v1__change_replicas_response__descriptor,
                            router_now_ms() + ROUTER_CHANGE_TIMEOUT_MS, (ProtobufCMessage **)&resp,
                            st, &answered_by);
    basalt__v1__shard_descriptor__free_unpacked(d, NULL);
    if (rc == 0 && resp->descriptor != NULL) {
        router_learn(s, resp->descriptor, answered_by);
        if (after)
            *after = router_desc_copy(resp->descriptor);
    } else if (rc == 0) {
        rc = -1;
        *st = (rpc_status){GRPC_STATUS_INTERNAL, "the leader answered without a descriptor"};
    }
    if (resp)
        basalt__v1__change_replicas_response__free_unpacked(resp, NULL);
    return rc;
}

static int router_node_admin_call(router_state *s, uint64_t node_id, const char *method,
                                  const ProtobufCMessage *req,
                                  const ProtobufCMessageDescriptor *resp_desc, rpc_status *st) {
    rpc_channel *ch = router_node_channel(s, node_id);
    ProtobufCMessage *resp = NULL;

    if (ch == NULL) {
        *st = (rpc_status){GRPC_STATUS_NOT_FOUND, "the node has no known address"};
        return -1;
    }
    int rc = rpc_unary(ch, method, req, resp_desc, ROUTER_CHANGE_TIMEOUT_MS, &resp, st);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

void router_delete_replica(router_state *s, uint64_t node_id, uint64_t shard_id,
                           uint64_t replica_id, uint64_t gone_at_conf_ver) {
    Basalt__V1__RemoveReplicaRequest req = BASALT__V1__REMOVE_REPLICA_REQUEST__INIT;
    rpc_status st;

    req.shard_id = shard_id;
    req.replica_id = replica_id;
    req.conf_ver = gone_at_conf_ver;
    if (router_node_admin_call(s, node_id, "/basalt.v1.NodeAdmin/RemoveReplica", &req.base,
                               &basalt__v1__remove_replica_response__descriptor, &st) == 0)
        log_info("node %llu deleted replica %llu of shard %llu, which the shard no longer has",
                 (unsigned long long)node_id, (unsigned long long)replica_id,
                 (unsigned long long)shard_id);
    else
        log_debug("node %llu did not delete replica %llu of shard %llu: %s",
                  (unsigned long long)node_id, (unsigned long long)replica_id,
                  (unsigned long long)shard_id, st.message);
}

/* The new replica's applied index and conf_ver on its node (0 when it does
 * not report it). */
static void router_replica_progress(router_state *s, uint64_t node_id, uint64_t shard_id,
                                    uint64_t replica_id, uint64_t *applied, uint64_t *conf_ver) {
    Basalt__V1__NodeStatusRequest req = BASALT__V1__NODE_STATUS_REQUEST__INIT;
    Basalt__V1__NodeStatusResponse *resp = NULL;
    rpc_channel *ch = router_node_channel(s, node_id);
    rpc_status st;

    *applied = *conf_ver = 0;
    if (ch == NULL || rpc_unary(ch, "/basalt.v1.NodeAdmin/Status", &req.base,
                                &basalt__v1__node_status_response__descriptor,
                                ROUTER_CATCH_UP_POLL_MS * 10, (ProtobufCMessage **)&resp, &st) != 0)
        return;
    for (size_t i = 0; i < resp->n_replicas; i++) {
        const Basalt__V1__ReplicaStatus *r = resp->replicas[i];
        if (r->descriptor != NULL && r->descriptor->id == shard_id && r->replica_id == replica_id) {
            *applied = r->applied_index;
            *conf_ver = r->descriptor->conf_ver;
        }
    }
    basalt__v1__node_status_response__free_unpacked(resp, NULL);
}

/* ---- the steps ---- */

/* Step 1: the source must not lead the shard while its replica is removed. */
static bool router_move_leadership_off(router_state *s, uint64_t shard_id, uint64_t from,
                                       router_result *out) {
    uint64_t leader = 0, target = 0;
    Basalt__V1__ShardDescriptor *d = router_shard_copy(s, shard_id, &leader);

    if (d == NULL) {
        router_move_fail(out, GRPC_STATUS_NOT_FOUND, "the shard is gone");
        return false;
    }
    for (size_t i = 0; i < d->n_replicas && leader == from; i++) {
        const Basalt__V1__ReplicaDescriptor *r = d->replicas[i];
        if (r->node_id != from && r->role == BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_VOTER &&
            router_node_is_up(s, r->node_id) && target == 0)
            target = r->node_id;
    }
    basalt__v1__shard_descriptor__free_unpacked(d, NULL);
    if (leader != from)
        return true;
    if (target == 0) {
        router_move_fail(out, GRPC_STATUS_FAILED_PRECONDITION,
                         "the source node leads the shard and no other voter is up");
        return false;
    }
    router_result res;
    router_transfer_leader(s, shard_id, target, &res);
    if (res.code != GRPC_STATUS_OK) {
        router_move_fail(out, res.code, "moving leadership off the source node: %s", res.message);
        return false;
    }
    return true;
}

/* Step 2: the learner joins, then its node creates it (empty). */
static bool router_move_add_learner(router_state *s, uint64_t shard_id, uint64_t to,
                                    uint64_t replica_id, router_result *out) {
    Basalt__V1__ReplicaDescriptor learner = BASALT__V1__REPLICA_DESCRIPTOR__INIT;
    Basalt__V1__ReplicaChange add = BASALT__V1__REPLICA_CHANGE__INIT, *changes[] = {&add};
    Basalt__V1__CreateReplicaRequest create = BASALT__V1__CREATE_REPLICA_REQUEST__INIT;
    Basalt__V1__ShardDescriptor *after;
    rpc_status st;

    learner.node_id = to;
    learner.replica_id = replica_id;
    learner.role = BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_LEARNER;
    add.type = BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_ADD_LEARNER;
    add.replica = &learner;
    if (router_change_replicas(s, shard_id, changes, 1, &after, &st) != 0) {
        router_move_fail(out, st.code, "adding the learner: %s", st.message);
        return false;
    }
    create.descriptor = after;
    int rc = router_node_admin_call(s, to, "/basalt.v1.NodeAdmin/CreateReplica", &create.base,
                                    &basalt__v1__create_replica_response__descriptor, &st);
    basalt__v1__shard_descriptor__free_unpacked(after, NULL);
    if (rc != 0) {
        router_move_fail(out, st.code, "creating the new replica on node %llu: %s",
                         (unsigned long long)to, st.message);
        return false;
    }
    return true;
}

/* Step 3: the learner has installed a snapshot that includes its own
 * joining (so it holds the shard's data up to there). */
static bool router_move_wait_catch_up(router_state *s, uint64_t shard_id, uint64_t to,
                                      uint64_t replica_id, uint64_t joined_conf_ver,
                                      router_result *out) {
    uint64_t deadline = router_now_ms() + ROUTER_CATCH_UP_TIMEOUT_MS;

    for (;;) {
        uint64_t applied, conf_ver;
        router_replica_progress(s, to, shard_id, replica_id, &applied, &conf_ver);
        if (applied > 0 && conf_ver >= joined_conf_ver)
            return true;
        if (router_is_stopping(s)) {
            router_move_fail(out, GRPC_STATUS_UNAVAILABLE, "the router is stopping");
            return false;
        }
        if (!router_node_is_up(s, to)) {
            router_move_fail(out, GRPC_STATUS_UNAVAILABLE, "the target node %llu went down",
                             (unsigned long long)to);
            return false;
        }
        if (router_now_ms() >= deadline) {
            router_move_fail(out, GRPC_STATUS_DEADLINE_EXCEEDED,
                             "the new replica on node %llu did not catch up within %d s",
                             (unsigned long long)to, ROUTER_CATCH_UP_TIMEOUT_MS / 1000);
            return false;
        }
        router_sleep_ms(ROUTER_CATCH_UP_POLL_MS);
    }
}

/* Step 4: promote the learner and remove the old replica, in one change. */
static bool router_move_swap(router_state *s, uint64_t shard_id, uint64_t to, uint64_t replica_id,
                             uint64_t old_replica_id, router_result *out) {
    Basalt__V1__ReplicaDescriptor voter = BASALT__V1__REPLICA_DESCRIPTOR__INIT;
    Basalt__V1__ReplicaDescriptor old = BASALT__V1__REPLICA_DESCRIPTOR__INIT;
    Basalt__V1__ReplicaChange promote = BASALT__V1__REPLICA_CHANGE__INIT;
    Basalt__V1__ReplicaChange remove = BASALT__V1__REPLICA_CHANGE__INIT;
    Basalt__V1__ReplicaChange *changes[] = {&promote, &remove};
    rpc_status st;

    voter.node_id = to;
    voter.replica_id = replica_id;
    promote.type = BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_ADD_VOTER;
    promote.replica = &voter;
    old.replica_id = old_replica_id;
    remove.type = BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_REMOVE;
    remove.replica = &old;
    if (router_change_replicas(s, shard_id, changes, 2, NULL, &st) != 0) {
        router_move_fail(out, st.code, "promoting the new replica: %s", st.message);
        return false;
    }
    return true;
}

/* Step 4 with step 1 again first: the source may have taken leadership back
 * meanwhile, or the map not have heard that it had (the leader then refuses
 * to remove itself, and is known from then on). */
static bool router_move_promote(router_state *s, uint64_t shard_id, uint64_t from, uint64_t to,
                                uint64_t replica_id, uint64_t old_replica_id, router_result *out) {
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!router_move_leadership_off(s, shard_id, from, out))
            return false;
        if (router_move_swap(s, shard_id, to, replica_id, old_replica_id, out))
            return true;
        if (out->code != GRPC_STATUS_INVALID_ARGUMENT ||
            strstr(out->message, "transfer leadership first") == NULL)
            return false;
        router_set_leader(s, shard_id, from);
    }
    return false;
}

/* What the map says of replica_id in the shard: its role, or -1 when the
 * shard does not have it; *conf_ver (when not NULL) gets the shard's (0: no
 * such shard). */
static int router_map_role(router_state *s, uint64_t shard_id, uint64_t replica_id,
                           uint64_t *conf_ver) {
    int role = -1;

    pthread_mutex_lock(&s->lock);
    int at = router_shard_index(s, shard_id);
    const Basalt__V1__ShardDescriptor *d = at >= 0 ? s->shards[at].desc : NULL;
    for (size_t i = 0; d != NULL && i < d->n_replicas; i++) {
        if (d->replicas[i]->replica_id == replica_id)
            role = (int)d->replicas[i]->role;
    }
    if (conf_ver)
        *conf_ver = d ? d->conf_ver : 0;
    pthread_mutex_unlock(&s->lock);
    return role;
}

static bool router_shard_has_replica(router_state *s, uint64_t shard_id, uint64_t replica_id) {
    return router_map_role(s, shard_id, replica_id, NULL) >= 0;
}

static uint64_t router_shard_conf_ver(router_state *s, uint64_t shard_id) {
    uint64_t conf_ver;
    router_map_role(s, shard_id, 0, &conf_ver);
    return conf_ver;
}

bool router_remove_learner(router_state *s, uint64_t shard_id, uint64_t replica_id) {
    Basalt__V1__ReplicaDescriptor learner = BASALT__V1__REPLICA_DESCRIPTOR__INIT;
    Basalt__V1__ReplicaChange remove = BASALT__V1__REPLICA_CHANGE__INIT, *changes[] = {&remove};
    rpc_status st;

    if (router_map_role(s, shard_id, replica_id, NULL) !=
        BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_LEARNER) {
        log_warn("shard %llu: replica %llu is not a learner in the shard map: not removing it",
                 (unsigned long long)shard_id, (unsigned long long)replica_id);
        return false;
    }
    learner.replica_id = replica_id;
    remove.type = BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_REMOVE;
    remove.replica = &learner;
    if (router_change_replicas(s, shard_id, changes, 1, NULL, &st) != 0) {
        log_warn("shard %llu: cannot remove learner %llu yet: %s", (unsigned long long)shard_id,
                 (unsigned long long)replica_id, st.message);
        return false;
    }
    log_info("shard %llu: removed learner %llu", (unsigned long long)shard_id,
             (unsigned long long)replica_id);
    return true;
}

static void router_move_steps(router_state *s, uint64_t shard_id, uint64_t from, uint64_t to,
                              router_result *out) {
    uint64_t leader, replica_id, old_replica_id = 0, joined_conf_ver;
    Basalt__V1__ShardDescriptor *d = router_shard_copy(s, shard_id, &leader);

    for (size_t i = 0; d != NULL && i < d->n_replicas; i++) {
        if (d->replicas[i]->node_id == from)
            old_replica_id = d->replicas[i]->replica_id;
    }
    if (d)
        basalt__v1__shard_descriptor__free_unpacked(d, NULL);
    if (old_replica_id == 0) {
        router_move_fail(out, GRPC_STATUS_FAILED_PRECONDITION,
                         "the source node no longer holds a replica of the shard");
        return;
    }
    if (meta_alloc_ids(s->meta, META_ID_REPLICA, 1, &replica_id) != 0) {
        router_move_fail(out, GRPC_STATUS_INTERNAL, "cannot allocate a replica id");
        return;
    }
    router_move_step(s, shard_id, "moving leadership off the source");
    if (!router_move_leadership_off(s, shard_id, from, out))
        return;
    router_move_step(s, shard_id, "adding a learner");
    if (!router_move_add_learner(s, shard_id, to, replica_id, out))
        goto roll_back;
    d = router_shard_copy(s, shard_id, &leader);
    joined_conf_ver = d ? d->conf_ver : UINT64_MAX;
    if (d)
        basalt__v1__shard_descriptor__free_unpacked(d, NULL);
    router_move_step(s, shard_id, "waiting for the learner's snapshot");
    if (!router_move_wait_catch_up(s, shard_id, to, replica_id, joined_conf_ver, out))
        goto roll_back;
    router_move_step(s, shard_id, "promoting the learner, removing the old replica");
    if (!router_move_promote(s, shard_id, from, to, replica_id, old_replica_id, out))
        goto roll_back;
    /* If this call fails, the node reports the replica in its heartbeats
     * and the router collects it as garbage. */
    router_move_step(s, shard_id, "deleting the old replica");
    router_delete_replica(s, from, shard_id, old_replica_id, router_shard_conf_ver(s, shard_id));
    out->code = GRPC_STATUS_OK;
    return;

roll_back:
    /* A swap whose answer was lost may have committed all the same. */
    if (router_shard_has_replica(s, shard_id, replica_id) &&
        !router_shard_has_replica(s, shard_id, old_replica_id)) {
        router_delete_replica(s, from, shard_id, old_replica_id,
                              router_shard_conf_ver(s, shard_id));
        out->code = GRPC_STATUS_OK;
        return;
    }
    /* The new replica's data goes only once the shard is known to be without
     * it. A removal planned against a stale map is refused (the swap may have
     * committed unseen, making it a voter): then it stays, and is either a
     * voter the map learns of, or a learner no move owns, removed later. */
    router_move_step(s, shard_id, "rolling back");
    if (router_shard_has_replica(s, shard_id, replica_id) &&
        !router_remove_learner(s, shard_id, replica_id)) {
        log_warn("shard %llu: leaving replica %llu on node %llu in place until the shard is known "
                 "to be without it",
                 (unsigned long long)shard_id, (unsigned long long)replica_id,
                 (unsigned long long)to);
        return;
    }
    router_delete_replica(s, to, shard_id, replica_id, router_shard_conf_ver(s, shard_id));
}

void router_move(router_state *s, uint64_t shard_id, uint64_t from_node, uint64_t to_node,
                 const char *reason, router_result *out) {
    memset(out, 0, sizeof(*out));
    if (!router_move_begin(s, shard_id, from_node, to_node, reason, out))
        return;
    log_info("moving shard %llu from node %llu to node %llu (%s)", (unsigned long long)shard_id,
             (unsigned long long)from_node, (unsigned long long)to_node, reason);
    router_move_steps(s, shard_id, from_node, to_node, out);
    if (out->code == GRPC_STATUS_OK)
        log_info("moved shard %llu from node %llu to node %llu", (unsigned long long)shard_id,
                 (unsigned long long)from_node, (unsigned long long)to_node);
    else
        log_warn("moving shard %llu from node %llu to node %llu failed: %s",
                 (unsigned long long)shard_id, (unsigned long long)from_node,
                 (unsigned long long)to_node, out->message);
    router_move_end(s, shard_id, out);
}

void router_move_call(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__MoveReplicaRequest *req = (const void *)request;
    router_result res;

    Basalt__V1__MoveReplicaResponse resp = BASALT__V1__MOVE_REPLICA_RESPONSE__INIT;
    char what[128];

    router_move(ctx, req->shard_id, req->from_node_id, req->to_node_id, "asked by an operator",
                &res);
    snprintf(what, sizeof(what), "shard %llu from node %llu to node %llu",
             (unsigned long long)req->shard_id, (unsigned long long)req->from_node_id,
             (unsigned long long)req->to_node_id);
    router_answer_with_shard(call, ctx, req->shard_id, &res, &resp.base, what);
}
