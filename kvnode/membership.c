/* membership: which replicas a shard has, changed through Raft's joint
 * consensus, with the shard's descriptor kept in step.
 *
 * The router asks the shard's leader (ChangeReplicas) to add a learner, to
 * promote one, or to remove replicas, all in one step. The leader proposes a
 * membership change entry whose context (ConfChangeContext) holds the
 * conf_ver the change was planned against and the nodes of the replicas it
 * adds. Every replica applies that entry at the same index:
 *   - planned against another conf_ver: skipped by all, and the caller told;
 *   - otherwise Raft's membership enters the joint configuration and the
 *     descriptor follows it: one replica per member, node ids from the old
 *     descriptor or the context, voters of either side as voters; conf_ver
 *     goes up by one.
 * The leader then leaves the joint configuration by itself (an entry with no
 * changes), which bumps conf_ver again and drops the removed replicas from
 * the descriptor. The call is answered only then, so a caller that goes on to
 * delete a removed replica never takes a vote the joint quorum still needs.
 *
 * A removed replica does not delete itself: it may never hear of its
 * removal, since the leader stops sending to non-members. The router deletes
 * it (RemoveReplica) once the shard has moved on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvnode/node.h"
#include "runtime/error.h"
#include "runtime/log.h"

/* ---- proposing (loop thread) ---- */

static const Basalt__V1__ReplicaDescriptor *node_desc_replica(const Basalt__V1__ShardDescriptor *d,
                                                              uint64_t replica_id) {
    for (size_t i = 0; i < d->n_replicas; i++) {
        if (d->replicas[i]->replica_id == replica_id)
            return d->replicas[i];
    }
    return NULL;
}

static bool node_desc_has_node(const Basalt__V1__ShardDescriptor *d, uint64_t node_id) {
    for (size_t i = 0; i < d->n_replicas; i++) {
        if (d->replicas[i]->node_id == node_id)
            return true;
    }
    return false;
}

/* Why one change cannot apply to descriptor d led by replica `leader`, or
 * NULL. */
static const char *node_change_check(const Basalt__V1__ShardDescriptor *d, uint64_t leader,
                                     const Basalt__V1__ReplicaChange *c) {
    const Basalt__V1__ReplicaDescriptor *old;

    if (c->replica == NULL || c->replica->replica_id == 0)
        return "every change names a replica id above 0";
    old = node_desc_replica(d, c->replica->replica_id);
    switch (c->type) {
    case BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_ADD_LEARNER:
    case BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_ADD_VOTER:
        if (old != NULL) {
            if (c->type == BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_ADD_VOTER &&
                old->role == BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_LEARNER)
                return NULL; /* a promotion */
            return "the replica is already a member in that role";
        }
        if (c->replica->node_id == 0)
            return "a new replica names its node";
        if (node_desc_has_node(d, c->replica->node_id))
            return "the node already holds a replica of the shard";
        return NULL;
    case BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_REMOVE:
        if (old == NULL)
            return "the replica to remove is not a member";
        if (old->replica_id == leader)
            return "the leader's own replica cannot be removed: transfer leadership first";
        return NULL;
    default:
        return "unknown change type";
    }
}

static const char *node_changes_check(const node_replica *r,
                                      const Basalt__V1__ChangeReplicasRequest *req) {
    if (req->n_changes == 0 || req->n_changes > RAFT_CHANGES_MAX)
        return "a membership change has 1 to 16 changes";
    for (size_t i = 0; i < req->n_changes; i++) {
        const char *why = node_change_check(r->desc, r->replica_id, req->changes[i]);
        if (why != NULL)
            return why;
        for (size_t k = 0; k < i; k++) {
            if (req->changes[k]->replica->replica_id == req->changes[i]->replica->replica_id)
                return "a replica appears in two changes";
        }
    }
    return NULL;
}

/* The entry's context: the epoch and the added replicas' nodes. */
static size_t node_pack_context(const Basalt__V1__ChangeReplicasRequest *req, uint8_t *buf,
                                size_t cap) {
    Basalt__V1__ConfChangeContext ctx = BASALT__V1__CONF_CHANGE_CONTEXT__INIT;
    Basalt__V1__ReplicaDescriptor *added[RAFT_CHANGES_MAX];

    ctx.conf_ver = req->conf_ver;
    for (size_t i = 0; i < req->n_changes; i++) {
        if (req->changes[i]->type != BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_REMOVE)
            added[ctx.n_added++] = req->changes[i]->replica;
    }
    ctx.added = added;
    size_t len = basalt__v1__conf_change_context__get_packed_size(&ctx);
    if (len > cap)
        return 0;
    return basalt__v1__conf_change_context__pack(&ctx, buf);
}

static raft_change_type node_raft_change_type(Basalt__V1__ReplicaChangeType t) {
    if (t == BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_ADD_LEARNER)
        return RAFT_CHANGE_ADD_LEARNER;
    if (t == BASALT__V1__REPLICA_CHANGE_TYPE__REPLICA_CHANGE_ADD_VOTER)
        return RAFT_CHANGE_ADD_VOTER;
    return RAFT_CHANGE_REMOVE;
}

static void node_change_refuse(node_in *in, grpc_status_code code, uint64_t shard,
                               const char *why) {
    rpc_call_fail(in->call, code, "shard %llu: %s", (unsigned long long)shard, why);
    free(in);
}

void node_handle_change_replicas(node *n, node_in *in) {
    const Basalt__V1__ChangeReplicasRequest *req = (const void *)in->request;
    node_replica *r = node_replica_by_shard(n, req->shard_id);
    uint8_t context[RAFT_CONF_CONTEXT_MAX];
    raft_conf_change cc = {.n_changes = (uint32_t)req->n_changes, .context = context};
    raft_index_t index;
    const char *why;

    if (r == NULL) {
        node_change_refuse(in, GRPC_STATUS_NOT_FOUND, req->shard_id, "no replica here");
        return;
    }
    if (raft_get_role(r->raft) != RAFT_LEADER) {
        node_fail_not_leader(n, r, in->call);
        free(in);
        return;
    }
    if (req->conf_ver != r->desc->conf_ver) {
        node_change_refuse(in, GRPC_STATUS_FAILED_PRECONDITION, r->shard_id,
                           "the membership changed since the change was planned; plan it again");
        return;
    }
    if ((why = node_changes_check(r, req)) != NULL) {
        node_change_refuse(in, GRPC_STATUS_INVALID_ARGUMENT, r->shard_id, why);
        return;
    }
    for (size_t i = 0; i < req->n_changes; i++) {
        cc.changes[i].type = node_raft_change_type(req->changes[i]->type);
        cc.changes[i].id = req->changes[i]->replica->replica_id;
    }
    cc.context_len = (uint32_t)node_pack_context(req, context, sizeof(context));
    int rc =
        cc.context_len == 0 ? RAFT_ERR_INVALID : raft_propose_conf_change(r->raft, &cc, &index);
    if (rc == RAFT_ERR_CONF_CHANGE_PENDING || rc == RAFT_ERR_PROPOSAL_DROPPED) {
        node_change_refuse(in, GRPC_STATUS_UNAVAILABLE, r->shard_id,
                           "another membership change or a leader transfer is in progress; retry");
    } else if (rc == RAFT_ERR_INVALID) {
        node_change_refuse(in, GRPC_STATUS_INVALID_ARGUMENT, r->shard_id,
                           "the change would leave the shard without a voter, or over 16 members");
    } else if (rc != RAFT_OK) {
        node_change_refuse(in, GRPC_STATUS_UNAVAILABLE, r->shard_id, raft_err_message(rc));
    } else if (!node_track_write(r, index, in)) {
        /* Proposed all the same: the caller learns the outcome from the
         * shard's descriptor. */
        node_change_refuse(in, GRPC_STATUS_UNAVAILABLE, r->shard_id,
                           "too many requests wait on the shard; the change was proposed");
    } else {
        log_info("shard %llu: proposed a membership change of %zu replicas at %llu (conf_ver %llu)",
                 (unsigned long long)r->shard_id, req->n_changes, (unsigned long long)index,
                 (unsigned long long)req->conf_ver);
    }
}

bool node_change_replicas_answerable(const node_replica *r) {
    return r->conf.n_voters_outgoing == 0;
}

/* ---- applying (loop thread) ---- */

static bool node_conf_member(const raft_conf_state *c, uint64_t id, bool *voter) {
    for (uint32_t i = 0; i < c->n_voters; i++)
        if (c->voters[i] == id)
            return (*voter = true);
    for (uint32_t i = 0; i < c->n_voters_outgoing; i++)
        if (c->voters_outgoing[i] == id)
            return (*voter = true);
    *voter = false;
    for (uint32_t i = 0; i < c->n_learners; i++)
        if (c->learners[i] == id)
            return true;
    for (uint32_t i = 0; i < c->n_learners_next; i++)
        if (c->learners_next[i] == id)
            return true;
    return false;
}

static bool node_ids_same(const raft_id_t *a, uint32_t na, const raft_id_t *b, uint32_t nb) {
    if (na != nb)
        return false;
    for (uint32_t i = 0; i < na; i++) {
        bool found = false;
        for (uint32_t k = 0; k < nb && !found; k++)
            found = a[i] == b[k];
        if (!found)
            return false;
    }
    return true;
}

/* The same members in the same places (the order within a list is Raft's
 * business, and differs between a replica that restarted and one that did
 * not). */
static bool node_conf_same(const raft_conf_state *a, const raft_conf_state *b) {
    return node_ids_same(a->voters, a->n_voters, b->voters, b->n_voters) &&
           node_ids_same(a->voters_outgoing, a->n_voters_outgoing, b->voters_outgoing,
                         b->n_voters_outgoing) &&
           node_ids_same(a->learners, a->n_learners, b->learners, b->n_learners) &&
           node_ids_same(a->learners_next, a->n_learners_next, b->learners_next,
                         b->n_learners_next);
}

/* Adds member `id` to the replicas being built, unless already there. */
static void node_add_member(Basalt__V1__ReplicaDescriptor *reps, size_t *n, uint64_t id,
                            uint64_t node_id, bool voter) {
    for (size_t i = 0; i < *n; i++) {
        if (reps[i].replica_id == id)
            return;
    }
    basalt__v1__replica_descriptor__init(&reps[*n]);
    reps[*n].replica_id = id;
    reps[*n].node_id = node_id;
    reps[*n].role = voter ? BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_VOTER
                          : BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_LEARNER;
    (*n)++;
}

/* Descriptors list replicas by id, so every replica's reads alike. */
static int node_replica_id_cmp(const void *a, const void *b) {
    const Basalt__V1__ReplicaDescriptor *x = a, *y = b;
    return (x->replica_id > y->replica_id) - (x->replica_id < y->replica_id);
}

/* The node of member `id`: from the descriptor, or from the context. */
static uint64_t node_member_node(const node_replica *r, const Basalt__V1__ConfChangeContext *ctx,
                                 uint64_t id) {
    uint64_t node_id = node_of_replica(r, id);

    for (size_t i = 0; node_id == 0 && ctx != NULL && i < ctx->n_added; i++) {
        if (ctx->added[i]->replica_id == id)
            node_id = ctx->added[i]->node_id;
    }
    return node_id;
}

/* Rewrites r's descriptor to name the members of r->conf, one conf_ver on. */
static void node_desc_follow_conf(node_replica *r, const Basalt__V1__ConfChangeContext *ctx) {
    const raft_conf_state *c = &r->conf;
    const raft_id_t *lists[] = {c->voters, c->voters_outgoing, c->learners, c->learners_next};
    uint32_t sizes[] = {c->n_voters, c->n_voters_outgoing, c->n_learners, c->n_learners_next};
    Basalt__V1__ReplicaDescriptor reps[4 * RAFT_MEMBERS_MAX], *ptrs[4 * RAFT_MEMBERS_MAX];
    Basalt__V1__ShardDescriptor next = *r->desc;
    size_t n = 0;

    for (int l = 0; l < 4; l++) {
        for (uint32_t i = 0; i < sizes[l]; i++) {
            bool voter;
            node_conf_member(c, lists[l][i], &voter);
            node_add_member(reps, &n, lists[l][i], node_member_node(r, ctx, lists[l][i]), voter);
        }
    }
    qsort(reps, n, sizeof(reps[0]), node_replica_id_cmp);
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &reps[i];
    next.replicas = ptrs;
    next.n_replicas = n;
    next.conf_ver = r->desc->conf_ver + 1;
    Basalt__V1__ShardDescriptor *copy = node_desc_copy(&next);
    if (copy == NULL) {
        /* Going on would leave this replica unlike the others. */
        log_error("shard %llu: out of memory applying a membership change: stopping",
                  (unsigned long long)r->shard_id);
        abort();
    }
    basalt__v1__shard_descriptor__free_unpacked(r->desc, NULL);
    r->desc = copy;
}

node_applied_result node_apply_conf_change(node *n, node_replica *r, const raft_entry *e) {
    Basalt__V1__ConfChangeContext *ctx = NULL;
    raft_conf_change cc;
    raft_conf_state conf;

    if (raft_conf_change_decode(e->data, e->len, &cc) != RAFT_OK) {
        log_error("shard %llu: membership change at %llu is malformed; skipped",
                  (unsigned long long)r->shard_id, (unsigned long long)e->index);
        return NODE_APPLIED_STALE_CONF;
    }
    if (cc.n_changes > 0) {
        ctx = cc.context ? basalt__v1__conf_change_context__unpack(NULL, cc.context_len, cc.context)
                         : NULL;
        if (ctx == NULL || ctx->conf_ver != r->desc->conf_ver) {
            log_warn("shard %llu: a membership change planned against another conf_ver is skipped",
                     (unsigned long long)r->shard_id);
            if (ctx)
                basalt__v1__conf_change_context__free_unpacked(ctx, NULL);
            return NODE_APPLIED_STALE_CONF;
        }
    }
    if (raft_apply_conf_change(r->raft, e, &conf) != RAFT_OK) {
        log_error("shard %llu: membership change at %llu cannot be applied: stopping",
                  (unsigned long long)r->shard_id, (unsigned long long)e->index);
        abort();
    }
    if (!node_conf_same(&conf, &r->conf)) {
        r->conf = conf;
        node_desc_follow_conf(r, ctx);
        node_stage_replica_state(r, n->apply_batch);
        log_info("shard %llu: membership at %llu is now conf_ver %llu with %zu replicas%s",
                 (unsigned long long)r->shard_id, (unsigned long long)e->index,
                 (unsigned long long)r->desc->conf_ver, r->desc->n_replicas,
                 node_of_replica(r, r->replica_id) == 0 ? "; this replica was removed" : "");
    }
    if (ctx)
        basalt__v1__conf_change_context__free_unpacked(ctx, NULL);
    return NODE_APPLIED_DONE;
}
