/* loop: the one thread that drives every Raft group of the node.
 *
 * Each iteration:
 *   1. takes everything the RPC threads put in the inbox and hands it to the
 *      replicas (raft_step, proposals, reads, admin requests);
 *   2. ticks every replica when a tick is due, and expires overdue requests;
 *   3. collects the ready batch of every replica that has one, sends what may
 *      go before persisting, then writes the entries and hard states of all of
 *      them in ONE synced RocksDB write: one fsync shared by every group;
 *   4. sends the messages that had to wait for that write;
 *   5. applies committed entries of all groups (one more, unsynced write: the
 *      log is already durable, so a lost apply is redone after a crash);
 *   6. answers the writes and reads that became answerable, and advances.
 * Idle replicas cost a tick each (a few instructions) and nothing else.
 */
#include "kvnode/node.h"

#include "kvnode/keys.h"

#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/error.h"
#include "runtime/log.h"

uint64_t node_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the inbox (any thread) ---- */

static uint64_t node_deadline_ms(rpc_call *call) {
    gpr_timespec d;

    if (call == NULL)
        return 0;
    d = gpr_convert_clock_type(rpc_call_deadline(call), GPR_CLOCK_MONOTONIC);
    if (gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0)
        return 0;
    /* gpr's monotonic clock and ours start at different points: go by the
     * time left. */
    gpr_timespec left = gpr_time_sub(d, gpr_now(GPR_CLOCK_MONOTONIC));
    int64_t left_ms = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
    return node_now_ms() + (left_ms > 0 ? (uint64_t)left_ms : 0);
}

bool node_push(node *n, node_in *in) {
    pthread_mutex_lock(&n->lock);
    if (n->stopping || n->inbox_len >= NODE_INBOX_MAX ||
        n->inbox_bytes + in->bytes > NODE_INBOX_BYTES_MAX) {
        pthread_mutex_unlock(&n->lock);
        return false;
    }
    in->next = NULL;
    if (n->inbox_tail)
        n->inbox_tail->next = in;
    else
        n->inbox_head = in;
    n->inbox_tail = in;
    n->inbox_len++;
    n->inbox_bytes += in->bytes;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->lock);
    return true;
}

void node_submit(node *n, node_in_kind kind, rpc_call *call, const ProtobufCMessage *request) {
    node_in *in = calloc(1, sizeof(*in));

    if (in == NULL) {
        rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "node out of memory");
        return;
    }
    in->kind = kind;
    in->call = call;
    in->request = request;
    in->deadline_ms = node_deadline_ms(call);
    /* A write waits for its entry to apply, even past a change of leader: a
     * caller that set no deadline gets one, rather than a wait that a node
     * cut off from its peers would never end. */
    if (in->deadline_ms == 0 && (kind == NODE_IN_PUT || kind == NODE_IN_DELETE))
        in->deadline_ms = node_now_ms() + NODE_WRITE_WAIT_MAX_MS;
    in->bytes = kind == NODE_IN_PUT ? protobuf_c_message_get_packed_size(request) : 0;
    if (!node_push(n, in)) {
        free(in);
        rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      "node overloaded: its queue of waiting requests is full; retry later");
    }
}

void node_submit_owned_peers(node *n, Basalt__V1__UpdateNodesRequest *update) {
    node_in *in = calloc(1, sizeof(*in));

    if (in != NULL) {
        in->kind = NODE_IN_UPDATE_NODES;
        in->request = &update->base;
        in->owns_request = true;
        if (node_push(n, in))
            return;
        free(in);
    }
    basalt__v1__update_nodes_request__free_unpacked(update, NULL);
}

void node_submit_raft(node *n, const Basalt__V1__RaftBatch *batch) {
    for (size_t i = 0; i < batch->n_messages; i++) {
        node_in *in = calloc(1, sizeof(*in));
        if (in == NULL)
            return;
        in->kind = NODE_IN_RAFT;
        in->shard_id = batch->messages[i]->shard_id;
        in->bytes = basalt__v1__raft_message__get_packed_size(batch->messages[i]);
        if (node_msg_from_wire(batch->messages[i], &in->msg) != 0) {
            log_warn("dropping a malformed raft message from node %llu",
                     (unsigned long long)batch->from_node);
            free(in);
            continue;
        }
        if (!node_push(n, in)) {
            node_msg_free(&in->msg);
            free(in); /* dropped: Raft sends again */
        }
    }
}

/* ---- handling inbox items (loop thread) ---- */

/* A replica created empty (a move's new replica, or one the router made
 * again) holds nothing until its leader's snapshot. Were it a voter that lost
 * its state, its vote could elect a leader missing entries it had helped
 * commit, or be given twice in one term: it votes only once it holds data. */
static bool node_may_vote(const node_replica *r, const raft_msg *m) {
    return (m->type != RAFT_MSG_VOTE && m->type != RAFT_MSG_PRE_VOTE) || rlog_applied(r->log) > 0;
}

static void node_handle_raft(node *n, node_in *in) {
    node_replica *r = node_replica_by_shard(n, in->shard_id);

    if (r != NULL && !node_may_vote(r, &in->msg)) {
        /* At most once an election timeout, and only while the shard has no
         * leader: what an operator wants to see then. */
        log_info("shard %llu: replica %llu holds no data yet, so it does not vote",
                 (unsigned long long)r->shard_id, (unsigned long long)r->replica_id);
    } else if (r != NULL && !r->has_rd && !n->isolated) {
        int rc = raft_step(r->raft, &in->msg);
        if (rc != RAFT_OK && rc != RAFT_ERR_INVALID)
            log_warn("shard %llu: raft step failed: %s", (unsigned long long)r->shard_id,
                     raft_err_message(rc));
    } else if (r == NULL && !n->isolated) {
        node_stash_raft(n, in->shard_id, &in->msg);
    }
    node_msg_free(&in->msg);
    free(in);
}

/* RocksDB's estimate for the shard's range, which leaves out the memtable,
 * or the bytes put since load when that is more. */
static uint64_t node_approximate_bytes(node *n, node_replica *r) {
    const Basalt__V1__ShardDescriptor *d = r->desc;
    uint64_t files = kvs_approximate_size(n->store, KVS_CF_DATA, d->start.data, d->start.len,
                                          d->end.data, d->end.len);
    return files > r->bytes_put ? files : r->bytes_put;
}

static void node_handle_status(node *n, node_in *in) {
    Basalt__V1__NodeStatusResponse resp = BASALT__V1__NODE_STATUS_RESPONSE__INIT;
    Basalt__V1__ReplicaStatus *st = calloc((size_t)n->n_replicas + 1, sizeof(*st));
    Basalt__V1__ReplicaStatus **ptrs = calloc((size_t)n->n_replicas + 1, sizeof(*ptrs));

    resp.node_id = n->id;
    for (int i = 0; st && ptrs && i < n->n_replicas; i++) {
        node_replica *r = n->replicas[i];
        basalt__v1__replica_status__init(&st[i]);
        st[i].descriptor = r->desc;
        st[i].replica_id = r->replica_id;
        st[i].leader_replica_id = raft_leader(r->raft);
        st[i].term = raft_term(r->raft);
        st[i].commit_index = raft_commit_index(r->raft);
        st[i].applied_index = rlog_applied(r->log);
        st[i].is_leader = raft_get_role(r->raft) == RAFT_LEADER;
        st[i].first_index = rlog_first_index(r->log);
        st[i].last_index = rlog_last_index(r->log);
        st[i].approximate_bytes = node_approximate_bytes(n, r);
        st[i].requests = r->requests;
        ptrs[i] = &st[i];
    }
    resp.n_replicas = st && ptrs ? (size_t)n->n_replicas : 0;
    resp.replicas = ptrs;
    resp.raft_sync_writes = n->raft_sync_writes;
    resp.raft_entries_persisted = n->entries_persisted;
    resp.raft_loop_iterations = n->loop_iterations;
    rpc_call_reply(in->call, &resp.base);
    free(st);
    free(ptrs);
    free(in);
}

static void node_handle_admin(node *n, node_in *in) {
    char why[256] = "";
    int rc = 0;
    Basalt__V1__CreateReplicaResponse created = BASALT__V1__CREATE_REPLICA_RESPONSE__INIT;
    Basalt__V1__RemoveReplicaResponse removed = BASALT__V1__REMOVE_REPLICA_RESPONSE__INIT;
    Basalt__V1__UpdateNodesResponse updated = BASALT__V1__UPDATE_NODES_RESPONSE__INIT;
    const ProtobufCMessage *ok = NULL;

    switch (in->kind) {
    case NODE_IN_CREATE_REPLICA: {
        const Basalt__V1__CreateReplicaRequest *req = (const void *)in->request;
        rc = node_create_replica(n, req->descriptor, req->bootstrap, why, sizeof(why));
        ok = &created.base;
        break;
    }
    case NODE_IN_REMOVE_REPLICA: {
        const Basalt__V1__RemoveReplicaRequest *req = (const void *)in->request;
        rc =
            node_remove_replica(n, req->shard_id, req->replica_id, req->conf_ver, why, sizeof(why));
        ok = &removed.base;
        break;
    }
    default:
        rc = node_update_peers(n, (const void *)in->request, why, sizeof(why));
        ok = &updated.base;
        break;
    }
    if (in->owns_request) {
        if (rc != 0)
            log_warn("applying peers from the router failed: %s", why);
        protobuf_c_message_free_unpacked((ProtobufCMessage *)in->request, NULL);
    } else if (rc == 0)
        rpc_call_reply(in->call, ok);
    else
        rpc_call_fail(in->call,
                      rc == BS_ERR_INVALID_ARGUMENT      ? GRPC_STATUS_INVALID_ARGUMENT
                      : rc == BS_ERR_FAILED_PRECONDITION ? GRPC_STATUS_FAILED_PRECONDITION
                      : rc == BS_ERR_NOT_FOUND           ? GRPC_STATUS_NOT_FOUND
                                                         : GRPC_STATUS_INTERNAL,
                      "%s", why);
    free(in);
}

/* Starts Raft's leader transfer to the replica on the asked node. */
static void node_handle_hand_over(node *n, node_in *in) {
    const Basalt__V1__HandOverLeadershipRequest *req = (const void *)in->request;
    Basalt__V1__HandOverLeadershipResponse resp = BASALT__V1__HAND_OVER_LEADERSHIP_RESPONSE__INIT;
    node_replica *r = node_replica_by_shard(n, req->shard_id);
    uint64_t target = 0;

    for (size_t i = 0; r != NULL && i < r->desc->n_replicas; i++) {
        const Basalt__V1__ReplicaDescriptor *rd = r->desc->replicas[i];
        if (rd->node_id == req->to_node_id &&
            rd->role == BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_VOTER)
            target = rd->replica_id;
    }
    if (r == NULL)
        rpc_call_fail(in->call, GRPC_STATUS_NOT_FOUND, "no replica of shard %llu here",
                      (unsigned long long)req->shard_id);
    else if (raft_get_role(r->raft) != RAFT_LEADER)
        node_fail_not_leader(n, r, in->call);
    else if (target == 0)
        rpc_call_fail(in->call, GRPC_STATUS_INVALID_ARGUMENT,
                      "shard %llu has no voting replica on node %llu",
                      (unsigned long long)req->shard_id, (unsigned long long)req->to_node_id);
    else if (target != r->replica_id && raft_transfer_leader(r->raft, target) != RAFT_OK)
        rpc_call_fail(in->call, GRPC_STATUS_UNAVAILABLE,
                      "shard %llu cannot hand over its leadership now; retry",
                      (unsigned long long)req->shard_id);
    else
        rpc_call_reply(in->call, &resp.base);
    free(in);
}

static void node_handle_isolate(node *n, node_in *in) {
    Basalt__V1__IsolateResponse resp = BASALT__V1__ISOLATE_RESPONSE__INIT;

    n->isolated = ((const Basalt__V1__IsolateRequest *)(const void *)in->request)->isolated;
    log_warn("fault injection: raft traffic %s", n->isolated ? "dropped" : "flows again");
    rpc_call_reply(in->call, &resp.base);
    free(in);
}

static void node_dispatch(node *n, node_in *in) {
    switch (in->kind) {
    case NODE_IN_SNAPSHOT_RECEIVED:
        node_handle_snapshot_received(n, in);
        break;
    case NODE_IN_SNAPSHOT_SENT:
        node_handle_snapshot_sent(n, in);
        break;
    case NODE_IN_ISOLATE:
        node_handle_isolate(n, in);
        break;
    case NODE_IN_RAFT:
        node_handle_raft(n, in);
        break;
    case NODE_IN_PUT:
    case NODE_IN_DELETE:
        node_handle_write(n, in);
        break;
    case NODE_IN_GET:
    case NODE_IN_SCAN:
        node_handle_read(n, in);
        break;
    case NODE_IN_STATUS:
        node_handle_status(n, in);
        break;
    case NODE_IN_CHANGE_REPLICAS:
        node_handle_change_replicas(n, in);
        break;
    case NODE_IN_SPLIT:
        node_handle_split(n, in);
        break;
    case NODE_IN_HAND_OVER:
        node_handle_hand_over(n, in);
        break;
    default:
        node_handle_admin(n, in);
        break;
    }
}

/* ---- ready batches ---- */

/* Fails what waited on a replica that lost leadership; reads state changes. */
static void node_watch_role(node *n, node_replica *r) {
    raft_role role = raft_get_role(r->raft);
    bool new_term = raft_term(r->raft) != r->last_term;

    /* (A term may pass within one turn of the loop: compare terms too.)
     * Reads wait for a ReadIndex that will not come. Writes wait on: the
     * entry may still commit under the next leader, and apply says whether
     * it did. */
    if (r->last_role == RAFT_LEADER && (role != RAFT_LEADER || new_term))
        node_fail_pending(n, r, NULL, "leadership was lost before the read was confirmed");
    /* Leading again: writes of an earlier term still waiting go (their
     * outcome unknown), so the pending writes stay in index order. */
    if (role == RAFT_LEADER && (r->last_role != RAFT_LEADER || new_term))
        node_fail_earlier_writes(n, r);
    if (role != r->last_role || new_term)
        log_info("shard %llu: replica %llu is %s in term %llu (leader %llu)",
                 (unsigned long long)r->shard_id, (unsigned long long)r->replica_id,
                 raft_role_name(role), (unsigned long long)raft_term(r->raft),
                 (unsigned long long)raft_leader(r->raft));
    r->last_role = role;
    r->last_term = raft_term(r->raft);
}

/* Whether a ready batch holds something that must survive a power cut before
 * the messages depending on it go out: entries, a snapshot, a term or a vote.
 * A commit index alone need not: a node that loses it learns it again. */
static bool node_ready_needs_sync(node_replica *r) {
    raft_hard_state before = rlog_hard_state(r->log);

    return r->rd.n_entries > 0 || r->rd.has_snapshot ||
           (r->rd.has_hard_state &&
            (r->rd.hard_state.term != before.term || r->rd.hard_state.vote != before.vote));
}

static void node_persist_readies(node *n) {
    bool sync = false;

    for (int i = 0; i < n->n_replicas; i++) {
        node_replica *r = n->replicas[i];
        if (!r->has_rd)
            continue;
        sync = sync || node_ready_needs_sync(r);
        node_send(n, r, r->rd.messages, r->rd.n_messages);
        if (r->rd.has_snapshot)
            node_install_snapshot(n, r);
        rlog_stage_ready(r->log, n->persist_batch, &r->rd);
        n->entries_persisted += r->rd.n_entries;
    }
    node_flush_sends(n);
    if (kvs_batch_count(n->persist_batch) > 0) {
        if (kvs_batch_write(n->persist_batch, sync) != 0) {
            /* Acknowledging anything now could lose it: stop the node. */
            log_error("cannot persist the raft log: stopping");
            abort();
        }
        n->raft_sync_writes += sync;
    }
}

static void node_process_readies(node *n) {
    bool any = false;

    for (int i = 0; i < n->n_replicas; i++) {
        node_replica *r = n->replicas[i];
        if (!raft_has_ready(r->raft))
            continue;
        if (raft_ready_get(r->raft, &r->rd) != RAFT_OK) {
            log_error("shard %llu: cannot read its raft log", (unsigned long long)r->shard_id);
            continue;
        }
        r->has_rd = true;
        any = true;
    }
    if (!any)
        return;

    node_persist_readies(n);
    for (int i = 0; i < n->n_replicas; i++) {
        node_replica *r = n->replicas[i];
        if (r->has_rd)
            node_send(n, r, r->rd.messages_after_persist, r->rd.n_messages_after_persist);
    }
    node_flush_sends(n);

    for (int i = 0; i < n->n_replicas; i++) {
        if (n->replicas[i]->has_rd)
            node_apply_committed(n, n->replicas[i]);
    }
    if (kvs_batch_write(n->apply_batch, false) != 0) {
        log_error("cannot write applied entries: stopping");
        abort();
    }
    node_start_new_shards(n);
    for (int i = 0; i < n->n_replicas; i++) {
        node_replica *r = n->replicas[i];
        if (!r->has_rd)
            continue;
        node_take_read_states(n, r);
        node_answer_after_apply(n, r);
        r->has_rd = false;
        raft_advance(r->raft, &r->rd);
        node_watch_role(n, r);
    }
}

/* ---- the thread ---- */

static node_in *node_take_inbox(node *n, uint64_t wait_until_ms) {
    node_in *all;

    pthread_mutex_lock(&n->lock);
    while (n->inbox_head == NULL && !n->stopping && node_now_ms() < wait_until_ms) {
        struct timespec ts;
        uint64_t wake_ms = wait_until_ms;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = node_now_ms();
        uint64_t delta = wake_ms > now ? wake_ms - now : 0;
        ts.tv_sec += (time_t)(delta / 1000);
        ts.tv_nsec += (long)(delta % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&n->wake, &n->lock, &ts);
    }
    all = n->inbox_head;
    n->inbox_head = n->inbox_tail = NULL;
    n->inbox_len = 0;
    n->inbox_bytes = 0;
    pthread_mutex_unlock(&n->lock);
    return all;
}

/* Logs are looked at for compaction once every this many ticks. */
#define NODE_COMPACT_EVERY_TICKS 10

static void node_tick(node *n, uint64_t now) {
    uint64_t ticks = ++n->ticks;

    for (int i = 0; i < n->n_replicas; i++) {
        raft_tick(n->replicas[i]->raft);
        node_expire_pending(n, n->replicas[i], now);
        if (ticks % NODE_COMPACT_EVERY_TICKS == 0)
            node_maybe_compact(n, n->replicas[i]);
    }
}

static void *node_main(void *arg) {
    node *n = arg;

    for (;;) {
        node_in *in = node_take_inbox(n, n->next_tick_ms);
        pthread_mutex_lock(&n->lock);
        bool stopping = n->stopping;
        pthread_mutex_unlock(&n->lock);
        while (in != NULL) {
            node_in *next = in->next;
            node_dispatch(n, in);
            in = next;
        }
        if (stopping)
            break;
        uint64_t now = node_now_ms();
        if (now >= n->next_tick_ms) {
            node_tick(n, now);
            n->next_tick_ms = now + NODE_TICK_MS;
        }
        node_process_readies(n);
        /* A received snapshot is installed by now, or Raft declined it. */
        for (int i = 0; i < n->n_replicas; i++)
            node_discard_snapshot(n->replicas[i]);
        n->loop_iterations++;
    }
    return NULL;
}

int node_stored_id(kvs *store, uint64_t *id) {
    uint8_t key[KEYS_SHARD_BYTES];
    bool found;
    char *stored;
    size_t len;
    int rc;

    *id = 0;
    keys_shard(key, 0, KEYS_NODE_ID);
    if ((rc = kvs_get(store, KVS_CF_RAFT, key, sizeof(key), &found, &stored, &len)) != 0)
        return rc;
    if (found && len == 8)
        *id = keys_get_u64_le((const uint8_t *)stored);
    if (found)
        free(stored);
    return 0;
}

/* A data directory belongs to one node id for life. */
static int node_check_identity(node *n) {
    uint8_t key[KEYS_SHARD_BYTES], value[8];
    bool found;
    char *stored;
    size_t len;
    int rc;

    keys_shard(key, 0, KEYS_NODE_ID);
    if ((rc = kvs_get(n->store, KVS_CF_RAFT, key, sizeof(key), &found, &stored, &len)) != 0)
        return rc;
    if (found) {
        uint64_t id = len == 8 ? keys_get_u64_le((const uint8_t *)stored) : 0;
        free(stored);
        if (id != n->id) {
            log_error("this data directory belongs to node %llu, not node %llu",
                      (unsigned long long)id, (unsigned long long)n->id);
            return BS_ERR_FAILED_PRECONDITION;
        }
        return 0;
    }
    keys_put_u64_le(value, n->id);
    kvs_batch_put(n->persist_batch, KVS_CF_RAFT, key, sizeof(key), value, sizeof(value));
    return kvs_batch_write(n->persist_batch, true);
}

int node_start(const node_config *config, node **out) {
    node *n = calloc(1, sizeof(*n));
    pthread_condattr_t attr;
    int rc;

    *out = NULL;
    if (n == NULL)
        return BS_ERR_NOMEM;
    n->id = config->node_id;
    n->store = config->store;
    pthread_mutex_init(&n->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&n->wake, &attr);
    pthread_condattr_destroy(&attr);
    n->persist_batch = kvs_batch_new(n->store);
    n->apply_batch = kvs_batch_new(n->store);
    n->compact_batch = kvs_batch_new(n->store);
    n->log_max_entries =
        config->log_max_entries ? config->log_max_entries : NODE_LOG_MAX_ENTRIES_DEFAULT;
    n->streams = rpc_stream_pool_create();
    n->next_tick_ms = node_now_ms() + NODE_TICK_MS;

    if ((rc = node_check_identity(n)) != 0 || (rc = node_snapshots_start(n)) != 0 ||
        (rc = node_load_peers(n)) != 0 || (rc = node_load_replicas(n)) != 0 ||
        (rc = node_snapshots_clean(n)) != 0) {
        node_free(n);
        return rc;
    }
    if (config->bootstrap && n->n_replicas == 0) {
        Basalt__V1__ShardDescriptor desc = BASALT__V1__SHARD_DESCRIPTOR__INIT;
        Basalt__V1__ReplicaDescriptor self = BASALT__V1__REPLICA_DESCRIPTOR__INIT;
        Basalt__V1__ReplicaDescriptor *replicas[] = {&self};
        char why[256];
        desc.id = 1;
        self.node_id = n->id;
        self.replica_id = n->id;
        desc.n_replicas = 1;
        desc.replicas = replicas;
        if ((rc = node_create_replica(n, &desc, true, why, sizeof(why))) != 0) {
            log_error("cannot bootstrap shard 1: %s", why);
            node_free(n);
            return rc;
        }
        log_info("bootstrapped shard 1 over the whole keyspace with this node as its only voter");
    }
    if (pthread_create(&n->thread, NULL, node_main, n) != 0) {
        n->thread = 0;
        node_free(n);
        return BS_ERR_NOMEM;
    }
    *out = n;
    return 0;
}

/* Answers what is still in the inbox once the loop has ended. */
static void node_refuse_inbox(node *n) {
    node_in *in = node_take_inbox(n, 0);

    while (in != NULL) {
        node_in *next = in->next;
        if (in->kind == NODE_IN_RAFT || in->kind == NODE_IN_SNAPSHOT_SENT) {
            node_msg_free(&in->msg);
        } else if (in->kind == NODE_IN_SNAPSHOT_RECEIVED) {
            node_msg_free(&in->msg);
            if (in->snapshot_path)
                unlink(in->snapshot_path);
            free(in->snapshot_path);
            basalt__v1__shard_descriptor__free_unpacked(in->snapshot_desc, NULL);
        } else if (in->owns_request) {
            protobuf_c_message_free_unpacked((ProtobufCMessage *)in->request, NULL);
        } else {
            rpc_call_fail(in->call, GRPC_STATUS_UNAVAILABLE, "the node is stopping");
        }
        free(in);
        in = next;
    }
}

void node_halt(node *n) {
    pthread_mutex_lock(&n->lock);
    bool running = !n->stopping && n->thread != 0;
    n->stopping = true;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->lock);
    if (!running)
        return;
    pthread_join(n->thread, NULL);
    node_snapshots_stop(n);
    node_refuse_inbox(n);
    for (int i = 0; i < n->n_replicas; i++)
        node_fail_pending(n, n->replicas[i], "the node is stopping: the write's outcome is unknown",
                          "the node is stopping");
}

void node_free(node *n) {
    if (n == NULL)
        return;
    node_halt(n);
    for (int i = 0; i < n->n_replicas; i++)
        node_free_replica(n->replicas[i]);
    rpc_stream_pool_destroy(n->streams);
    for (int i = 0; i < n->n_peers; i++) {
        free(n->peers[i].address);
        free(n->outboxes[i].msgs);
    }
    node_snapshots_stop(n);
    kvs_batch_free(n->persist_batch);
    kvs_batch_free(n->apply_batch);
    kvs_batch_free(n->compact_batch);
    free(n->new_shards);
    pthread_cond_destroy(&n->wake);
    pthread_mutex_destroy(&n->lock);
    free(n);
}
