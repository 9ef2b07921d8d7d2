/* router: Basalt's front door. Serves the public basalt.v1.KV API by
 * forwarding each call to the right kvnode, the Cluster service nodes
 * register and heartbeat through, and the operator Admin service. Its own
 * durable state (cluster id, id allocators, node registry) lives in a small
 * RocksDB under --data-dir; the shard map comes back from heartbeats. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "router/meta.h"
#include "router/proxy.h"
#include "router/services.h"
#include "router/scheduler.h"
#include "router/split.h"
#include "router/state.h"
#include "runtime/log.h"
#include "runtime/parse.h"
#include "runtime/rpc_server.h"

#define ROUTER_LISTEN_DEFAULT     "127.0.0.1:7379"
#define ROUTER_DATA_DIR_DEFAULT   "router-data"
#define ROUTER_REPLICAS_DEFAULT   3
#define ROUTER_DOWN_AFTER_DEFAULT 10000
/* --down-after: how long a node may be down before its replicas are made
 * again elsewhere (default 60 s; at least one second, at most a week). */
#define ROUTER_DEAD_AFTER_DEFAULT_MS (60 * 1000)
#define ROUTER_DEAD_AFTER_MIN_MS     1000
#define ROUTER_DEAD_AFTER_MAX_MS     (7ull * 24 * 3600 * 1000)
#define ROUTER_MAX_MOVES_DEFAULT     2
/* Upper bounds of --split-size-mb (1 TiB) and --split-qps. */
#define ROUTER_SPLIT_SIZE_MB_MAX (1024 * 1024)
#define ROUTER_SPLIT_QPS_MAX     10000000
#define ROUTER_EXIT_START_FAILED 1
#define ROUTER_EXIT_USAGE        2

typedef struct {
    const char *listen;
    const char *data_dir;
    int replicas;
    uint64_t down_after_ms;
    const char *zone;
    uint64_t split_size_mb;
    uint64_t split_qps;
    bool balance_leaders;
    uint64_t dead_after_ms;
    uint64_t max_moves;
} router_config;

static void router_usage(FILE *out) {
    fprintf(out,
            "usage: router [--listen HOST:PORT] [--data-dir DIR] [--replicas N]\n"
            "              [--node-down-after-ms MS] [--zone NAME] [--split-size-mb MB]\n"
            "              [--split-qps N] [--balance-leaders on|off] [--down-after DURATION]\n"
            "              [--max-moves N] [--log-level LEVEL]\n"
            "\n"
            "Basalt's router: serves basalt.v1.KV by forwarding to the kvnodes.\n"
            "\n"
            "  --listen HOST:PORT        address to serve on (default " ROUTER_LISTEN_DEFAULT ")\n"
            "  --data-dir DIR            the router's own state (default ./" ROUTER_DATA_DIR_DEFAULT
            ")\n"
            "  --replicas N              replicas per shard; shard 1 is created once N nodes\n"
            "                            have registered (default 3, 1 to 16)\n"
            "  --node-down-after-ms MS   a node silent this long is down (default 10000)\n"
            "  --zone NAME               the router's zone: eventual reads go to followers in\n"
            "                            this zone when there are any (kvnode --zone)\n"
            "  --split-size-mb MB        split a shard larger than this (default 64; 0: never)\n"
            "  --split-qps N             split a shard serving more requests a second than\n"
            "                            this for 10 s (default 2000; 0: never)\n"
            "  --balance-leaders on|off  hand leaderships over so that no node leads more\n"
            "                            than one shard over another (default on)\n"
            "  --down-after DURATION     a node down this long (500ms, 60s, 5m) loses its\n"
            "                            replicas: they are made again on other nodes\n"
            "                            (default 60s, 1s to 168h)\n"
            "  --max-moves N             replica moves the scheduler runs at once (default 2,\n"
            "                            1 to 64)\n"
            "  --log-level LEVEL         debug, info, warn or error (default info)\n");
}

static int router_parse_args(int argc, char **argv, router_config *cfg) {
    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},
        {"data-dir", required_argument, NULL, 'd'},
        {"replicas", required_argument, NULL, 'r'},
        {"node-down-after-ms", required_argument, NULL, 'D'},
        {"zone", required_argument, NULL, 'z'},
        {"split-size-mb", required_argument, NULL, 'S'},
        {"split-qps", required_argument, NULL, 'Q'},
        {"balance-leaders", required_argument, NULL, 'B'},
        {"down-after", required_argument, NULL, 'A'},
        {"max-moves", required_argument, NULL, 'M'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    log_level_t level;
    uint64_t n;
    int opt;

    *cfg = (router_config){ROUTER_LISTEN_DEFAULT,
                           ROUTER_DATA_DIR_DEFAULT,
                           ROUTER_REPLICAS_DEFAULT,
                           ROUTER_DOWN_AFTER_DEFAULT,
                           "",
                           ROUTER_SPLIT_SIZE_MB_DEFAULT,
                           ROUTER_SPLIT_QPS_DEFAULT,
                           true,
                           ROUTER_DEAD_AFTER_DEFAULT_MS,
                           ROUTER_MAX_MOVES_DEFAULT};
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            if (!parse_host_port(optarg, 0)) {
                fprintf(stderr, "router: --listen takes HOST:PORT with a port from 0 to 65535\n");
                return ROUTER_EXIT_USAGE;
            }
            cfg->listen = optarg;
            break;
        case 'd':
            cfg->data_dir = optarg;
            break;
        case 'r':
            if (parse_u64(optarg, 1, ROUTER_REPLICAS_MAX, &n) != 0) {
                fprintf(stderr, "router: --replicas takes a number from 1 to %d\n",
                        ROUTER_REPLICAS_MAX);
                return ROUTER_EXIT_USAGE;
            }
            cfg->replicas = (int)n;
            break;
        case 'D':
            if (parse_u64(optarg, 100, 24ull * 3600 * 1000, &cfg->down_after_ms) != 0) {
                fprintf(stderr, "router: --node-down-after-ms takes 100 to 86400000\n");
                return ROUTER_EXIT_USAGE;
            }
            break;
        case 'z':
            if (strlen(optarg) >= ROUTER_ZONE_BYTES) {
                fprintf(stderr, "router: --zone takes a name under %d bytes\n", ROUTER_ZONE_BYTES);
                return ROUTER_EXIT_USAGE;
            }
            cfg->zone = optarg;
            break;
        case 'S':
            if (parse_u64(optarg, 0, ROUTER_SPLIT_SIZE_MB_MAX, &cfg->split_size_mb) != 0) {
                fprintf(stderr, "router: --split-size-mb takes 0 to %d\n",
                        ROUTER_SPLIT_SIZE_MB_MAX);
                return ROUTER_EXIT_USAGE;
            }
            break;
        case 'Q':
            if (parse_u64(optarg, 0, ROUTER_SPLIT_QPS_MAX, &cfg->split_qps) != 0) {
                fprintf(stderr, "router: --split-qps takes 0 to %d\n", ROUTER_SPLIT_QPS_MAX);
                return ROUTER_EXIT_USAGE;
            }
            break;
        case 'B':
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
                fprintf(stderr, "router: --balance-leaders takes on or off\n");
                return ROUTER_EXIT_USAGE;
            }
            cfg->balance_leaders = strcmp(optarg, "on") == 0;
            break;
        case 'A':
            if (parse_duration_ms(optarg, ROUTER_DEAD_AFTER_MIN_MS, ROUTER_DEAD_AFTER_MAX_MS,
                                  &cfg->dead_after_ms) != 0) {
                fprintf(stderr, "router: --down-after takes a duration from 1s to 168h, with "
                                "its unit: 500ms, 60s, 5m\n");
                return ROUTER_EXIT_USAGE;
            }
            break;
        case 'M':
            if (parse_u64(optarg, 1, ROUTER_MOVES_MAX, &cfg->max_moves) != 0) {
                fprintf(stderr, "router: --max-moves takes 1 to %d\n", ROUTER_MOVES_MAX);
                return ROUTER_EXIT_USAGE;
            }
            break;
        case 'v':
            if (log_parse_level(optarg, &level) != 0) {
                fprintf(stderr, "router: unknown log level '%s'\n", optarg);
                return ROUTER_EXIT_USAGE;
            }
            log_set_level(level);
            break;
        case 'h':
            router_usage(stdout);
            exit(0);
        default:
            router_usage(stderr);
            return ROUTER_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "router: unexpected argument '%s'\n", argv[optind]);
        return ROUTER_EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv) {
    router_config cfg;
    router_state state;
    sigset_t stop_signals;
    meta *m;
    proxy *px;
    rpc_server *server;
    int sig, rc;

    if ((rc = router_parse_args(argc, argv, &cfg)) != 0)
        return rc;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (mkdir(cfg.data_dir, 0755) != 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", cfg.data_dir, strerror(errno));
        return ROUTER_EXIT_START_FAILED;
    }
    if (meta_open(cfg.data_dir, &m) != 0)
        return ROUTER_EXIT_START_FAILED;
    if (router_state_init(&state, m, cfg.replicas, cfg.down_after_ms, cfg.dead_after_ms,
                          (int)cfg.max_moves) != 0 ||
        (px = proxy_create(&state, cfg.zone)) == NULL) {
        meta_close(m);
        return ROUTER_EXIT_START_FAILED;
    }
    server = rpc_server_create(cfg.listen, 0);
    if (server == NULL || proxy_register(server, px) != 0 ||
        router_cluster_service_register(server, &state) != 0 ||
        router_admin_service_register(server, &state) != 0 || rpc_server_start(server) != 0) {
        rpc_server_destroy(server);
        proxy_destroy(px);
        router_state_free(&state);
        meta_close(m);
        return ROUTER_EXIT_START_FAILED;
    }
    log_info("router of cluster %s serving on %s (port %d), data in %s%s%s", meta_cluster_id(m),
             cfg.listen, rpc_server_port(server), cfg.data_dir, cfg.zone[0] ? ", zone " : "",
             cfg.zone);
    state.split_qps = cfg.split_qps;
    router_scheduler_config sched = {cfg.split_size_mb * 1024 * 1024, cfg.balance_leaders};
    router_scheduler *scheduler = router_scheduler_start(&state, &sched);
    if (scheduler == NULL)
        log_warn("cannot start the scheduler: no automatic splits, repairs or leader balance");

    sigwait(&stop_signals, &sig);
    log_info("router stopping on signal %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    router_scheduler_stop(scheduler);
    /* Calls in flight are answered by their callbacks (their deadlines bound
     * them) before the server's stop returns. */
    rpc_server_stop(server);
    proxy_destroy(px);
    rpc_server_destroy(server);
    router_state_free(&state);
    meta_close(m);
    log_info("router stopped");
    return 0;
}
