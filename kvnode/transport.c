/* transport: Raft messages between nodes.
 *
 * Out: during a loop iteration node_send converts each message to its wire
 * form and files it under the destination node; node_flush_sends then sends
 * one RaftBatch per node on that node's long-lived stream (rpc_stream). A
 * peer that is down costs nothing but dropped messages: the stream never
 * blocks, and Raft sends again.
 * In: the RaftTransport.Send stream's messages go straight to the loop's
 * inbox (node_submit_raft).
 * Peers: node id -> address, set by UpdateNodes and kept in the raft column
 * family under shard 0, which no shard uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvnode/keys.h"
#include "kvnode/node.h"
#include "runtime/error.h"
#include "runtime/log.h"

#define NODE_TRANSPORT_METHOD "/basalt.v1.RaftTransport/Send"

/* ---- wire form ---- */

void node_conf_to_wire(const raft_conf_state *c, Basalt__V1__RaftConfState *w) {
    basalt__v1__raft_conf_state__init(w);
    w->n_voters = c->n_voters;
    w->voters = (uint64_t *)c->voters;
    w->n_voters_outgoing = c->n_voters_outgoing;
    w->voters_outgoing = (uint64_t *)c->voters_outgoing;
    w->n_learners = c->n_learners;
    w->learners = (uint64_t *)c->learners;
    w->n_learners_next = c->n_learners_next;
    w->learners_next = (uint64_t *)c->learners_next;
}

/* A wire message pointing into m (valid until the ready batch advances). */
Basalt__V1__RaftMessage *node_msg_to_wire(uint64_t shard_id, const raft_msg *m) {
    Basalt__V1__RaftMessage *w = calloc(1, sizeof(*w));
    Basalt__V1__RaftEntry *ents = m->n_entries ? calloc(m->n_entries, sizeof(*ents)) : NULL;
    Basalt__V1__RaftEntry **ptrs = m->n_entries ? calloc(m->n_entries, sizeof(*ptrs)) : NULL;
    Basalt__V1__RaftSnapshotMeta *snap = calloc(1, sizeof(*snap));
    Basalt__V1__RaftConfState *conf = calloc(1, sizeof(*conf));

    if (w == NULL || snap == NULL || conf == NULL || (m->n_entries && (!ents || !ptrs))) {
        free(w), free(ents), free(ptrs), free(snap), free(conf);
        return NULL;
    }
    basalt__v1__raft_message__init(w);
    w->shard_id = shard_id;
    w->type = m->type;
    w->from = m->from;
    w->to = m->to;
    w->term = m->term;
    w->log_term = m->log_term;
    w->index = m->index;
    w->commit = m->commit;
    w->reject = m->reject;
    w->transfer = m->transfer;
    w->reject_hint = m->reject_hint;
    w->hint_term = m->hint_term;
    w->context = m->context;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        basalt__v1__raft_entry__init(&ents[i]);
        ents[i].term = m->entries[i].term;
        ents[i].index = m->entries[i].index;
        ents[i].type = m->entries[i].type;
        ents[i].data.data = m->entries[i].data;
        ents[i].data.len = m->entries[i].len;
        ptrs[i] = &ents[i];
    }
    w->n_entries = m->n_entries;
    w->entries = ptrs;
    basalt__v1__raft_snapshot_meta__init(snap);
    snap->index = m->snapshot.index;
    snap->term = m->snapshot.term;
    node_conf_to_wire(&m->snapshot.conf, conf);
    snap->conf = conf;
    w->snapshot = snap;
    return w;
}

void node_wire_free(Basalt__V1__RaftMessage *w) {
    if (w == NULL)
        return;
    if (w->n_entries > 0)
        free(w->entries[0]); /* the entries were one array */
    free(w->entries);
    if (w->snapshot)
        free(w->snapshot->conf);
    free(w->snapshot);
    free(w);
}

int node_conf_from_wire(const Basalt__V1__RaftConfState *w, raft_conf_state *c) {
    memset(c, 0, sizeof(*c));
    if (w == NULL)
        return 0;
    if (w->n_voters > RAFT_MEMBERS_MAX || w->n_voters_outgoing > RAFT_MEMBERS_MAX ||
        w->n_learners > RAFT_MEMBERS_MAX || w->n_learners_next > RAFT_MEMBERS_MAX)
        return BS_ERR_CORRUPTION;
    c->n_voters = (uint32_t)w->n_voters;
    memcpy(c->voters, w->voters, w->n_voters * sizeof(uint64_t));
    c->n_voters_outgoing = (uint32_t)w->n_voters_outgoing;
    memcpy(c->voters_outgoing, w->voters_outgoing, w->n_voters_outgoing * sizeof(uint64_t));
    c->n_learners = (uint32_t)w->n_learners;
    memcpy(c->learners, w->learners, w->n_learners * sizeof(uint64_t));
    c->n_learners_next = (uint32_t)w->n_learners_next;
    memcpy(c->learners_next, w->learners_next, w->n_learners_next * sizeof(uint64_t));
    return 0;
}

int node_msg_from_wire(const Basalt__V1__RaftMessage *w, raft_msg *m) {
    memset(m, 0, sizeof(*m));
    if (w->type >= RAFT_MSG_TYPE_COUNT_ || w->n_entries > NODE_MAX_ENTRIES_PER_MSG * 4)
        return BS_ERR_CORRUPTION;
    m->type = (raft_msg_type)w->type;
    m->from = w->from;
    m->to = w->to;
    m->term = w->term;
    m->log_term = w->log_term;
    m->index = w->index;
    m->commit = w->commit;
    m->reject = w->reject;
    m->transfer = w->transfer;
    m->reject_hint = w->reject_hint;
    m->hint_term = w->hint_term;
    m->context = w->context;
    if (w->snapshot != NULL) {
        m->snapshot.index = w->snapshot->index;
        m->snapshot.term = w->snapshot->term;
        if (node_conf_from_wire(w->snapshot->conf, &m->snapshot.conf) != 0)
            return BS_ERR_CORRUPTION;
    }
    if (w->n_entries == 0)
        return 0;
    m->entries = calloc(w->n_entries, sizeof(raft_entry));
    if (m->entries == NULL)
        return BS_ERR_NOMEM;
    m->n_entries = (uint32_t)w->n_entries;
    for (size_t i = 0; i < w->n_entries; i++) {
        const Basalt__V1__RaftEntry *e = w->entries[i];
        if (e->type > RAFT_ENTRY_CONF_CHANGE || e->data.len > UINT32_MAX) {
            node_msg_free(m);
            return BS_ERR_CORRUPTION;
        }
        m->entries[i] =
            (raft_entry){e->term, e->index, (raft_entry_type)e->type, (uint32_t)e->data.len, NULL};
        if (e->data.len > 0) {
            m->entries[i].data = malloc(e->data.len);
            if (m->entries[i].data == NULL) {
                node_msg_free(m);
                return BS_ERR_NOMEM;
            }
            memcpy(m->entries[i].data, e->data.data, e->data.len);
        }
    }
    return 0;
}

void node_msg_free(raft_msg *m) {
    raft_entries_free(m->entries, m->n_entries);
    m->entries = NULL;
    m->n_entries = 0;
}

/* ---- peers ---- */

static int node_peer_index(node *n, uint64_t node_id) {
    for (int i = 0; i < n->n_peers; i++) {
        if (n->peers[i].node_id == node_id)
            return i;
    }
    return -1;
}

const char *node_peer_address(node *n, uint64_t node_id) {
    int i = node_peer_index(n, node_id);
    return i >= 0 ? n->peers[i].address : NULL;
}

/* Adds or changes one peer (loop thread). */
static int node_set_peer(node *n, uint64_t node_id, const char *address) {
    int i = node_peer_index(n, node_id);

    char *copy;

    if (i >= 0 && strcmp(n->peers[i].address, address) == 0)
        return 0;
    if ((copy = strdup(address)) == NULL)
        return BS_ERR_NOMEM;
    if (i >= 0) {
        /* A peer that moved keeps its stream, pointed at the new address. */
        if (rpc_stream_retarget(n->peers[i].stream, address) != 0) {
            free(copy);
            return BS_ERR_NOMEM;
        }
        free(n->peers[i].address);
        n->peers[i].address = copy;
    } else {
        rpc_stream *stream = n->n_peers < NODE_PEERS_MAX
                                 ? rpc_stream_open(n->streams, address, NODE_TRANSPORT_METHOD)
                                 : NULL;
        if (stream == NULL) {
            free(copy);
            return BS_ERR_RESOURCE_EXHAUSTED;
        }
        i = n->n_peers++;
        n->peers[i] = (node_peer){.node_id = node_id, .address = copy, .stream = stream};
    }
    log_info("peer node %llu is at %s", (unsigned long long)node_id, address);
    return 0;
}

static void node_peers_key(uint8_t *key) {
    keys_shard(key, 0, KEYS_NODE_PEERS);
}

int node_update_peers(node *n, const Basalt__V1__UpdateNodesRequest *req, char *why,
                      size_t why_size) {
    Basalt__V1__UpdateNodesRequest all = BASALT__V1__UPDATE_NODES_REQUEST__INIT;
    Basalt__V1__NodeAddress *addrs = NULL, **ptrs = NULL;
    uint8_t key[KEYS_SHARD_BYTES];
    int rc = 0;

    for (size_t i = 0; i < req->n_nodes; i++) {
        const Basalt__V1__NodeAddress *a = req->nodes[i];
        if (a->node_id == 0 || a->address[0] == '\0' || strchr(a->address, ':') == NULL) {
            snprintf(why, why_size, "node %llu: needs an id above 0 and a HOST:PORT address",
                     (unsigned long long)a->node_id);
            return BS_ERR_INVALID_ARGUMENT;
        }
    }
    for (size_t i = 0; i < req->n_nodes && rc == 0; i++) {
        if (req->nodes[i]->node_id != n->id)
            rc = node_set_peer(n, req->nodes[i]->node_id, req->nodes[i]->address);
    }
    if (rc != 0) {
        snprintf(why, why_size, "cannot add more than %d peers", NODE_PEERS_MAX);
        return rc;
    }

    /* Persist the whole registry. */
    addrs = calloc((size_t)n->n_peers + 1, sizeof(*addrs));
    ptrs = calloc((size_t)n->n_peers + 1, sizeof(*ptrs));
    for (int i = 0; addrs && ptrs && i < n->n_peers; i++) {
        basalt__v1__node_address__init(&addrs[i]);
        addrs[i].node_id = n->peers[i].node_id;
        addrs[i].address = n->peers[i].address;
        ptrs[i] = &addrs[i];
    }
    all.n_nodes = addrs && ptrs ? (size_t)n->n_peers : 0;
    all.nodes = ptrs;
    size_t len = basalt__v1__update_nodes_request__get_packed_size(&all);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf != NULL) {
        basalt__v1__update_nodes_request__pack(&all, buf);
        node_peers_key(key);
        kvs_batch_put(n->persist_batch, KVS_CF_RAFT, key, sizeof(key), buf, len);
        rc = kvs_batch_write(n->persist_batch, true);
    } else {
        rc = BS_ERR_NOMEM;
    }
    free(buf);
    free(addrs);
    free(ptrs);
    if (rc != 0)
        snprintf(why, why_size, "cannot persist the peers");
    return rc;
}

int node_load_peers(node *n) {
    uint8_t key[KEYS_SHARD_BYTES];
    bool found;
    char *value;
    size_t len;
    int rc;

    node_peers_key(key);
    if ((rc = kvs_get(n->store, KVS_CF_RAFT, key, sizeof(key), &found, &value, &len)) != 0)
        return rc;
    if (!found)
        return 0;
    Basalt__V1__UpdateNodesRequest *req =
        basalt__v1__update_nodes_request__unpack(NULL, len, (const uint8_t *)value);
    free(value);
    if (req == NULL) {
        log_error("the stored peer list is malformed");
        return BS_ERR_CORRUPTION;
    }
    for (size_t i = 0; i < req->n_nodes && rc == 0; i++)
        rc = node_set_peer(n, req->nodes[i]->node_id, req->nodes[i]->address);
    basalt__v1__update_nodes_request__free_unpacked(req, NULL);
    return rc;
}

/* ---- sending ---- */

void node_send(node *n, node_replica *r, const raft_msg *msgs, size_t n_msgs) {
    for (size_t i = 0; i < n_msgs; i++) {
        /* Snapshots always get an outcome reported back (failed, when
         * isolated), or Raft would wait for one forever. */
        if (msgs[i].type == RAFT_MSG_SNAPSHOT) {
            node_snapshot_send(n, r, &msgs[i]);
            continue;
        }
        if (n->isolated)
            continue;
        uint64_t to_node = node_of_replica(r, msgs[i].to);
        int p = to_node ? node_peer_index(n, to_node) : -1;
        if (p < 0) {
            log_debug("shard %llu: no address for replica %llu; message dropped",
                      (unsigned long long)r->shard_id, (unsigned long long)msgs[i].to);
            continue;
        }
        node_outbox *box = &n->outboxes[p];
        if (box->n == box->cap) {
            size_t cap = box->cap ? box->cap * 2 : 64;
            void *grown = realloc(box->msgs, cap * sizeof(*box->msgs));
            if (grown == NULL)
                continue;
            box->msgs = grown;
            box->cap = cap;
        }
        Basalt__V1__RaftMessage *w = node_msg_to_wire(r->shard_id, &msgs[i]);
        if (w != NULL)
            box->msgs[box->n++] = w;
    }
}

void node_flush_sends(node *n) {
    for (int p = 0; p < n->n_peers; p++) {
        node_outbox *box = &n->outboxes[p];
        if (box->n == 0)
            continue;
        Basalt__V1__RaftBatch batch = BASALT__V1__RAFT_BATCH__INIT;
        batch.from_node = n->id;
        batch.to_node = n->peers[p].node_id;
        batch.n_messages = box->n;
        batch.messages = box->msgs;
        rpc_stream_send(n->peers[p].stream, &batch.base);
        for (size_t i = 0; i < box->n; i++)
            node_wire_free(box->msgs[i]);
        box->n = 0;
    }
}
