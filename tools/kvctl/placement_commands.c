/* placement_commands: kvctl move, node drain|activate|remove and schedule. */
#include "tools/kvctl/placement_commands.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "basalt/v1/admin.pb-c.h"
#include "runtime/parse.h"
#include "tools/kvctl/cluster_commands.h"
#include "tools/kvctl/output.h"

/* How often kvctl node drain looks at the node while it waits. */
#define KVCTL_DRAIN_POLL_MS 500

static int kvctl_id(const char *command, const char *name, const char *text, uint64_t *id) {
    if (parse_u64(text, 1, UINT64_MAX, id) == 0)
        return KVCTL_EXIT_OK;
    fprintf(stderr, "kvctl %s: %s must be an id (a number above 0), not '%s'\n", command, name,
            text);
    return KVCTL_EXIT_USAGE;
}

/* ---- move ---- */

int kvctl_move(basalt_client *client, const kvctl_args *a) {
    Basalt__V1__MoveReplicaRequest req = BASALT__V1__MOVE_REPLICA_REQUEST__INIT;
    int rc;

    if ((rc = kvctl_id("move", "SHARD_ID", a->positionals[0], &req.shard_id)) != 0 ||
        (rc = kvctl_id("move", "FROM_NODE", a->positionals[1], &req.from_node_id)) != 0 ||
        (rc = kvctl_id("move", "TO_NODE", a->positionals[2], &req.to_node_id)) != 0)
        return rc;
    return kvctl_shard_command(client, a, "move", "/basalt.v1.Admin/MoveReplica", &req.base,
                               &basalt__v1__move_replica_response__descriptor);
}

/* ---- node ---- */

/* The node as the router lists it; NULL when it is not listed (free the
 * response with protobuf_c_message_free_unpacked). */
static const Basalt__V1__NodeInfo *kvctl_find_node(basalt_client *client, uint64_t id,
                                                   Basalt__V1__ListNodesResponse **resp) {
    Basalt__V1__ListNodesRequest req = BASALT__V1__LIST_NODES_REQUEST__INIT;

    *resp = NULL;
    if (kvctl_admin(client, "node drain", "/basalt.v1.Admin/ListNodes", &req.base,
                    &basalt__v1__list_nodes_response__descriptor,
                    (ProtobufCMessage **)resp) != KVCTL_EXIT_OK)
        return NULL;
    for (size_t i = 0; i < (*resp)->n_nodes; i++) {
        if ((*resp)->nodes[i]->id == id)
            return (*resp)->nodes[i];
    }
    return NULL;
}

static uint64_t kvctl_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void kvctl_sleep_ms(uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int kvctl_show_node(const Basalt__V1__NodeInfo *n, kvctl_output output) {
    if (output == KVCTL_OUTPUT_JSON)
        return output_json(json_pack("{s:I,s:s,s:s,s:I,s:I}", "id", (json_int_t)n->id, "address",
                                     n->address, "admin_state", kvctl_admin_name(n->admin_state),
                                     "replicas", (json_int_t)n->replicas, "leaders",
                                     (json_int_t)n->leaders))
                   ? KVCTL_EXIT_FAILED
                   : KVCTL_EXIT_OK;
    printf("node %llu is %s: %u replicas, %u leaders\n", (unsigned long long)n->id,
           kvctl_admin_name(n->admin_state), n->replicas, n->leaders);
    return KVCTL_EXIT_OK;
}

/* Waits until the node is drained, saying how many replicas are left as
 * that changes. */
static int kvctl_wait_drained(basalt_client *client, const kvctl_args *a, uint64_t id) {
    uint64_t deadline = kvctl_now_ms() + (uint64_t)a->timeout_ms;
    uint32_t last_left = UINT32_MAX;

    for (;;) {
        Basalt__V1__ListNodesResponse *resp;
        const Basalt__V1__NodeInfo *n = kvctl_find_node(client, id, &resp);
        if (n == NULL) {
            if (resp != NULL) {
                fprintf(stderr, "kvctl node drain: node %llu is no longer listed\n",
                        (unsigned long long)id);
                protobuf_c_message_free_unpacked(&resp->base, NULL);
            }
            return KVCTL_EXIT_FAILED;
        }
        if (n->admin_state == BASALT__V1__NODE_ADMIN_STATE__NODE_ADMIN_DRAINED) {
            int rc = kvctl_show_node(n, a->output);
            protobuf_c_message_free_unpacked(&resp->base, NULL);
            return rc;
        }
        if (n->replicas != last_left && a->output == KVCTL_OUTPUT_TABLE)
            fprintf(stderr, "node %llu: draining, %u replica%s left\n", (unsigned long long)id,
                    n->replicas, n->replicas == 1 ? "" : "s");
        last_left = n->replicas;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        if (kvctl_now_ms() >= deadline) {
            fprintf(stderr,
                    "kvctl node drain: node %llu is still draining after the timeout; the router "
                    "goes on (kvctl status, kvctl schedule status show how far it got)\n",
                    (unsigned long long)id);
            return KVCTL_EXIT_FAILED;
        }
        kvctl_sleep_ms(KVCTL_DRAIN_POLL_MS);
    }
}

static int kvctl_node_drain(basalt_client *client, const kvctl_args *a, uint64_t id) {
    Basalt__V1__DrainNodeRequest req = BASALT__V1__DRAIN_NODE_REQUEST__INIT;
    Basalt__V1__DrainNodeResponse *resp;

    req.node_id = id;
    int rc = kvctl_admin(client, "node drain", "/basalt.v1.Admin/DrainNode", &req.base,
                         &basalt__v1__drain_node_response__descriptor, (ProtobufCMessage **)&resp);
    if (rc != KVCTL_EXIT_OK)
        return rc;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return kvctl_wait_drained(client, a, id);
}

/* Ends a drain, running or finished: the node takes replicas again. */
static int kvctl_node_activate(basalt_client *client, const kvctl_args *a, uint64_t id) {
    Basalt__V1__DrainNodeRequest req = BASALT__V1__DRAIN_NODE_REQUEST__INIT;
    Basalt__V1__DrainNodeResponse *resp;

    req.node_id = id;
    req.cancel = true;
    int rc = kvctl_admin(client, "node activate", "/basalt.v1.Admin/DrainNode", &req.base,
                         &basalt__v1__drain_node_response__descriptor, (ProtobufCMessage **)&resp);
    if (rc != KVCTL_EXIT_OK)
        return rc;
    if (resp->node != NULL)
        rc = kvctl_show_node(resp->node, a->output);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

static int kvctl_node_remove(basalt_client *client, const kvctl_args *a, uint64_t id) {
    Basalt__V1__RemoveNodeRequest req = BASALT__V1__REMOVE_NODE_REQUEST__INIT;
    Basalt__V1__RemoveNodeResponse *resp;

    req.node_id = id;
    int rc = kvctl_admin(client, "node remove", "/basalt.v1.Admin/RemoveNode", &req.base,
                         &basalt__v1__remove_node_response__descriptor, (ProtobufCMessage **)&resp);
    if (rc != KVCTL_EXIT_OK)
        return rc;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    if (a->output == KVCTL_OUTPUT_JSON)
        return output_json(json_pack("{s:I,s:b}", "id", (json_int_t)id, "removed", 1))
                   ? KVCTL_EXIT_FAILED
                   : KVCTL_EXIT_OK;
    printf("node %llu removed\n", (unsigned long long)id);
    return KVCTL_EXIT_OK;
}

static const struct {
    const char *name;
    const char *command;
    int (*run)(basalt_client *client, const kvctl_args *a, uint64_t id);
} kvctl_node_actions[] = {
    {"drain", "node drain", kvctl_node_drain},
    {"activate", "node activate", kvctl_node_activate},
    {"remove", "node remove", kvctl_node_remove},
};

int kvctl_node(basalt_client *client, const kvctl_args *a) {
    for (size_t i = 0; i < sizeof(kvctl_node_actions) / sizeof(kvctl_node_actions[0]); i++) {
        uint64_t id;
        int rc;
        if (strcmp(a->positionals[0], kvctl_node_actions[i].name) != 0)
            continue;
        if ((rc = kvctl_id(kvctl_node_actions[i].command, "NODE_ID", a->positionals[1], &id)) != 0)
            return rc;
        return kvctl_node_actions[i].run(client, a, id);
    }
    fprintf(stderr, "kvctl node: the action is drain, activate or remove, not '%s'\n",
            a->positionals[0]);
    return KVCTL_EXIT_USAGE;
}

/* ---- schedule ---- */

static json_t *kvctl_move_json(const Basalt__V1__ScheduledMove *m) {
    return json_pack("{s:I,s:I,s:I,s:s,s:s,s:I,s:b,s:s}", "shard_id", (json_int_t)m->shard_id,
                     "from_node_id", (json_int_t)m->from_node_id, "to_node_id",
                     (json_int_t)m->to_node_id, "reason", m->reason, "step", m->step, "elapsed_ms",
                     (json_int_t)m->elapsed_ms, "ok", m->ok, "outcome", m->outcome);
}

static void kvctl_print_moves(const char *title, Basalt__V1__ScheduledMove **moves, size_t n,
                              bool running) {
    printf("%s: %zu\n", title, n);
    for (size_t i = 0; i < n; i++) {
        const Basalt__V1__ScheduledMove *m = moves[i];
        printf("  shard %llu: node %llu -> node %llu, %.1f s, %s; %s\n",
               (unsigned long long)m->shard_id, (unsigned long long)m->from_node_id,
               (unsigned long long)m->to_node_id, (double)m->elapsed_ms / 1000.0,
               running ? m->step : (m->ok ? "done" : m->outcome), m->reason);
    }
}

static int kvctl_schedule_status(basalt_client *client, const kvctl_args *a) {
    Basalt__V1__ScheduleStatusRequest req = BASALT__V1__SCHEDULE_STATUS_REQUEST__INIT;
    Basalt__V1__ScheduleStatusResponse *resp;
    int rc =
        kvctl_admin(client, "schedule status", "/basalt.v1.Admin/ScheduleStatus", &req.base,
                    &basalt__v1__schedule_status_response__descriptor, (ProtobufCMessage **)&resp);
    if (rc != KVCTL_EXIT_OK)
        return rc;
    if (a->output == KVCTL_OUTPUT_JSON) {
        json_t *running = json_array(), *recent = json_array();
        for (size_t i = 0; i < resp->n_running; i++)
            json_array_append_new(running, kvctl_move_json(resp->running[i]));
        for (size_t i = 0; i < resp->n_recent; i++)
            json_array_append_new(recent, kvctl_move_json(resp->recent[i]));
        rc = output_json(json_pack("{s:b,s:s,s:I,s:I,s:o,s:o}", "enabled", resp->enabled, "note",
                                   resp->note, "max_moves", (json_int_t)resp->max_moves,
                                   "down_after_ms", (json_int_t)resp->down_after_ms, "running",
                                   running, "recent", recent))
                 ? KVCTL_EXIT_FAILED
                 : KVCTL_EXIT_OK;
    } else {
        printf("scheduling: %s (at most %u moves at once; a node down %.0f s is repaired)\n",
               resp->enabled ? "on" : "off", resp->max_moves, (double)resp->down_after_ms / 1000.0);
        printf("now: %s\n", resp->note);
        kvctl_print_moves("running", resp->running, resp->n_running, true);
        kvctl_print_moves("recent", resp->recent, resp->n_recent, false);
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

int kvctl_schedule(basalt_client *client, const kvctl_args *a) {
    Basalt__V1__SetScheduleRequest req = BASALT__V1__SET_SCHEDULE_REQUEST__INIT;
    Basalt__V1__SetScheduleResponse *resp;
    const char *what = a->positionals[0];

    if (strcmp(what, "status") == 0)
        return kvctl_schedule_status(client, a);
    if (strcmp(what, "on") != 0 && strcmp(what, "off") != 0) {
        fprintf(stderr, "kvctl schedule: takes on, off or status, not '%s'\n", what);
        return KVCTL_EXIT_USAGE;
    }
    req.enabled = strcmp(what, "on") == 0;
    int rc =
        kvctl_admin(client, "schedule", "/basalt.v1.Admin/SetSchedule", &req.base,
                    &basalt__v1__set_schedule_response__descriptor, (ProtobufCMessage **)&resp);
    if (rc != KVCTL_EXIT_OK)
        return rc;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    if (a->output == KVCTL_OUTPUT_JSON)
        return output_json(json_pack("{s:b}", "enabled", req.enabled)) ? KVCTL_EXIT_FAILED
                                                                       : KVCTL_EXIT_OK;
    printf("scheduling is %s\n", req.enabled ? "on" : "off");
    return KVCTL_EXIT_OK;
}
