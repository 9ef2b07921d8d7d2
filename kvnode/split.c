/* split: one shard becomes two, online, without moving data.
 *
 * The router allocates the new shard's id and replica ids and asks the
 * shard's leader (SplitReplica). The leader proposes a split command; every
 * replica applies it at the same log index:
 *   - the shard keeps [start, key) and its version goes up by one;
 *   - a new shard [key, end) with the same version, on the same nodes, gets a
 *     new Raft group whose replicas all start from the same state: log
 *     applied and truncated at NODE_GROUP_INIT_INDEX. Its keys are already in
 *     the data column family, so nothing is copied.
 * Both descriptors and the new group's state go into the apply batch with
 * the applied index, so a crash never leaves half a split. Writes and reads
 * of the old range that were in flight find their key gone from the shard
 * and are refused as key-not-here, which a router safely retries.
 *
 * A replica that was away applies the split from its log when it catches up.
 * Until then it holds the old range, so a snapshot of the new shard cannot
 * reach it (there is no replica to take it, and creating one would overlap).
 * Vote requests of the new shard that arrive before the split is applied here
 * are kept for a moment (the stash) and handed to it once it exists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvnode/node.h"
#include "kvnode/replica_log.h"
#include "runtime/error.h"
#include "runtime/kv_limits.h"
#include "runtime/log.h"

/* Keys sampled while looking for the middle of a shard, at most. */
#define NODE_SPLIT_SAMPLES 128

/* ---- choosing the split key (any thread) ---- */

typedef struct {
    ProtobufCBinaryData keys[NODE_SPLIT_SAMPLES];
    uint64_t before[NODE_SPLIT_SAMPLES]; /* bytes of the pairs before keys[i] */
    int n;
    uint64_t stride; /* every stride-th pair is sampled */
    uint64_t seen;
    uint64_t bytes;
} node_split_sampler;

/* Halves the samples, keeping every other one, and doubles the stride. */
static void node_sampler_thin(node_split_sampler *s) {
    int kept = 0;

    for (int i = 0; i < s->n; i++) {
        if (i % 2 == 0) {
            s->keys[kept] = s->keys[i];
            s->before[kept++] = s->before[i];
        } else {
            free(s->keys[i].data);
        }
    }
    s->n = kept;
    s->stride *= 2;
}

static int node_sample_pair(const char *key, size_t key_len, const char *value, size_t value_len,
                            void *ctx) {
    node_split_sampler *s = ctx;
    (void)value;

    if (s->seen % s->stride == 0 && s->n == NODE_SPLIT_SAMPLES)
        node_sampler_thin(s);
    if (s->seen % s->stride == 0) {
        uint8_t *copy = malloc(key_len);
        if (copy == NULL)
            return BS_ERR_NOMEM;
        memcpy(copy, key, key_len);
        s->keys[s->n] = (ProtobufCBinaryData){key_len, copy};
        s->before[s->n++] = s->bytes;
    }
    s->seen++;
    s->bytes += key_len + value_len;
    return 0;
}

int node_split_middle_key(kvs *store, ProtobufCBinaryData start, ProtobufCBinaryData end,
                          ProtobufCBinaryData *key) {
    node_split_sampler s = {.stride = 1};
    bool more;
    int best = -1;

    int rc = kvs_scan(store, KVS_CF_DATA, start.data, start.len, end.data, end.len, UINT32_MAX,
                      node_sample_pair, &s, &more);
    /* The first pair cannot start the new shard: the old one would be empty. */
    for (int i = 1; rc == 0 && i < s.n; i++) {
        uint64_t half = s.bytes / 2;
        uint64_t off = s.before[i] > half ? s.before[i] - half : half - s.before[i];
        uint64_t best_off = best < 0                ? UINT64_MAX
                            : s.before[best] > half ? s.before[best] - half
                                                    : half - s.before[best];
        if (off < best_off)
            best = i;
    }
    for (int i = 0; i < s.n; i++) {
        if (i == best)
            *key = s.keys[i];
        else
            free(s.keys[i].data);
    }
    if (rc != 0)
        return rc;
    return best < 0 ? BS_ERR_NOT_FOUND : 0;
}

/* ---- proposing (loop thread) ---- */

static void node_split_refuse(node_in *in, grpc_status_code code, const char *why, uint64_t shard) {
    rpc_call_fail(in->call, code, "shard %llu: %s", (unsigned long long)shard, why);
    free(in);
}

/* Whether new_replicas are the shard's replicas under new ids: the same
 * nodes, in the same roles, ids above 0 and not the shard's own. */
static bool node_split_replicas_match(const Basalt__V1__ShardDescriptor *d,
                                      Basalt__V1__ReplicaDescriptor *const *reps, size_t n_reps) {
    if (n_reps != d->n_replicas)
        return false;
    for (size_t i = 0; i < n_reps; i++) {
        bool found = false;
        if (reps[i]->replica_id == 0)
            return false;
        for (size_t k = 0; k < d->n_replicas; k++) {
            const Basalt__V1__ReplicaDescriptor *old = d->replicas[k];
            if (old->replica_id == reps[i]->replica_id)
                return false;
            if (old->node_id == reps[i]->node_id && old->role == reps[i]->role)
                found = true;
        }
        for (size_t k = 0; k < i; k++) {
            if (reps[k]->node_id == reps[i]->node_id || reps[k]->replica_id == reps[i]->replica_id)
                return false;
        }
        if (!found)
            return false;
    }
    return true;
}

/* Whether key may split d: strictly inside its range, a valid key. */
static bool node_split_key_fits(const Basalt__V1__ShardDescriptor *d, ProtobufCBinaryData key) {
    return key.len > 0 && key.len <= KV_KEY_BYTES_MAX && node_desc_contains(d, key.data, key.len) &&
           node_bytes_cmp(key.data, key.len, d->start.data, d->start.len) != 0;
}

static int node_propose_split(node_replica *r, const Basalt__V1__SplitReplicaRequest *req,
                              raft_index_t *index) {
    Basalt__V1__KvCommand cmd = BASALT__V1__KV_COMMAND__INIT;
    Basalt__V1__SplitCommand split = BASALT__V1__SPLIT_COMMAND__INIT;

    split.new_shard_id = req->new_shard_id;
    split.new_replicas = req->new_replicas;
    split.n_new_replicas = req->n_new_replicas;
    split.conf_ver = req->conf_ver;
    split.version = req->version;
    cmd.op = BASALT__V1__KV_COMMAND__OP__OP_SPLIT;
    cmd.key = req->split_key;
    cmd.split = &split;
    size_t len = basalt__v1__kv_command__get_packed_size(&cmd);
    uint8_t *buf = malloc(len);
    if (buf == NULL)
        return RAFT_ERR_NOMEM;
    basalt__v1__kv_command__pack(&cmd, buf);
    int rc = raft_propose(r->raft, buf, (uint32_t)len, index);
    free(buf);
    return rc;
}

/* Why the split cannot be proposed (and the status to say it with), or NULL. */
static const char *node_split_check(node *n, node_replica *r,
                                    const Basalt__V1__SplitReplicaRequest *req,
                                    grpc_status_code *code) {
    *code = GRPC_STATUS_INVALID_ARGUMENT;
    if (req->conf_ver != r->desc->conf_ver || req->version != r->desc->version) {
        *code = GRPC_STATUS_FAILED_PRECONDITION;
        return "the shard changed since the split was planned; plan it again";
    }
    if (r->conf.n_voters_outgoing != 0 || r->conf.n_learners != 0) {
        /* The new shard would copy a membership that is about to change. */
        *code = GRPC_STATUS_FAILED_PRECONDITION;
        return "a membership change of the shard is under way; split once it is done";
    }
    if (!node_split_key_fits(r->desc, req->split_key))
        return "the split key must lie inside the shard's range and not be its start key";
    if (req->new_shard_id == 0 || node_replica_by_shard(n, req->new_shard_id) != NULL ||
        !node_split_replicas_match(r->desc, req->new_replicas, req->n_new_replicas))
        return "the new shard needs a fresh id and one new replica per replica of the shard, "
               "on the same nodes";
    if (r->n_writes >= NODE_PENDING_MAX) {
        *code = GRPC_STATUS_UNAVAILABLE;
        return "too many writes wait on the shard; retry";
    }
    return NULL;
}

void node_handle_split(node *n, node_in *in) {
    const Basalt__V1__SplitReplicaRequest *req = (const void *)in->request;
    node_replica *r = node_replica_by_shard(n, req->shard_id);
    grpc_status_code code;
    const char *why;
    raft_index_t index;

    if (r == NULL) {
        node_split_refuse(in, GRPC_STATUS_NOT_FOUND, "no replica of it on this node",
                          req->shard_id);
    } else if (raft_get_role(r->raft) != RAFT_LEADER) {
        node_fail_not_leader(n, r, in->call);
        free(in);
    } else if ((why = node_split_check(n, r, req, &code)) != NULL) {
        node_split_refuse(in, code, why, req->shard_id);
    } else if (node_propose_split(r, req, &index) != RAFT_OK) {
        node_split_refuse(in, GRPC_STATUS_UNAVAILABLE, "the split was not taken now; retry",
                          req->shard_id);
    } else if (!node_track_write(r, index, in)) {
        /* Proposed, but nobody will hear how it ends: say so. */
        node_split_refuse(in, GRPC_STATUS_UNAVAILABLE,
                          "the split was proposed but cannot be followed: list the shards to "
                          "see whether it happened",
                          req->shard_id);
    }
}

/* ---- applying (loop thread) ---- */

static Basalt__V1__ShardDescriptor *node_split_right(const Basalt__V1__ShardDescriptor *d,
                                                     const Basalt__V1__KvCommand *cmd) {
    Basalt__V1__ShardDescriptor right = *d;

    right.id = cmd->split->new_shard_id;
    right.start = cmd->key;
    right.version = d->version + 1;
    right.replicas = cmd->split->new_replicas;
    right.n_replicas = cmd->split->n_new_replicas;
    return node_desc_copy(&right);
}

/* Cuts r's range at key, bumping its version. */
static int node_split_left(node_replica *r, ProtobufCBinaryData key) {
    Basalt__V1__ShardDescriptor left = *r->desc;

    left.end = key;
    left.version = r->desc->version + 1;
    Basalt__V1__ShardDescriptor *copy = node_desc_copy(&left);
    if (copy == NULL)
        return BS_ERR_NOMEM;
    basalt__v1__shard_descriptor__free_unpacked(r->desc, NULL);
    r->desc = copy;
    return 0;
}

static bool node_new_shard_room(node *n) {
    if (n->n_new_shards < n->cap_new_shards)
        return true;
    int cap = n->cap_new_shards ? 2 * n->cap_new_shards : 8;
    node_new_shard *grown = realloc(n->new_shards, (size_t)cap * sizeof(*grown));
    if (grown == NULL)
        return false;
    n->new_shards = grown;
    n->cap_new_shards = cap;
    return true;
}

static uint64_t node_split_my_replica(node *n, const Basalt__V1__ShardDescriptor *right) {
    for (size_t i = 0; i < right->n_replicas; i++) {
        if (right->replicas[i]->node_id == n->id)
            return right->replicas[i]->replica_id;
    }
    return 0;
}

node_applied_result node_apply_split(node *n, node_replica *r, const Basalt__V1__KvCommand *cmd,
                                     raft_index_t index) {
    const Basalt__V1__SplitCommand *sc = cmd->split;

    if (sc == NULL || sc->conf_ver != r->desc->conf_ver || sc->version != r->desc->version ||
        !node_split_key_fits(r->desc, cmd->key) ||
        !node_split_replicas_match(r->desc, sc->new_replicas, sc->n_new_replicas)) {
        log_warn("shard %llu: a split planned against another epoch is skipped",
                 (unsigned long long)r->shard_id);
        return NODE_APPLIED_STALE_SPLIT;
    }
    Basalt__V1__ShardDescriptor *right = node_split_right(r->desc, cmd);
    if (right == NULL || !node_new_shard_room(n) || node_split_left(r, cmd->key) != 0) {
        /* Going on would leave this replica unlike the others. */
        log_error("shard %llu: cannot apply a split (out of memory): stopping",
                  (unsigned long long)r->shard_id);
        abort();
    }
    node_stage_replica_state(r, n->apply_batch);
    uint64_t replica_id = node_split_my_replica(n, right);
    if (replica_id == 0 || node_replica_by_shard(n, right->id) != NULL) {
        log_error("shard %llu: split into shard %llu, which has no new replica here",
                  (unsigned long long)r->shard_id, (unsigned long long)right->id);
        basalt__v1__shard_descriptor__free_unpacked(right, NULL);
        return NODE_APPLIED_DONE;
    }
    raft_conf_state conf;
    node_conf_from_desc(right, &conf);
    node_stage_replica_record(right, replica_id, &conf, n->apply_batch);
    rlog_stage_initial(n->apply_batch, right->id, NODE_GROUP_INIT_INDEX, NODE_GROUP_INIT_TERM);
    n->new_shards[n->n_new_shards++] = (node_new_shard){
        .desc = right,
        .replica_id = replica_id,
        .campaign = raft_get_role(r->raft) == RAFT_LEADER,
        .bytes_put = r->bytes_put / 2,
    };
    r->bytes_put -= r->bytes_put / 2;
    log_info("shard %llu split at index %llu: it keeps [start, split key), shard %llu takes the "
             "rest",
             (unsigned long long)r->shard_id, (unsigned long long)index,
             (unsigned long long)right->id);
    return NODE_APPLIED_DONE;
}

/* ---- the new shard's replica (loop thread) ---- */

static void node_replay_stash(node *n, node_replica *r) {
    uint64_t now = node_now_ms();
    int kept = 0;

    for (int i = 0; i < n->n_stash; i++) {
        node_stashed_msg *m = &n->stash[i];
        if (m->shard_id == r->shard_id && now - m->at_ms < NODE_STASH_MS)
            raft_step(r->raft, &m->msg);
        if (m->shard_id == r->shard_id || now - m->at_ms >= NODE_STASH_MS)
            node_msg_free(&m->msg);
        else
            n->stash[kept++] = *m;
    }
    n->n_stash = kept;
}

static int node_start_new_shard(node *n, node_new_shard *ns) {
    node_replica *r = node_new_replica(ns->desc, ns->replica_id);
    int rc = r ? rlog_open(n->store, ns->desc->id, &r->log) : BS_ERR_NOMEM;

    if (rc == 0) {
        node_conf_from_desc(ns->desc, &r->conf);
        rlog_set_conf(r->log, &r->conf);
        r->bytes_put = ns->bytes_put;
        rc = node_activate_replica(n, r);
    }
    if (rc != 0) {
        node_free_replica(r);
        return rc;
    }
    /* The old shard's leader leads the new one at once: the other replicas
     * vote as soon as they apply the split (or from the stash). */
    if (ns->campaign)
        raft_campaign_now(r->raft);
    node_replay_stash(n, r);
    return 0;
}

void node_start_new_shards(node *n) {
    for (int i = 0; i < n->n_new_shards; i++) {
        node_new_shard *ns = &n->new_shards[i];
        int rc = node_start_new_shard(n, ns);
        if (rc != 0)
            log_error("shard %llu: cannot start the replica a split created (%s); it starts "
                      "with the node's next restart",
                      (unsigned long long)ns->desc->id, bs_err_message(rc));
        else
            log_info("started replica %llu of shard %llu, made by a split",
                     (unsigned long long)ns->replica_id, (unsigned long long)ns->desc->id);
        basalt__v1__shard_descriptor__free_unpacked(ns->desc, NULL);
    }
    n->n_new_shards = 0;
}

void node_stash_raft(node *n, uint64_t shard_id, raft_msg *msg) {
    if (msg->type != RAFT_MSG_VOTE && msg->type != RAFT_MSG_PRE_VOTE)
        return;
    if (n->n_stash == NODE_STASH_MAX) {
        node_msg_free(&n->stash[0].msg);
        memmove(&n->stash[0], &n->stash[1], (NODE_STASH_MAX - 1) * sizeof(n->stash[0]));
        n->n_stash--;
    }
    n->stash[n->n_stash++] = (node_stashed_msg){shard_id, node_now_ms(), *msg};
    memset(msg, 0, sizeof(*msg)); /* moved */
}
