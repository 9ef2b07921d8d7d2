/* commands: put, get, del, scan and health. */
#include "tools/kvctl/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/kv_limits.h"
#include "tools/kvctl/cluster_commands.h"
#include "tools/kvctl/import.h"
#include "tools/kvctl/placement_commands.h"
#include "runtime/error.h"
#include "tools/kvctl/output.h"

/* Reports a failed call on stderr and gives the exit code for it. */
static int kvctl_fail(const char *command, const rpc_status *st) {
    fprintf(stderr, "kvctl %s: %s: %s\n", command, rpc_status_name(st->code), st->message);
    return KVCTL_EXIT_FAILED;
}

static int kvctl_done(int json_rc) {
    if (json_rc != 0) {
        fprintf(stderr, "kvctl: cannot write the output\n");
        return KVCTL_EXIT_FAILED;
    }
    return KVCTL_EXIT_OK;
}

/* Reads all of stdin, up to one byte past the largest value (so the server
 * refuses an oversized one with its own message). NULL when reading fails. */
static char *kvctl_read_stdin(size_t *len) {
    size_t cap = KV_VALUE_BYTES_MAX + 1;
    char *buf = malloc(cap);

    *len = 0;
    if (buf == NULL)
        return NULL;
    while (*len < cap) {
        size_t n = fread(buf + *len, 1, cap - *len, stdin);
        if (n == 0)
            break;
        *len += n;
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int kvctl_put(basalt_client *client, const kvctl_args *a) {
    const char *key = a->positionals[0];
    char *from_stdin = NULL;
    const char *value;
    size_t value_len;
    rpc_status st;
    int rc;

    /* Without VALUE, as with etcdctl, the value is read from stdin. */
    if (a->positional_count == 2) {
        value = a->positionals[1];
        value_len = strlen(value);
    } else {
        value = from_stdin = kvctl_read_stdin(&value_len);
        if (value == NULL) {
            fprintf(stderr, "kvctl put: cannot read the value from stdin\n");
            return KVCTL_EXIT_FAILED;
        }
    }
    rc = basalt_put(client, key, strlen(key), value, value_len, &st);
    free(from_stdin);
    if (rc != 0)
        return kvctl_fail("put", &st);
    if (a->output == KVCTL_OUTPUT_JSON)
        return kvctl_done(output_json(json_pack("{s:b}", "ok", 1)));
    puts("OK");
    return KVCTL_EXIT_OK;
}

static int kvctl_get(basalt_client *client, const kvctl_args *a) {
    const char *key = a->positionals[0];
    Basalt__V1__GetResponse *resp;
    rpc_status st;
    int rc = KVCTL_EXIT_OK;

    if (basalt_get(client, key, strlen(key), a->consistency, &resp, &st) != 0)
        return kvctl_fail("get", &st);
    if (!resp->found) {
        fprintf(stderr, "key not found\n");
        rc = KVCTL_EXIT_NOT_FOUND;
    } else if (a->output == KVCTL_OUTPUT_JSON) {
        rc = kvctl_done(output_json(
            json_pack("{s:o,s:o,s:o}", "key", output_base64((const uint8_t *)key, strlen(key)),
                      "value", output_base64(resp->value.data, resp->value.len), "info",
                      output_read_info(resp->info))));
    } else {
        output_bytes(resp->value.data, resp->value.len, "\n");
    }
    basalt_response_free(resp);
    return rc;
}

static int kvctl_del(basalt_client *client, const kvctl_args *a) {
    const char *key = a->positionals[0];
    bool deleted;
    rpc_status st;

    if (basalt_delete(client, key, strlen(key), &deleted, &st) != 0)
        return kvctl_fail("del", &st);
    if (a->output == KVCTL_OUTPUT_JSON)
        return kvctl_done(output_json(json_pack("{s:b}", "deleted", deleted)));
    /* As etcdctl: the number of keys removed. */
    puts(deleted ? "1" : "0");
    return KVCTL_EXIT_OK;
}

static json_t *kvctl_scan_json(const Basalt__V1__ScanResponse *resp) {
    json_t *kvs = json_array();

    for (size_t i = 0; kvs != NULL && i < resp->n_kvs; i++) {
        const Basalt__V1__KeyValue *kv = resp->kvs[i];
        json_array_append_new(kvs, json_pack("{s:o,s:o}", "key",
                                             output_base64(kv->key.data, kv->key.len), "value",
                                             output_base64(kv->value.data, kv->value.len)));
    }
    return json_pack("{s:o,s:b,s:o}", "kvs", kvs, "more", resp->more, "info",
                     output_read_info(resp->info));
}

static int kvctl_scan(basalt_client *client, const kvctl_args *a) {
    Basalt__V1__ScanRequest req = BASALT__V1__SCAN_REQUEST__INIT;
    Basalt__V1__ScanResponse *resp;
    rpc_status st;
    int rc = KVCTL_EXIT_OK;

    /* --after: start just past START, at START followed by a 0x00 byte (the
     * argument's own terminating NUL). */
    req.start.data = (uint8_t *)a->positionals[0];
    req.start.len = strlen(a->positionals[0]) + (a->after ? 1 : 0);
    if (a->positional_count > 1) {
        req.end.data = (uint8_t *)a->positionals[1];
        req.end.len = strlen(a->positionals[1]);
    }
    req.limit = a->limit;
    req.consistency = a->consistency;
    if (basalt_scan(client, &req, &resp, &st) != 0)
        return kvctl_fail("scan", &st);

    if (a->output == KVCTL_OUTPUT_JSON) {
        rc = kvctl_done(output_json(kvctl_scan_json(resp)));
    } else {
        /* One pair per line: key, a tab, the value. */
        for (size_t i = 0; i < resp->n_kvs; i++) {
            output_bytes(resp->kvs[i]->key.data, resp->kvs[i]->key.len, "\t");
            output_bytes(resp->kvs[i]->value.data, resp->kvs[i]->value.len, "\n");
        }
        if (resp->more)
            fprintf(stderr,
                    "(more keys follow: continue with kvctl scan --after LAST_KEY [END])\n");
    }
    basalt_response_free(resp);
    return rc;
}

static int kvctl_health(basalt_client *client, const kvctl_args *a) {
    rpc_status st;

    if (basalt_health(client, &st) != 0)
        return kvctl_fail("health", &st);
    if (a->output == KVCTL_OUTPUT_JSON)
        return kvctl_done(output_json(json_pack("{s:s}", "status", "SERVING")));
    puts("SERVING");
    return KVCTL_EXIT_OK;
}

static const kvctl_command kvctl_commands[] = {
    {"put", "KEY [VALUE]",
     "store VALUE under KEY, durably before answering; without VALUE, read it from stdin", 1, 2, 0,
     kvctl_put},
    {"get", "KEY [--consistency strong|eventual]",
     "print the value of KEY; exit 1 with 'key not found' when it is missing", 1, 1,
     KVCTL_FLAG_CONSISTENCY, kvctl_get},
    {"del", "KEY", "delete KEY; print 1 if it existed, 0 if not", 1, 1, 0, kvctl_del},
    {"scan", "START [END] [--limit N] [--after] [--consistency strong|eventual]",
     "print the pairs with START <= key < END (no END: to the end), in key order, one per line "
     "as KEY<TAB>VALUE; at most N (default 1000, max 10000); --after leaves out START itself, "
     "to continue a scan from its last key",
     1, 2, KVCTL_FLAG_CONSISTENCY | KVCTL_FLAG_LIMIT | KVCTL_FLAG_AFTER, kvctl_scan},
    {"health", "", "ask the endpoint whether it is serving", 0, 0, 0, kvctl_health},
    {"status", "", "show the cluster's nodes (up or down, replicas, leaders) and shard count", 0, 0,
     0, kvctl_status},
    {"shards", "", "show every shard: range, epoch, leader, replicas", 0, 0, 0, kvctl_shards},
    {"split", "SHARD_ID [KEY]",
     "split a shard in two while it serves: the new shard takes the keys from KEY on (no KEY: "
     "the shard's middle by size); shows both",
     1, 2, 0, kvctl_split},
    {"transfer-leader", "SHARD_ID NODE_ID",
     "hand the shard's leadership to its replica on NODE_ID; shows the shard once that node leads "
     "it",
     2, 2, 0, kvctl_transfer_leader},
    {"move", "SHARD_ID FROM_NODE TO_NODE",
     "move the shard's replica on FROM_NODE to TO_NODE while it serves (a learner joins, catches "
     "up by snapshot, is promoted, and the old replica leaves); shows the shard once done "
     "(--timeout defaults to 5m here)",
     3, 3, 0, kvctl_move},
    {"node", "drain|activate|remove NODE_ID",
     "drain: move every replica and leadership off the node, waiting until it is drained (it "
     "can then be stopped; --timeout bounds the whole wait, 30m unless given; drains run even "
     "with the scheduler off); activate: end a drain, running or finished, so the node takes "
     "replicas again; remove: forget a drained or down node for good (a down node's replicas "
     "are made again elsewhere)",
     2, 2, 0, kvctl_node},
    {"schedule", "on|off|status",
     "turn the scheduler's replica moves and leader hand-overs on or off, or show what it is "
     "doing and why",
     1, 1, 0, kvctl_schedule},
    {"import", "FILE",
     "load key<TAB>value lines from FILE (- for stdin), many at once; malformed lines are "
     "reported by number and skipped",
     1, 1, 0, kvctl_import},
};

const kvctl_command *kvctl_find_command(const char *name) {
    for (size_t i = 0; i < sizeof(kvctl_commands) / sizeof(kvctl_commands[0]); i++) {
        if (strcmp(kvctl_commands[i].name, name) == 0)
            return &kvctl_commands[i];
    }
    return NULL;
}

static void kvctl_print_global_flags(FILE *out) {
    fprintf(out,
            "\nglobal flags:\n"
            "  --endpoints HOST:PORT,...  where to send requests (default $" KVCTL_ENDPOINTS_ENV
            ", then " KVCTL_ENDPOINT_DEFAULT ")\n"
            "  --output table|json        output format (default table; json has base64 keys\n"
            "                             and values)\n"
            "  --timeout D                per-request timeout, e.g. 500ms, 5s, 1m (default 5s)\n"
            "  -h, --help                 show help\n"
            "\nexit codes: 0 ok, 1 key not found, 2 usage error, 3 request failed\n");
}

void kvctl_print_usage(FILE *out) {
    fprintf(out, "usage: kvctl [global flags] COMMAND [ARGS]\n\n"
                 "Basalt's command line client.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(kvctl_commands) / sizeof(kvctl_commands[0]); i++)
        fprintf(out, "  %-15s %s\n", kvctl_commands[i].name, kvctl_commands[i].synopsis);
    fprintf(out, "\n'kvctl COMMAND --help' says more about a command.\n");
    kvctl_print_global_flags(out);
}

void kvctl_print_command_usage(FILE *out, const kvctl_command *cmd) {
    fprintf(out, "usage: kvctl [global flags] %s %s\n\n%s.\n", cmd->name, cmd->synopsis,
            cmd->summary);
    kvctl_print_global_flags(out);
}
