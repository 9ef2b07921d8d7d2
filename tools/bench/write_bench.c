/* write_bench: measures the Raft loop's group commit on a three-node cluster.
 *
 * Given the public endpoints of three kvnodes started without --bootstrap, it
 * tells them of each other, creates one shard replicated on all three (or
 * --shards N shards over disjoint key ranges), waits for leaders, and then
 * runs --threads writers against the leaders for --seconds. It prints the
 * write rate and latency, and from each node's Status counters the synced
 * RocksDB writes per second and the Raft entries each one carried.
 *
 *   write_bench --nodes HOST:PORT,HOST:PORT,HOST:PORT [--threads 16]
 *               [--seconds 5] [--value-bytes 100] [--shards 1]
 *
 * A benchmark, not a test: it asserts nothing about speed.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basalt/v1/kv.pb-c.h"
#include "basalt/v1/raft.pb-c.h"
#include "runtime/rpc_client.h"

#define BENCH_NODES         3
#define BENCH_THREADS_MAX   256
#define BENCH_SHARDS_MAX    256
#define BENCH_LATENCIES_MAX (1u << 22)
#define BENCH_TIMEOUT_MS    10000

typedef struct {
    const char *nodes[BENCH_NODES];
    int threads;
    int seconds;
    int value_bytes;
    int shards;
} bench_options;

typedef struct {
    rpc_channel *node[BENCH_NODES];
    int leader_of[BENCH_SHARDS_MAX + 1]; /* node index */
    bench_options opt;
    double stop_at;
    pthread_mutex_t lock;
    double *latencies;
    size_t n_latencies;
    uint64_t errors;
} bench;

static double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_admin(bench *b, int node, const char *method, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp) {
    char path[128];
    rpc_status st;

    snprintf(path, sizeof(path), "/basalt.v1.NodeAdmin/%s", method);
    int rc = rpc_unary(b->node[node], path, req, resp_desc, BENCH_TIMEOUT_MS, resp, &st);
    if (rc != 0)
        fprintf(stderr, "write_bench: %s on %s: %s\n", method, b->opt.nodes[node], st.message);
    return rc;
}

static int bench_setup(bench *b) {
    Basalt__V1__NodeAddress addr[BENCH_NODES], *addrs[BENCH_NODES];
    Basalt__V1__UpdateNodesRequest update = BASALT__V1__UPDATE_NODES_REQUEST__INIT;
    ProtobufCMessage *resp;

    for (int i = 0; i < BENCH_NODES; i++) {
        basalt__v1__node_address__init(&addr[i]);
        addr[i].node_id = (uint64_t)i + 1;
        addr[i].address = (char *)b->opt.nodes[i];
        addrs[i] = &addr[i];
    }
    update.n_nodes = BENCH_NODES;
    update.nodes = addrs;
    for (int i = 0; i < BENCH_NODES; i++) {
        if (bench_admin(b, i, "UpdateNodes", &update.base,
                        &basalt__v1__update_nodes_response__descriptor, &resp) != 0)
            return -1;
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    for (int s = 1; s <= b->opt.shards; s++) {
        Basalt__V1__ShardDescriptor d = BASALT__V1__SHARD_DESCRIPTOR__INIT;
        Basalt__V1__ReplicaDescriptor rep[BENCH_NODES], *reps[BENCH_NODES];
        Basalt__V1__CreateReplicaRequest create = BASALT__V1__CREATE_REPLICA_REQUEST__INIT;
        char start[16], end[16];
        snprintf(start, sizeof(start), "b%03d", s - 1);
        snprintf(end, sizeof(end), "b%03d", s);
        d.id = (uint64_t)s;
        d.start = (ProtobufCBinaryData){s == 1 ? 0 : strlen(start), (uint8_t *)start};
        d.end = (ProtobufCBinaryData){s == b->opt.shards ? 0 : strlen(end), (uint8_t *)end};
        for (int i = 0; i < BENCH_NODES; i++) {
            basalt__v1__replica_descriptor__init(&rep[i]);
            rep[i].node_id = (uint64_t)i + 1;
            rep[i].replica_id = (uint64_t)s * 100 + (uint64_t)i + 1;
            reps[i] = &rep[i];
        }
        d.n_replicas = BENCH_NODES;
        d.replicas = reps;
        create.descriptor = &d;
        for (int i = 0; i < BENCH_NODES; i++) {
            if (bench_admin(b, i, "CreateReplica", &create.base,
                            &basalt__v1__create_replica_response__descriptor, &resp) != 0)
                return -1;
            protobuf_c_message_free_unpacked(resp, NULL);
        }
    }
    return 0;
}

static Basalt__V1__NodeStatusResponse *bench_status(bench *b, int node) {
    Basalt__V1__NodeStatusRequest req = BASALT__V1__NODE_STATUS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    bench_admin(b, node, "Status", &req.base, &basalt__v1__node_status_response__descriptor, &resp);
    return (Basalt__V1__NodeStatusResponse *)resp;
}

/* Waits (bounded) until every shard has a leader; records who. */
static int bench_find_leaders(bench *b) {
    for (int attempt = 0; attempt < 300; attempt++) {
        int found = 0;
        for (int i = 0; i < BENCH_NODES; i++) {
            Basalt__V1__NodeStatusResponse *st = bench_status(b, i);
            for (size_t k = 0; st && k < st->n_replicas; k++) {
                if (st->replicas[k]->is_leader) {
                    b->leader_of[st->replicas[k]->descriptor->id] = i;
                    found++;
                }
            }
            if (st)
                protobuf_c_message_free_unpacked(&st->base, NULL);
        }
        if (found == b->opt.shards)
            return 0;
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL); /* elections take about a second */
    }
    fprintf(stderr, "write_bench: shards got no leaders within 30 s\n");
    return -1;
}

static void *bench_writer(void *arg) {
    bench *b = ((void **)arg)[0];
    int id = (int)(intptr_t)((void **)arg)[1];
    char key[64];
    char *value = malloc((size_t)b->opt.value_bytes);
    uint64_t i = 0;

    memset(value, 'v', (size_t)b->opt.value_bytes);
    while (bench_now() < b->stop_at) {
        int shard = 1 + (int)((uint64_t)(id + i) % (uint64_t)b->opt.shards);
        snprintf(key, sizeof(key), "b%03d/%d/%llu", shard - 1, id, (unsigned long long)i++);
        Basalt__V1__PutRequest req = BASALT__V1__PUT_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        rpc_status st;
        req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
        req.value = (ProtobufCBinaryData){(size_t)b->opt.value_bytes, (uint8_t *)value};
        double t0 = bench_now();
        int rc = rpc_unary(b->node[b->leader_of[shard]], "/basalt.v1.KV/Put", &req.base,
                           &basalt__v1__put_response__descriptor, BENCH_TIMEOUT_MS, &resp, &st);
        double took = bench_now() - t0;
        if (resp)
            protobuf_c_message_free_unpacked(resp, NULL);
        pthread_mutex_lock(&b->lock);
        if (rc != 0)
            b->errors++;
        else if (b->n_latencies < BENCH_LATENCIES_MAX)
            b->latencies[b->n_latencies++] = took;
        pthread_mutex_unlock(&b->lock);
    }
    free(value);
    return NULL;
}

static int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double bench_pct(bench *b, double p) {
    if (b->n_latencies == 0)
        return 0;
    size_t i = (size_t)(p * (double)(b->n_latencies - 1));
    return b->latencies[i] * 1000;
}

static int bench_parse(int argc, char **argv, bench_options *o) {
    static const struct option options[] = {
        {"nodes", required_argument, NULL, 'n'},   {"threads", required_argument, NULL, 't'},
        {"seconds", required_argument, NULL, 's'}, {"value-bytes", required_argument, NULL, 'v'},
        {"shards", required_argument, NULL, 'S'},  {NULL, 0, NULL, 0},
    };
    char *nodes = NULL;
    int opt;

    *o = (bench_options){.threads = 16, .seconds = 5, .value_bytes = 100, .shards = 1};
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'n':
            nodes = optarg;
            break;
        case 't':
            o->threads = atoi(optarg);
            break;
        case 's':
            o->seconds = atoi(optarg);
            break;
        case 'v':
            o->value_bytes = atoi(optarg);
            break;
        case 'S':
            o->shards = atoi(optarg);
            break;
        default:
            return -1;
        }
    }
    for (int i = 0; nodes && i < BENCH_NODES; i++) {
        o->nodes[i] = strsep(&nodes, ",");
        if (o->nodes[i] == NULL)
            return -1;
    }
    if (o->nodes[BENCH_NODES - 1] == NULL || o->threads < 1 || o->threads > BENCH_THREADS_MAX ||
        o->seconds < 1 || o->value_bytes < 0 || o->shards < 1 || o->shards > BENCH_SHARDS_MAX)
        return -1;
    return 0;
}

int main(int argc, char **argv) {
    static bench b;
    pthread_t threads[BENCH_THREADS_MAX];
    void *args[BENCH_THREADS_MAX][2];
    uint64_t syncs0[BENCH_NODES] = {0}, entries0[BENCH_NODES] = {0};

    if (bench_parse(argc, argv, &b.opt) != 0) {
        fprintf(stderr, "usage: write_bench --nodes A,B,C [--threads N] [--seconds S] "
                        "[--value-bytes V] [--shards K]\n");
        return 2;
    }
    pthread_mutex_init(&b.lock, NULL);
    b.latencies = malloc(BENCH_LATENCIES_MAX * sizeof(double));
    for (int i = 0; i < BENCH_NODES; i++)
        b.node[i] = rpc_channel_open(b.opt.nodes[i]);
    if (bench_setup(&b) != 0 || bench_find_leaders(&b) != 0)
        return 1;
    for (int i = 0; i < BENCH_NODES; i++) {
        Basalt__V1__NodeStatusResponse *st = bench_status(&b, i);
        syncs0[i] = st ? st->raft_sync_writes : 0;
        entries0[i] = st ? st->raft_entries_persisted : 0;
        if (st)
            protobuf_c_message_free_unpacked(&st->base, NULL);
    }

    double t0 = bench_now();
    b.stop_at = t0 + b.opt.seconds;
    for (int i = 0; i < b.opt.threads; i++) {
        args[i][0] = &b;
        args[i][1] = (void *)(intptr_t)i;
        pthread_create(&threads[i], NULL, bench_writer, args[i]);
    }
    for (int i = 0; i < b.opt.threads; i++)
        pthread_join(threads[i], NULL);
    double elapsed = bench_now() - t0;

    qsort(b.latencies, b.n_latencies, sizeof(double), bench_cmp);
    printf("%d threads, %d shard(s), %d-byte values, %.1f s\n", b.opt.threads, b.opt.shards,
           b.opt.value_bytes, elapsed);
    printf("writes: %zu (%.0f/s), errors: %llu, latency ms p50 %.2f p99 %.2f max %.2f\n",
           b.n_latencies, (double)b.n_latencies / elapsed, (unsigned long long)b.errors,
           bench_pct(&b, 0.50), bench_pct(&b, 0.99), bench_pct(&b, 1.0));
    for (int i = 0; i < BENCH_NODES; i++) {
        Basalt__V1__NodeStatusResponse *st = bench_status(&b, i);
        if (st == NULL)
            continue;
        uint64_t syncs = st->raft_sync_writes - syncs0[i];
        uint64_t entries = st->raft_entries_persisted - entries0[i];
        printf("node %d: %.0f fsyncs/s, %.1f raft entries per fsync\n", i + 1,
               (double)syncs / elapsed, syncs ? (double)entries / (double)syncs : 0.0);
        protobuf_c_message_free_unpacked(&st->base, NULL);
    }
    return 0;
}
