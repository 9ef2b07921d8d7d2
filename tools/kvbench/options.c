/* options: getopt_long over kvbench's flags, every value range-checked. */
#include "tools/kvbench/options.h"

#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/parse.h"

enum {
    OPT_TARGET = 256,
    OPT_WORKLOAD,
    OPT_DISTRIBUTION,
    OPT_RECORDS,
    OPT_OPERATIONS,
    OPT_DURATION,
    OPT_RATE,
    OPT_CLIENTS,
    OPT_CONNS,
    OPT_THREADS,
    OPT_KEY_BYTES,
    OPT_VALUE_BYTES,
    OPT_CONSISTENCY,
    OPT_SEQUENTIAL_KEYS,
    OPT_PHASE,
    OPT_TIMEOUT,
    OPT_SEED,
    OPT_OUTPUT,
    OPT_HELP,
};

static const struct option options_long[] = {
    {"target", required_argument, NULL, OPT_TARGET},
    {"workload", required_argument, NULL, OPT_WORKLOAD},
    {"distribution", required_argument, NULL, OPT_DISTRIBUTION},
    {"records", required_argument, NULL, OPT_RECORDS},
    {"operations", required_argument, NULL, OPT_OPERATIONS},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"rate", required_argument, NULL, OPT_RATE},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"conns", required_argument, NULL, OPT_CONNS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"key-bytes", required_argument, NULL, OPT_KEY_BYTES},
    {"value-bytes", required_argument, NULL, OPT_VALUE_BYTES},
    {"consistency", required_argument, NULL, OPT_CONSISTENCY},
    {"sequential-keys", no_argument, NULL, OPT_SEQUENTIAL_KEYS},
    {"phase", required_argument, NULL, OPT_PHASE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

void options_usage(FILE *out) {
    fprintf(out,
            "usage: kvbench [flags]\n"
            "  --target URL          basalt://HOST:PORT[,...] (default %s)\n"
            "                        or etcd://HOST:PORT[,...] (etcd's v3 API)\n"
            "  --workload W          %s (default a)\n"
            "  --distribution D      uniform, zipfian or latest (default: the workload's)\n"
            "  --records N           records loaded, and the keyspace (default 10000)\n"
            "  --operations N        operations of the run phase (default 10000; with\n"
            "                        --duration, 0 for no count limit)\n"
            "  --duration D          run phase length, as 30s or 2m (default: none)\n"
            "  --rate R              operations per second over all clients (default 0:\n"
            "                        as fast as answers come)\n"
            "  --clients N           logical clients, one operation in flight each\n"
            "                        (default 16, at most %d)\n"
            "  --conns C             gRPC channels, spread over the endpoints (default 4)\n"
            "  --threads T           completion-queue threads (default 2, at most %d)\n"
            "  --key-bytes N         %d to %d (default 24)\n"
            "  --value-bytes N       0 to %d (default 1000, YCSB's 1 KB record)\n"
            "  --consistency C       strong or eventual reads and scans (default strong)\n"
            "  --sequential-keys     keys sort as records do, and put writes records in\n"
            "                        order, wrapping at --records (default: hashed keys,\n"
            "                        as YCSB, and uniform puts)\n"
            "  --phase P             load, run or all (default: all; run for put)\n"
            "  --timeout D           per request (default 10s)\n"
            "  --seed N              replays a run's draws (default: from the clock; printed)\n"
            "  --output F            table or json (default table)\n",
            KVBENCH_TARGET_DEFAULT, workload_names(), RUNNER_CLIENTS_MAX, RUNNER_THREADS_MAX,
            RUNNER_KEY_BYTES_MIN, RUNNER_KEY_BYTES_MAX, RUNNER_VALUE_BYTES_MAX);
}

static void options_defaults(kvbench_options *o) {
    memset(o, 0, sizeof(*o));
    o->target_spec = KVBENCH_TARGET_DEFAULT;
    o->run.workload = workload_find("a");
    o->run.records = 10000;
    o->run.operations = 10000;
    o->run.clients = 16;
    o->run.conns = 4;
    o->run.threads = 2;
    o->run.key_bytes = 24;
    o->run.value_bytes = 1000;
    o->run.timeout_ms = 10000;
    o->phase_load = o->phase_run = true;
}

/* A number flag from min to max; -1 with the reason otherwise. */
static int options_number(const char *flag, const char *text, uint64_t min, uint64_t max,
                          uint64_t *out, char *why, size_t why_size) {
    if (parse_u64(text, min, max, out) == 0)
        return 0;
    snprintf(why, why_size, "%s takes a number from %llu to %llu, not '%s'", flag,
             (unsigned long long)min, (unsigned long long)max, text);
    return -1;
}

static int options_duration(const char *flag, const char *text, uint64_t min_ms, uint64_t *out,
                            char *why, size_t why_size) {
    if (parse_duration_ms(text, min_ms, KVBENCH_DURATION_MS_MAX, out) == 0)
        return 0;
    snprintf(why, why_size, "%s takes a duration such as 500ms, 30s or 2m (at most 24h), not '%s'",
             flag, text);
    return -1;
}

static int options_phase(const char *text, kvbench_options *o, char *why, size_t why_size) {
    o->phase_load = strcmp(text, "load") == 0 || strcmp(text, "all") == 0;
    o->phase_run = strcmp(text, "run") == 0 || strcmp(text, "all") == 0;
    if (o->phase_load || o->phase_run)
        return 0;
    snprintf(why, why_size, "--phase takes load, run or all, not '%s'", text);
    return -1;
}

/* One flag and its value. */
static int options_take(int opt, const char *arg, kvbench_options *o, bool *dist_given,
                        bool *phase_given, bool *ops_given, char *why, size_t why_size) {
    run_config *r = &o->run;
    uint64_t n = 0;
    int rc = 0;

    switch (opt) {
    case OPT_TARGET:
        o->target_spec = arg;
        break;
    case OPT_WORKLOAD:
        if ((r->workload = workload_find(arg)) == NULL) {
            snprintf(why, why_size, "--workload takes one of %s, not '%s'", workload_names(), arg);
            rc = -1;
        }
        break;
    case OPT_DISTRIBUTION:
        *dist_given = true;
        if (dist_parse(arg, &r->distribution) != 0) {
            snprintf(why, why_size, "--distribution takes uniform, zipfian or latest, not '%s'",
                     arg);
            rc = -1;
        }
        break;
    case OPT_RECORDS:
        rc = options_number("--records", arg, 1, KVBENCH_COUNT_MAX, &r->records, why, why_size);
        break;
    case OPT_OPERATIONS:
        *ops_given = true;
        rc = options_number("--operations", arg, 0, KVBENCH_COUNT_MAX, &r->operations, why,
                            why_size);
        break;
    case OPT_DURATION:
        rc = options_duration("--duration", arg, 1, &r->duration_ms, why, why_size);
        break;
    case OPT_RATE:
        rc = options_number("--rate", arg, 0, KVBENCH_RATE_MAX, &n, why, why_size);
        r->rate = (double)n;
        break;
    case OPT_CLIENTS:
        rc = options_number("--clients", arg, 1, RUNNER_CLIENTS_MAX, &n, why, why_size);
        r->clients = (int)n;
        break;
    case OPT_CONNS:
        rc = options_number("--conns", arg, 1, TARGET_CONNS_MAX, &n, why, why_size);
        r->conns = (int)n;
        break;
    case OPT_THREADS:
        rc = options_number("--threads", arg, 1, RUNNER_THREADS_MAX, &n, why, why_size);
        r->threads = (int)n;
        break;
    case OPT_KEY_BYTES:
        rc = options_number("--key-bytes", arg, RUNNER_KEY_BYTES_MIN, RUNNER_KEY_BYTES_MAX, &n, why,
                            why_size);
        r->key_bytes = (uint32_t)n;
        break;
    case OPT_VALUE_BYTES:
        rc = options_number("--value-bytes", arg, 0, RUNNER_VALUE_BYTES_MAX, &n, why, why_size);
        r->value_bytes = (uint32_t)n;
        break;
    case OPT_CONSISTENCY:
        r->eventual = strcmp(arg, "eventual") == 0;
        if (!r->eventual && strcmp(arg, "strong") != 0) {
            snprintf(why, why_size, "--consistency takes strong or eventual, not '%s'", arg);
            rc = -1;
        }
        break;
    case OPT_SEQUENTIAL_KEYS:
        r->sequential_keys = true;
        break;
    case OPT_PHASE:
        *phase_given = true;
        rc = options_phase(arg, o, why, why_size);
        break;
    case OPT_TIMEOUT:
        rc = options_duration("--timeout", arg, 1, &n, why, why_size);
        r->timeout_ms = (int64_t)n;
        break;
    case OPT_SEED:
        o->seed_given = true;
        rc = options_number("--seed", arg, 0, UINT64_MAX, &r->seed, why, why_size);
        break;
    case OPT_OUTPUT:
        o->output = strcmp(arg, "json") == 0 ? OUTPUT_JSON : OUTPUT_TABLE;
        if (o->output == OUTPUT_TABLE && strcmp(arg, "table") != 0) {
            snprintf(why, why_size, "--output takes table or json, not '%s'", arg);
            rc = -1;
        }
        break;
    case OPT_HELP:
        o->help = true;
        break;
    default:
        snprintf(why, why_size, "unknown flag (see kvbench --help)");
        rc = -1;
    }
    return rc;
}

int options_parse(int argc, char **argv, kvbench_options *o, char *why, size_t why_size) {
    bool dist_given = false, phase_given = false, ops_given = false;
    int opt;

    options_defaults(o);
    optind = 0; /* glibc: start over, so a caller may parse twice */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", options_long, NULL)) != -1) {
        if (opt == '?') {
            snprintf(why, why_size, "unknown flag or missing value: '%s' (see kvbench --help)",
                     argv[optind - 1]);
            return -1;
        }
        if (options_take(opt, optarg, o, &dist_given, &phase_given, &ops_given, why, why_size))
            return -1;
    }
    if (optind < argc) {
        snprintf(why, why_size, "kvbench takes flags only, not '%s'", argv[optind]);
        return -1;
    }
    if (!dist_given)
        o->run.distribution = o->run.workload->distribution;
    /* A plain put needs nothing loaded first. */
    if (!phase_given && strcmp(o->run.workload->name, "put") == 0)
        o->phase_load = false;
    /* With a duration alone, the duration ends the run. */
    if (o->run.duration_ms > 0 && !ops_given)
        o->run.operations = 0;
    if (o->run.operations == 0 && o->run.duration_ms == 0) {
        snprintf(why, why_size, "--operations 0 needs --duration, or the run would never end");
        return -1;
    }
    if (!o->seed_given)
        o->run.seed = (uint64_t)time(NULL);
    return 0;
}
