/* snapshot: shard snapshots for replicas too far behind, and log compaction.
 *
 * Sending (leader): when Raft asks for a snapshot, the loop takes a RocksDB
 * snapshot at once (its data is the shard at the applied index Raft named)
 * and queues a job. The sender thread writes the shard's keys as seen by it
 * into an SST file (rocksdb_sstfilewriter), streams the file in checksummed
 * chunks (RaftTransport.SendSnapshot; each send waits for flow control), and
 * tells the loop how it ended, which tells Raft (raft_report_snapshot).
 *
 * Receiving (follower): chunks are checked and written to a file under
 * DATA_DIR/snapshots; a complete, verified file goes to the loop with the
 * Raft message, which Raft takes (or declines, if it is stale).
 *
 * Installing, crash-safe in three steps:
 *   1. persist a SnapshotInstall record (what, and where the file is);
 *   2. delete the shard's range and ingest the file (idempotent);
 *   3. in the loop's synced batch: the new raft state, apply state and
 *      replica state, and the record's removal. Then delete the file.
 * A restart that finds the record redoes 2 and 3 (node_finish_interrupted_install).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "kvnode/keys.h"
#include "kvnode/node.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/rpc_client.h"

#define NODE_SNAPSHOT_METHOD "/basalt.v1.RaftTransport/SendSnapshot"

struct node_snapshot_job {
    node_snapshot_job *next;
    uint64_t shard_id;
    raft_msg msg; /* no entries; snapshot meta only */
    Basalt__V1__ShardDescriptor *desc;
    char *address;
    kvs_snapshot *snap;
};

static _Atomic uint64_t node_snapshot_file_counter;

static void node_snapshot_dir(node *n, char *buf, size_t size) {
    snprintf(buf, size, "%s/snapshots", kvs_dir(n->store));
}

/* ---- sending ---- */

static void node_post_sent(node *n, uint64_t shard_id, const raft_msg *m, bool ok) {
    node_in *in = calloc(1, sizeof(*in));

    if (in == NULL)
        return;
    in->kind = NODE_IN_SNAPSHOT_SENT;
    in->shard_id = shard_id;
    in->msg = *m;
    in->msg.entries = NULL;
    in->msg.n_entries = 0;
    in->snapshot_ok = ok;
    if (!node_push(n, in))
        free(in); /* stopping, or overloaded: Raft retries the snapshot */
}

void node_snapshot_send(node *n, node_replica *r, const raft_msg *m) {
    uint64_t to_node = node_of_replica(r, m->to);
    const char *address = to_node ? node_peer_address(n, to_node) : NULL;
    node_snapshot_job *job;

    pthread_mutex_lock(&n->snap_lock);
    bool full = n->n_snap_jobs >= NODE_SNAPSHOTS_SENDING_MAX;
    pthread_mutex_unlock(&n->snap_lock);
    job = full || address == NULL || n->isolated ? NULL : calloc(1, sizeof(*job));
    if (job == NULL) {
        node_post_sent(n, r->shard_id, m, false); /* Raft tries again later */
        return;
    }
    job->shard_id = r->shard_id;
    job->msg = *m;
    job->msg.entries = NULL;
    job->msg.n_entries = 0;
    job->desc = node_desc_copy(r->desc);
    job->address = strdup(address);
    /* Now, inside the loop: the store holds the shard exactly at the applied
     * index the snapshot names. */
    job->snap = kvs_snapshot_take(n->store);
    log_info("shard %llu: sending a snapshot at %llu to replica %llu on node %llu",
             (unsigned long long)r->shard_id, (unsigned long long)m->snapshot.index,
             (unsigned long long)m->to, (unsigned long long)to_node);

    pthread_mutex_lock(&n->snap_lock);
    job->next = n->snap_jobs;
    n->snap_jobs = job;
    n->n_snap_jobs++;
    pthread_cond_signal(&n->snap_wake);
    pthread_mutex_unlock(&n->snap_lock);
}

static int node_send_chunk(rpc_call_stream *call, Basalt__V1__SnapshotChunk *chunk) {
    return rpc_call_stream_send(call, &chunk->base);
}

/* Streams the file (or, for an empty shard, only the header and the end). */
static int node_stream_file(node *n, node_snapshot_job *job, rpc_call_stream *call,
                            const char *path, bool empty) {
    Basalt__V1__SnapshotChunk chunk = BASALT__V1__SNAPSHOT_CHUNK__INIT;
    XXH64_state_t *whole = XXH64_createState();
    uint8_t *buf = malloc(NODE_SNAPSHOT_CHUNK_BYTES);
    uint64_t offset = 0;
    int fd = empty ? -1 : open(path, O_RDONLY);
    int rc = 0;

    if (whole == NULL || buf == NULL || (!empty && fd < 0)) {
        rc = BS_ERR_IO;
        goto done;
    }
    XXH64_reset(whole, 0);
    chunk.message = node_msg_to_wire(job->shard_id, &job->msg);
    chunk.descriptor = job->desc;
    chunk.from_node = n->id;
    rc = node_send_chunk(call, &chunk);
    node_wire_free(chunk.message);
    ssize_t got = 0;
    while (rc == 0 && fd >= 0 && (got = read(fd, buf, NODE_SNAPSHOT_CHUNK_BYTES)) > 0) {
        Basalt__V1__SnapshotChunk data = BASALT__V1__SNAPSHOT_CHUNK__INIT;
        data.offset = offset;
        data.data.data = buf;
        data.data.len = (size_t)got;
        data.checksum = XXH64(buf, (size_t)got, 0);
        XXH64_update(whole, buf, (size_t)got);
        offset += (uint64_t)got;
        rc = node_send_chunk(call, &data);
    }
    if (got < 0)
        rc = BS_ERR_IO; /* never send the end of a file read in part */
    if (rc == 0) {
        Basalt__V1__SnapshotChunk last = BASALT__V1__SNAPSHOT_CHUNK__INIT;
        last.last = true;
        last.offset = offset;
        last.total_bytes = offset;
        last.file_checksum = XXH64_digest(whole);
        last.empty = empty;
        rc = node_send_chunk(call, &last);
    }
done:
    if (fd >= 0)
        close(fd);
    free(buf);
    XXH64_freeState(whole);
    return rc;
}

static bool node_run_job(node *n, node_snapshot_job *job) {
    char dir[4096], path[4200];
    uint64_t keys = 0;
    rpc_status st;
    ProtobufCMessage *ack = NULL;
    bool ok = false;

    node_snapshot_dir(n, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/send-%llu-%llu-%llu.sst", dir,
             (unsigned long long)job->shard_id, (unsigned long long)job->msg.snapshot.index,
             (unsigned long long)atomic_fetch_add(&node_snapshot_file_counter, 1));
    int rc =
        kvs_write_sst(n->store, job->snap, KVS_CF_DATA, job->desc->start.data, job->desc->start.len,
                      job->desc->end.data, job->desc->end.len, path, &keys);
    kvs_snapshot_release(n->store, job->snap);
    job->snap = NULL;
    if (rc != 0) {
        unlink(path); /* a partial file, if any */
        return false;
    }

    rpc_channel *ch = rpc_channel_open(job->address);
    rpc_call_stream *call =
        ch ? rpc_call_stream_open(ch, NODE_SNAPSHOT_METHOD, NODE_SNAPSHOT_TIMEOUT_MS) : NULL;
    if (call != NULL) {
        /* Visible to node_snapshots_stop, which cancels it. */
        pthread_mutex_lock(&n->snap_lock);
        n->snap_call = n->snap_stopping ? NULL : call;
        if (n->snap_stopping)
            rpc_call_stream_cancel(call);
        pthread_mutex_unlock(&n->snap_lock);
        /* A file that could not be read whole must not look delivered:
         * break the call, so the receiver drops what it got. */
        if (node_stream_file(n, job, call, path, keys == 0) != 0)
            rpc_call_stream_cancel(call);
        ok = rpc_call_stream_finish(call, &basalt__v1__snapshot_ack__descriptor, &ack, &st) == 0;
        pthread_mutex_lock(&n->snap_lock);
        n->snap_call = NULL;
        pthread_mutex_unlock(&n->snap_lock);
        rpc_call_stream_free(call);
        if (!ok)
            log_warn("shard %llu: snapshot to %s failed: %s", (unsigned long long)job->shard_id,
                     job->address, st.message);
        if (ack)
            protobuf_c_message_free_unpacked(ack, NULL);
    }
    rpc_channel_close(ch);
    unlink(path);
    log_info("shard %llu: snapshot at %llu (%llu keys) to %s %s", (unsigned long long)job->shard_id,
             (unsigned long long)job->msg.snapshot.index, (unsigned long long)keys, job->address,
             ok ? "sent" : "not sent");
    return ok;
}

static void node_free_job(node *n, node_snapshot_job *job) {
    kvs_snapshot_release(n->store, job->snap);
    if (job->desc)
        basalt__v1__shard_descriptor__free_unpacked(job->desc, NULL);
    free(job->address);
    free(job);
}

static void *node_snapshot_main(void *arg) {
    node *n = arg;

    for (;;) {
        pthread_mutex_lock(&n->snap_lock);
        while (n->snap_jobs == NULL && !n->snap_stopping)
            pthread_cond_wait(&n->snap_wake, &n->snap_lock);
        if (n->snap_stopping) {
            pthread_mutex_unlock(&n->snap_lock);
            return NULL;
        }
        node_snapshot_job *job = n->snap_jobs;
        n->snap_jobs = job->next;
        pthread_mutex_unlock(&n->snap_lock);

        bool ok = job->desc != NULL && job->address != NULL && node_run_job(n, job);
        node_post_sent(n, job->shard_id, &job->msg, ok);
        pthread_mutex_lock(&n->snap_lock);
        n->n_snap_jobs--;
        pthread_mutex_unlock(&n->snap_lock);
        node_free_job(n, job);
    }
}

int node_snapshots_start(node *n) {
    char dir[4096];

    node_snapshot_dir(n, dir, sizeof(dir));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", dir, strerror(errno));
        return BS_ERR_IO;
    }
    pthread_mutex_init(&n->snap_lock, NULL);
    pthread_cond_init(&n->snap_wake, NULL);
    if (pthread_create(&n->snap_thread, NULL, node_snapshot_main, n) != 0)
        return BS_ERR_NOMEM;
    n->snap_started = true;
    return 0;
}

int node_snapshots_clean(node *n) {
    char dir[4096], path[4400];
    DIR *d;
    struct dirent *e;

    node_snapshot_dir(n, dir, sizeof(dir));
    if ((d = opendir(dir)) == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            log_info("removed a leftover snapshot file %s", path);
    }
    closedir(d);
    return 0;
}

void node_snapshots_stop(node *n) {
    if (!n->snap_started)
        return;
    pthread_mutex_lock(&n->snap_lock);
    n->snap_stopping = true;
    if (n->snap_call != NULL)
        rpc_call_stream_cancel(n->snap_call);
    pthread_cond_signal(&n->snap_wake);
    pthread_mutex_unlock(&n->snap_lock);
    pthread_join(n->snap_thread, NULL);
    while (n->snap_jobs != NULL) {
        node_snapshot_job *job = n->snap_jobs;
        n->snap_jobs = job->next;
        node_free_job(n, job);
    }
    n->snap_started = false;
}

void node_handle_snapshot_sent(node *n, node_in *in) {
    node_replica *r = node_replica_by_shard(n, in->shard_id);

    if (r != NULL)
        raft_report_snapshot(r->raft, in->msg.to, in->snapshot_ok);
    free(in);
}

/* ---- receiving (RPC threads) ---- */

typedef struct {
    node *n;
    int fd;
    char path[4200];
    uint64_t offset;
    XXH64_state_t *hash;
    Basalt__V1__RaftMessage *message;
    Basalt__V1__ShardDescriptor *descriptor;
    bool complete;
    bool empty;
} node_snapshot_rx;

static int node_rx_begin(node *n, const Basalt__V1__SnapshotChunk *chunk, node_snapshot_rx **out) {
    node_snapshot_rx *rx = calloc(1, sizeof(*rx));
    char dir[4096];

    if (rx == NULL || chunk->message == NULL || chunk->descriptor == NULL) {
        free(rx);
        return -1;
    }
    rx->n = n;
    rx->fd = -1;
    rx->hash = XXH64_createState();
    XXH64_reset(rx->hash, 0);
    /* Keep our own copies: the chunk is freed after this call. */
    size_t len = basalt__v1__raft_message__get_packed_size(chunk->message);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf != NULL) {
        basalt__v1__raft_message__pack(chunk->message, buf);
        rx->message = basalt__v1__raft_message__unpack(NULL, len, buf);
        free(buf);
    }
    rx->descriptor = node_desc_copy(chunk->descriptor);
    node_snapshot_dir(n, dir, sizeof(dir));
    snprintf(rx->path, sizeof(rx->path), "%s/recv-%llu-%llu.sst", dir,
             (unsigned long long)chunk->message->shard_id,
             (unsigned long long)atomic_fetch_add(&node_snapshot_file_counter, 1));
    rx->fd = open(rx->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    *out = rx;
    return rx->message && rx->descriptor && rx->fd >= 0 ? 0 : -1;
}

static int node_rx_data(node_snapshot_rx *rx, const Basalt__V1__SnapshotChunk *chunk) {
    /* A snapshot must not fill the disk any more than writes may. */
    if (kvs_check_space(rx->n->store, chunk->data.len, 100) != 0)
        return -1;
    if (chunk->offset != rx->offset || chunk->data.len > NODE_SNAPSHOT_CHUNK_BYTES ||
        XXH64(chunk->data.data, chunk->data.len, 0) != chunk->checksum) {
        log_warn("snapshot chunk at %llu is corrupt or out of order; refusing the snapshot",
                 (unsigned long long)chunk->offset);
        return -1;
    }
    for (size_t done = 0; done < chunk->data.len;) {
        ssize_t w = write(rx->fd, chunk->data.data + done, chunk->data.len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        done += (size_t)w;
    }
    XXH64_update(rx->hash, chunk->data.data, chunk->data.len);
    rx->offset += chunk->data.len;
    return 0;
}

static int node_rx_last(node_snapshot_rx *rx, const Basalt__V1__SnapshotChunk *chunk) {
    if (chunk->total_bytes != rx->offset || chunk->file_checksum != XXH64_digest(rx->hash) ||
        (chunk->empty && rx->offset != 0)) {
        log_warn("snapshot file checksum or size mismatch; refusing the snapshot");
        return -1;
    }
    if (fsync(rx->fd) != 0)
        return -1;
    rx->empty = chunk->empty;
    rx->complete = true;
    return 0;
}

int node_snapshot_chunk(const ProtobufCMessage *message, void *ctx, void **state) {
    const Basalt__V1__SnapshotChunk *chunk = (const void *)message;
    node_snapshot_rx *rx = *state;

    if (rx == NULL)
        return node_rx_begin(ctx, chunk, (node_snapshot_rx **)state);
    if (rx->complete)
        return -1; /* nothing may follow the last chunk */
    if (chunk->last)
        return node_rx_last(rx, chunk);
    return node_rx_data(rx, chunk);
}

static void node_rx_free(node_snapshot_rx *rx, bool keep_file) {
    if (rx->fd >= 0)
        close(rx->fd);
    if (!keep_file)
        unlink(rx->path);
    if (rx->message)
        basalt__v1__raft_message__free_unpacked(rx->message, NULL);
    if (rx->descriptor)
        basalt__v1__shard_descriptor__free_unpacked(rx->descriptor, NULL);
    XXH64_freeState(rx->hash);
    free(rx);
}

void node_snapshot_stream_end(void *ctx, void *state, bool complete) {
    node_snapshot_rx *rx = state;
    node *n = ctx;
    node_in *in;

    if (rx == NULL)
        return;
    if (!complete || !rx->complete || (in = calloc(1, sizeof(*in))) == NULL) {
        node_rx_free(rx, false);
        return;
    }
    in->kind = NODE_IN_SNAPSHOT_RECEIVED;
    in->shard_id = rx->message->shard_id;
    if (node_msg_from_wire(rx->message, &in->msg) != 0) {
        free(in);
        node_rx_free(rx, false);
        return;
    }
    if (rx->empty)
        unlink(rx->path);
    else
        in->snapshot_path = strdup(rx->path);
    in->snapshot_desc = rx->descriptor;
    rx->descriptor = NULL;
    node_rx_free(rx, true);

    if (!node_push(n, in)) {
        if (in->snapshot_path)
            unlink(in->snapshot_path);
        free(in->snapshot_path);
        basalt__v1__shard_descriptor__free_unpacked(in->snapshot_desc, NULL);
        free(in);
    }
}

/* ---- taking and installing (loop thread) ---- */

void node_discard_snapshot(node_replica *r) {
    if (!r->snap_pending)
        return;
    if (r->snap_path) {
        unlink(r->snap_path);
        free(r->snap_path);
    }
    if (r->snap_desc)
        basalt__v1__shard_descriptor__free_unpacked(r->snap_desc, NULL);
    r->snap_path = NULL;
    r->snap_desc = NULL;
    r->snap_pending = false;
}

/* Another replica here whose range the snapshot's shard overlaps: this node
 * has not applied a split the sender's shard came from (or went through).
 * Taking the snapshot would give two shards the same keys. */
static node_replica *node_snapshot_overlap(node *n, const node_replica *r,
                                           const Basalt__V1__ShardDescriptor *d) {
    for (int i = 0; d != NULL && i < n->n_replicas; i++) {
        if (n->replicas[i] != r && node_desc_overlap(n->replicas[i]->desc, d))
            return n->replicas[i];
    }
    return NULL;
}

void node_handle_snapshot_received(node *n, node_in *in) {
    node_replica *r = node_replica_by_shard(n, in->shard_id);
    node_replica *other = r ? node_snapshot_overlap(n, r, in->snapshot_desc) : NULL;

    if (other != NULL)
        log_warn("shard %llu: refusing a snapshot that overlaps shard %llu here (a split is not "
                 "applied here yet)",
                 (unsigned long long)in->shard_id, (unsigned long long)other->shard_id);
    if (r == NULL || other != NULL || r->has_rd || n->isolated) {
        if (in->snapshot_path)
            unlink(in->snapshot_path);
        free(in->snapshot_path);
        basalt__v1__shard_descriptor__free_unpacked(in->snapshot_desc, NULL);
    } else {
        node_discard_snapshot(r);
        r->snap_pending = true;
        r->snap_index = in->msg.snapshot.index;
        r->snap_path = in->snapshot_path;
        r->snap_desc = in->snapshot_desc;
        log_info("shard %llu: received a snapshot at %llu", (unsigned long long)r->shard_id,
                 (unsigned long long)r->snap_index);
        raft_step(r->raft, &in->msg);
    }
    node_msg_free(&in->msg);
    free(in);
}

static void node_install_key(node_replica *r, uint8_t *key) {
    keys_shard(key, r->shard_id, KEYS_SNAPSHOT_INSTALL);
}

/* Step 2: the shard's range holds exactly the snapshot's keys. The range
 * the replica had goes too: a snapshot taken after a split this replica
 * never applied covers less, and the rest belongs to no shard here. */
static int node_install_data(node *n, const Basalt__V1__ShardDescriptor *had,
                             const Basalt__V1__ShardDescriptor *d, const char *path) {
    int rc = kvs_delete_range(n->store, KVS_CF_DATA, had->start.data, had->start.len, had->end.data,
                              had->end.len);
    if (rc == 0)
        rc = kvs_delete_range(n->store, KVS_CF_DATA, d->start.data, d->start.len, d->end.data,
                              d->end.len);
    if (rc == 0 && path != NULL)
        rc = kvs_ingest_sst(n->store, KVS_CF_DATA, path);
    return rc;
}

/* Step 3, into the persist batch: the replica takes the snapshot's shard and
 * membership, and the install record goes. */
static void node_install_state(node *n, node_replica *r, Basalt__V1__ShardDescriptor *desc,
                               const raft_conf_state *conf) {
    uint8_t key[KEYS_SHARD_BYTES];

    basalt__v1__shard_descriptor__free_unpacked(r->desc, NULL);
    r->desc = desc;
    r->conf = *conf;
    node_stage_replica_state(r, n->persist_batch);
    node_install_key(r, key);
    kvs_batch_delete(n->persist_batch, KVS_CF_RAFT, key, sizeof(key));
}

static int node_write_install_record(node *n, node_replica *r, const raft_snapshot *snap) {
    Basalt__V1__SnapshotInstall rec = BASALT__V1__SNAPSHOT_INSTALL__INIT;
    Basalt__V1__RaftSnapshotMeta meta = BASALT__V1__RAFT_SNAPSHOT_META__INIT;
    raft_msg m = {.snapshot = *snap};
    Basalt__V1__RaftMessage *w = node_msg_to_wire(r->shard_id, &m);
    uint8_t key[KEYS_SHARD_BYTES];
    kvs_batch *b = kvs_batch_new(n->store);
    int rc = BS_ERR_NOMEM;

    if (w != NULL && b != NULL) {
        meta = *w->snapshot;
        rec.meta = &meta;
        rec.descriptor = r->snap_desc;
        rec.path = r->snap_path ? r->snap_path : "";
        rec.empty = r->snap_path == NULL;
        size_t len = basalt__v1__snapshot_install__get_packed_size(&rec);
        uint8_t *buf = malloc(len ? len : 1);
        if (buf != NULL) {
            basalt__v1__snapshot_install__pack(&rec, buf);
            node_install_key(r, key);
            kvs_batch_put(b, KVS_CF_RAFT, key, sizeof(key), buf, len);
            rc = kvs_batch_write(b, true);
            free(buf);
        }
    }
    node_wire_free(w);
    kvs_batch_free(b);
    return rc;
}

void node_install_snapshot(node *n, node_replica *r) {
    const raft_snapshot *snap = &r->rd.snapshot;

    if (!r->snap_pending || r->snap_index != snap->index || r->snap_desc == NULL) {
        /* Raft took a snapshot whose data never arrived: the state machine
         * would silently diverge. */
        log_error("shard %llu: raft installs a snapshot at %llu without its data: stopping",
                  (unsigned long long)r->shard_id, (unsigned long long)snap->index);
        abort();
    }
    if (node_write_install_record(n, r, snap) != 0 ||
        node_install_data(n, r->desc, r->snap_desc, r->snap_path) != 0) {
        log_error("shard %llu: cannot install a snapshot: stopping",
                  (unsigned long long)r->shard_id);
        abort();
    }
    node_install_state(n, r, r->snap_desc, &snap->conf);
    r->snap_desc = NULL;
    log_info("shard %llu: installed a snapshot at %llu", (unsigned long long)r->shard_id,
             (unsigned long long)snap->index);
    /* The file goes once the batch holding step 3 is written. */
}

int node_finish_interrupted_install(node *n, node_replica *r) {
    uint8_t key[KEYS_SHARD_BYTES];
    bool found;
    char *value;
    size_t len;
    int rc;

    node_install_key(r, key);
    if ((rc = kvs_get(n->store, KVS_CF_RAFT, key, sizeof(key), &found, &value, &len)) != 0 ||
        !found)
        return rc;
    Basalt__V1__SnapshotInstall *rec =
        basalt__v1__snapshot_install__unpack(NULL, len, (const uint8_t *)value);
    free(value);
    if (rec == NULL || rec->meta == NULL || rec->descriptor == NULL) {
        log_error("shard %llu: the snapshot install record is malformed",
                  (unsigned long long)r->shard_id);
        return BS_ERR_CORRUPTION;
    }
    log_warn("shard %llu: finishing a snapshot install a crash interrupted",
             (unsigned long long)r->shard_id);
    Basalt__V1__RaftMessage wire = BASALT__V1__RAFT_MESSAGE__INIT;
    raft_msg m;
    wire.snapshot = rec->meta;
    rc = node_msg_from_wire(&wire, &m);
    if (rc == 0)
        rc = node_install_data(n, r->desc, rec->descriptor, rec->empty ? NULL : rec->path);
    if (rc == 0) {
        rlog_stage_snapshot(r->log, n->persist_batch, &m.snapshot);
        node_install_state(n, r, node_desc_copy(rec->descriptor), &m.snapshot.conf);
        rc = kvs_batch_write(n->persist_batch, true);
    }
    if (rc == 0 && !rec->empty)
        unlink(rec->path);
    basalt__v1__snapshot_install__free_unpacked(rec, NULL);
    return rc;
}

/* ---- compaction ---- */

void node_maybe_compact(node *n, node_replica *r) {
    raft_index_t first = rlog_first_index(r->log), last = rlog_last_index(r->log);
    raft_index_t target = rlog_applied(r->log);

    if (last + 1 - first <= n->log_max_entries)
        return;
    /* A leader keeps what some member still lacks, unless the log is far too
     * long: then a lagging member costs a snapshot instead of unbounded log. */
    if (raft_get_role(r->raft) == RAFT_LEADER && last + 1 - first <= 4 * n->log_max_entries) {
        raft_index_t min_match = raft_min_match(r->raft);
        if (min_match < target)
            target = min_match;
    }
    if (target < first || rlog_stage_compact(r->log, n->compact_batch, target) != 0)
        return;
    if (kvs_batch_write(n->compact_batch, false) != 0)
        log_warn("shard %llu: compacting the log failed", (unsigned long long)r->shard_id);
    else
        log_debug("shard %llu: log compacted up to %llu", (unsigned long long)r->shard_id,
                  (unsigned long long)target);
}
