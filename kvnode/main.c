/* kvnode: a Basalt storage node.
 *
 * Hosts replicas of shards, one Raft group each, over one RocksDB store, and
 * serves the public basalt.v1.KV API for the shards it leads (and eventual
 * reads for all it hosts), plus the internal NodeAdmin and RaftTransport
 * services. SIGTERM or SIGINT stops it cleanly; every acknowledged write is
 * durable on a quorum, so kill -9 loses nothing acknowledged either.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvnode/admin_service.h"
#include "kvnode/kv_service.h"
#include "kvnode/node.h"
#include "kvnode/router_link.h"
#include "kvnode/store.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/parse.h"
#include "runtime/rpc_server.h"

#define KVNODE_LISTEN_DEFAULT   "127.0.0.1:7379"
#define KVNODE_DATA_DIR_DEFAULT "kvnode-data"
/* Exit codes: 0 after a clean stop, 1 when it could not start, 2 for usage,
 * 3 when the router says the node was removed from the cluster. */
#define KVNODE_EXIT_START_FAILED 1
#define KVNODE_EXIT_USAGE        2
#define KVNODE_EXIT_REMOVED      3

/* Largest --disk-reserve-mb: a petabyte. */
#define KVNODE_DISK_RESERVE_MB_MAX (1024ull * 1024 * 1024)

typedef struct {
    const char *listen;
    const char *data_dir;
    int rpc_threads;
    uint64_t disk_reserve_bytes;
    uint64_t node_id; /* 0: from the store, or from the router */
    bool bootstrap;
    uint64_t log_max_entries;
    const char *router;
    const char *zone;
} kvnode_config;

static void kvnode_usage(FILE *out) {
    fprintf(out,
            "usage: kvnode [--listen HOST:PORT] [--data-dir DIR] [--node-id N] [--bootstrap]\n"
            "              [--rpc-threads N] [--disk-reserve-mb N] [--log-level LEVEL]\n"
            "\n"
            "A Basalt storage node: serves the basalt.v1.KV gRPC API.\n"
            "\n"
            "  --listen HOST:PORT   address to serve on (default " KVNODE_LISTEN_DEFAULT ")\n"
            "  --data-dir DIR       where the RocksDB store lives, created if missing\n"
            "                       (default ./" KVNODE_DATA_DIR_DEFAULT ")\n"
            "  --router HOST:PORT   join the cluster of this router: get a node id from\n"
            "                       it at first start, then heartbeat to it\n"
            "  --zone NAME          a label for placement (with --router)\n"
            "  --node-id N          this node's id, above 0 (default: the one stored, else\n"
            "                       one from the router, else 1)\n"
            "  --bootstrap          if this node hosts no shard yet, create shard 1 over\n"
            "                       every key with this node as its only replica\n"
            "  --raft-log-max-entries N  compact a shard's log past N entries (default 10000)\n"
            "  --rpc-threads N      threads serving requests, 1 to 16 (default 2)\n"
            "  --disk-reserve-mb N  refuse writes while the disk has less than N MiB free\n"
            "                       (default 64)\n"
            "  --log-level LEVEL    debug, info, warn or error (default info)\n"
            "  -h, --help           show this help\n");
}

/* A decimal number from 0 to max, nothing else. Returns 0 or -1. */
/* Parses the command line; returns 0, or an exit code to stop with. */
static int kvnode_parse_args(int argc, char **argv, kvnode_config *cfg) {
    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},
        {"data-dir", required_argument, NULL, 'd'},
        {"log-level", required_argument, NULL, 'v'},
        {"rpc-threads", required_argument, NULL, 't'},
        {"disk-reserve-mb", required_argument, NULL, 'r'},
        {"node-id", required_argument, NULL, 'n'},
        {"bootstrap", no_argument, NULL, 'b'},
        {"raft-log-max-entries", required_argument, NULL, 'L'},
        {"router", required_argument, NULL, 'R'},
        {"zone", required_argument, NULL, 'z'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    log_level_t level;
    uint64_t n;
    int opt;

    cfg->listen = KVNODE_LISTEN_DEFAULT;
    cfg->data_dir = KVNODE_DATA_DIR_DEFAULT;
    cfg->rpc_threads = 0;
    cfg->disk_reserve_bytes = KVS_DISK_RESERVE_BYTES_DEFAULT;
    cfg->node_id = 0;
    cfg->bootstrap = false;
    cfg->log_max_entries = 0;
    cfg->router = NULL;
    cfg->zone = "";
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            if (!parse_host_port(optarg, 0)) {
                fprintf(stderr, "kvnode: --listen takes HOST:PORT with a port from 0 to 65535\n");
                return KVNODE_EXIT_USAGE;
            }
            cfg->listen = optarg;
            break;
        case 'd':
            cfg->data_dir = optarg;
            break;
        case 't':
            if (parse_u64(optarg, 1, RPC_SERVER_THREADS_MAX, &n) != 0) {
                fprintf(stderr, "kvnode: --rpc-threads takes a number from 1 to %d\n",
                        RPC_SERVER_THREADS_MAX);
                return KVNODE_EXIT_USAGE;
            }
            cfg->rpc_threads = (int)n;
            break;
        case 'n':
            if (parse_u64(optarg, 1, UINT64_MAX, &n) != 0) {
                fprintf(stderr, "kvnode: --node-id takes a number above 0\n");
                return KVNODE_EXIT_USAGE;
            }
            cfg->node_id = n;
            break;
        case 'b':
            cfg->bootstrap = true;
            break;
        case 'R':
            if (!parse_host_port(optarg, 1)) {
                fprintf(stderr, "kvnode: --router takes HOST:PORT\n");
                return KVNODE_EXIT_USAGE;
            }
            cfg->router = optarg;
            break;
        case 'z':
            if (strlen(optarg) >= 64) {
                fprintf(stderr, "kvnode: --zone takes a name under 64 bytes\n");
                return KVNODE_EXIT_USAGE;
            }
            cfg->zone = optarg;
            break;
        case 'L':
            if (parse_u64(optarg, 1, UINT32_MAX, &n) != 0) {
                fprintf(stderr, "kvnode: --raft-log-max-entries takes a number above 0\n");
                return KVNODE_EXIT_USAGE;
            }
            cfg->log_max_entries = n;
            break;
        case 'r':
            if (parse_u64(optarg, 0, KVNODE_DISK_RESERVE_MB_MAX, &n) != 0) {
                fprintf(stderr, "kvnode: --disk-reserve-mb takes a number from 0 to %llu\n",
                        (unsigned long long)KVNODE_DISK_RESERVE_MB_MAX);
                return KVNODE_EXIT_USAGE;
            }
            cfg->disk_reserve_bytes = n * 1024 * 1024;
            break;
        case 'v':
            if (log_parse_level(optarg, &level) != 0) {
                fprintf(stderr, "kvnode: unknown log level '%s'\n", optarg);
                return KVNODE_EXIT_USAGE;
            }
            log_set_level(level);
            break;
        case 'h':
            kvnode_usage(stdout);
            exit(0);
        default:
            kvnode_usage(stderr);
            return KVNODE_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kvnode: unexpected argument '%s'\n", argv[optind]);
        return KVNODE_EXIT_USAGE;
    }
    return 0;
}

/* mkdir -p: RocksDB creates only the last component. */
static int kvnode_make_dirs(const char *path) {
    char buf[PATH_MAX];

    if (strlen(path) >= sizeof(buf))
        return -1;
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Blocks until SIGTERM or SIGINT. The signals are blocked in every thread
 * (the mask is set before any starts), so only this sigwait sees them. */
static int kvnode_wait_for_stop(const sigset_t *stop_signals) {
    int sig = 0;
    sigwait(stop_signals, &sig);
    return sig;
}

int main(int argc, char **argv) {
    kvnode_config cfg;
    sigset_t stop_signals;
    rpc_server *server;
    node *n;
    kvs *store;
    int rc;

    rc = kvnode_parse_args(argc, argv, &cfg);
    if (rc != 0)
        return rc;

    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (kvnode_make_dirs(cfg.data_dir) != 0) {
        log_error("cannot create data directory %s: %s", cfg.data_dir, strerror(errno));
        return KVNODE_EXIT_START_FAILED;
    }
    if (kvs_open(cfg.data_dir, &store) != 0)
        return KVNODE_EXIT_START_FAILED;
    kvs_set_disk_reserve(store, cfg.disk_reserve_bytes);

    /* The node's id: the store's, else the flag's, else the router's. */
    uint64_t stored_id = 0;
    node_stored_id(store, &stored_id);
    if (cfg.node_id == 0)
        cfg.node_id = stored_id;
    if (cfg.node_id == 0 && cfg.router != NULL &&
        (rc = router_link_allocate_id(cfg.router, cfg.zone, 60, &cfg.node_id)) != 0) {
        if (rc == BS_ERR_UNAVAILABLE)
            log_error("no node id: the router at %s did not answer", cfg.router);
        kvs_close(store);
        return rc == BS_ERR_UNAVAILABLE ? KVNODE_EXIT_START_FAILED : 0;
    }
    if (cfg.node_id == 0)
        cfg.node_id = 1;
    node_config node_cfg = {.node_id = cfg.node_id,
                            .store = store,
                            .bootstrap = cfg.bootstrap,
                            .log_max_entries = cfg.log_max_entries};
    if (node_start(&node_cfg, &n) != 0) {
        kvs_close(store);
        return KVNODE_EXIT_START_FAILED;
    }

    server = rpc_server_create(cfg.listen, cfg.rpc_threads);
    if (server == NULL || kv_service_register(server, n) != 0 ||
        admin_service_register(server, n) != 0 || rpc_server_start(server) != 0) {
        node_free(n);
        rpc_server_destroy(server);
        kvs_close(store);
        return KVNODE_EXIT_START_FAILED;
    }
    log_info("kvnode %llu serving basalt.v1.KV on %s (port %d), data in %s",
             (unsigned long long)cfg.node_id, cfg.listen, rpc_server_port(server), cfg.data_dir);

    router_link *link = NULL;
    if (cfg.router != NULL) {
        /* Peers reach us at the port actually bound (--listen may say 0). */
        char address[300];
        const char *colon = strrchr(cfg.listen, ':');
        snprintf(address, sizeof(address), "%.*s:%d", (int)(colon - cfg.listen), cfg.listen,
                 rpc_server_port(server));
        link = router_link_start(n, cfg.router, address, cfg.zone);
    }

    int sig = kvnode_wait_for_stop(&stop_signals);
    bool removed = link != NULL && router_link_removed(link);
    if (removed)
        log_info("kvnode stopping: removed from the cluster");
    else
        log_info("kvnode stopping on signal %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    /* The node first: it answers every call it holds, so the server's stop
     * (which waits for all calls) does not hang; the node's memory stays
     * until no RPC thread can reach it. */
    router_link_stop(link);
    node_halt(n);
    rpc_server_stop(server);
    rpc_server_destroy(server);
    node_free(n);
    kvs_close(store);
    log_info("kvnode stopped");
    return removed ? KVNODE_EXIT_REMOVED : 0;
}
