/* cluster_commands: kvctl status, shards, split and transfer-leader, from the
 * router's Admin service. */
#include "tools/kvctl/cluster_commands.h"

#include <stdio.h>
#include <string.h>

#include "runtime/parse.h"
#include "basalt/v1/admin.pb-c.h"
#include "tools/kvctl/output.h"

/* Whether `method` changes the cluster in the background of its call. */
static bool kvctl_changes_placement(const char *method) {
    static const char *const changing[] = {"/MoveReplica", "/SplitShard", "/TransferLeader",
                                           "/DrainNode"};
    for (size_t i = 0; i < sizeof(changing) / sizeof(changing[0]); i++) {
        if (strstr(method, changing[i]) != NULL)
            return true;
    }
    return false;
}

int kvctl_admin(basalt_client *client, const char *command, const char *method,
                const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
                ProtobufCMessage **resp) {
    rpc_status st;

    if (basalt_client_call(client, method, req, desc, resp, &st) != 0) {
        fprintf(stderr, "kvctl %s: %s: %s\n", command, rpc_status_name(st.code), st.message);
        if ((st.code == GRPC_STATUS_UNAVAILABLE || st.code == GRPC_STATUS_DEADLINE_EXCEEDED) &&
            kvctl_changes_placement(method))
            fprintf(stderr,
                    "kvctl %s: the answer was lost, not necessarily the change: a drain goes on, "
                    "a move finishes or is rolled back; kvctl schedule status and kvctl shards "
                    "show where things stand\n",
                    command);
        return KVCTL_EXIT_FAILED;
    }
    return KVCTL_EXIT_OK;
}

static const char *kvctl_state_name(Basalt__V1__NodeState s) {
    return s == BASALT__V1__NODE_STATE__NODE_STATE_UP ? "up" : "down";
}

const char *kvctl_admin_name(Basalt__V1__NodeAdminState s) {
    return s == BASALT__V1__NODE_ADMIN_STATE__NODE_ADMIN_DRAINING  ? "draining"
           : s == BASALT__V1__NODE_ADMIN_STATE__NODE_ADMIN_DRAINED ? "drained"
                                                                   : "active";
}

int kvctl_status(basalt_client *client, const kvctl_args *a) {
    Basalt__V1__ClusterStatusRequest req = BASALT__V1__CLUSTER_STATUS_REQUEST__INIT;
    Basalt__V1__ClusterStatusResponse *resp;
    int rc =
        kvctl_admin(client, "status", "/basalt.v1.Admin/ClusterStatus", &req.base,
                    &basalt__v1__cluster_status_response__descriptor, (ProtobufCMessage **)&resp);
    if (rc != KVCTL_EXIT_OK)
        return rc;

    if (a->output == KVCTL_OUTPUT_JSON) {
        json_t *nodes = json_array();
        for (size_t i = 0; i < resp->n_nodes; i++) {
            const Basalt__V1__NodeInfo *n = resp->nodes[i];
            json_array_append_new(nodes, json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I}", "id",
                                                   (json_int_t)n->id, "address", n->address, "zone",
                                                   n->zone, "state", kvctl_state_name(n->state),
                                                   "admin_state", kvctl_admin_name(n->admin_state),
                                                   "replicas", (json_int_t)n->replicas, "leaders",
                                                   (json_int_t)n->leaders));
        }
        rc = output_json(json_pack("{s:s,s:o,s:I}", "cluster_id", resp->cluster_id, "nodes", nodes,
                                   "shards", (json_int_t)resp->shards))
                 ? KVCTL_EXIT_FAILED
                 : KVCTL_EXIT_OK;
    } else {
        printf("cluster %s\n", resp->cluster_id);
        printf("%-6s %-24s %-10s %-6s %-9s %-9s %s\n", "NODE", "ADDRESS", "ZONE", "STATE", "ADMIN",
               "REPLICAS", "LEADERS");
        for (size_t i = 0; i < resp->n_nodes; i++) {
            const Basalt__V1__NodeInfo *n = resp->nodes[i];
            printf("%-6llu %-24s %-10s %-6s %-9s %-9u %u\n", (unsigned long long)n->id,
                   n->address[0] ? n->address : "-", n->zone[0] ? n->zone : "-",
                   kvctl_state_name(n->state), kvctl_admin_name(n->admin_state), n->replicas,
                   n->leaders);
        }
        printf("shards: %u\n", resp->shards);
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

/* Columns a key bound takes in kvctl shards. */
#define KVCTL_BOUND_COLUMNS 16

/* A key bound for people, in KVCTL_BOUND_COLUMNS: printable as it is, else in
 * hex, cut with ".." when longer; "" and "(end)" for the open ends. */
static void kvctl_print_bound(ProtobufCBinaryData b, const char *empty) {
    char text[KVCTL_BOUND_COLUMNS + 1];
    bool printable = true;
    size_t n = 0;

    for (size_t i = 0; i < b.len; i++)
        printable = printable && b.data[i] >= 0x21 && b.data[i] < 0x7f;
    if (b.len == 0) {
        snprintf(text, sizeof(text), "%s", empty);
    } else if (printable) {
        n = b.len <= KVCTL_BOUND_COLUMNS ? b.len : KVCTL_BOUND_COLUMNS - 2;
        snprintf(text, sizeof(text), "%.*s%s", (int)n, (const char *)b.data, n < b.len ? ".." : "");
    } else {
        /* "0x", two digits a byte, and room for "..". */
        size_t fit = b.len <= (KVCTL_BOUND_COLUMNS - 2) / 2 ? b.len : (KVCTL_BOUND_COLUMNS - 4) / 2;
        n = (size_t)snprintf(text, sizeof(text), "0x");
        for (size_t i = 0; i < fit; i++)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%02x", b.data[i]);
        snprintf(text + n, sizeof(text) - n, "%s", fit < b.len ? ".." : "");
    }
    printf("%-*s ", KVCTL_BOUND_COLUMNS, text);
}

static json_t *kvctl_shard_json(const Basalt__V1__ShardInfo *s) {
    const Basalt__V1__ShardDescriptor *d = s->descriptor;
    json_t *replicas = json_array();

    for (size_t i = 0; i < d->n_replicas; i++)
        json_array_append_new(
            replicas,
            json_pack("{s:I,s:I,s:s}", "node_id", (json_int_t)d->replicas[i]->node_id, "replica_id",
                      (json_int_t)d->replicas[i]->replica_id, "role",
                      d->replicas[i]->role == BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_LEARNER
                          ? "learner"
                          : "voter"));
    return json_pack("{s:I,s:o,s:o,s:I,s:I,s:I,s:o}", "id", (json_int_t)d->id, "start",
                     output_base64(d->start.data, d->start.len), "end",
                     output_base64(d->end.data, d->end.len), "conf_ver", (json_int_t)d->conf_ver,
                     "version", (json_int_t)d->version, "leader", (json_int_t)s->leader_node_id,
                     "replicas", replicas);
}

static void kvctl_print_shard_header(void) {
    printf("%-6s %-16s %-16s %-8s %-8s %-7s %s\n", "SHARD", "START", "END", "CONF_VER", "VERSION",
           "LEADER", "REPLICAS (node/replica/role)");
}

static void kvctl_print_shard(const Basalt__V1__ShardInfo *s) {
    const Basalt__V1__ShardDescriptor *d = s->descriptor;

    printf("%-6llu ", (unsigned long long)d->id);
    kvctl_print_bound(d->start, "\"\"");
    kvctl_print_bound(d->end, "(end)");
    printf("%-8llu %-8llu %-7llu", (unsigned long long)d->conf_ver, (unsigned long long)d->version,
           (unsigned long long)s->leader_node_id);
    for (size_t k = 0; k < d->n_replicas; k++)
        printf(" %llu/%llu/%s", (unsigned long long)d->replicas[k]->node_id,
               (unsigned long long)d->replicas[k]->replica_id,
               d->replicas[k]->role == BASALT__V1__REPLICA_ROLE__REPLICA_ROLE_LEARNER ? "learner"
                                                                                      : "voter");
    printf("\n");
}

int kvctl_split(basalt_client *client, const kvctl_args *a) {
    Basalt__V1__SplitShardRequest req = BASALT__V1__SPLIT_SHARD_REQUEST__INIT;
    Basalt__V1__SplitShardResponse *resp;
    uint64_t shard;

    if (parse_u64(a->positionals[0], 1, UINT64_MAX, &shard) != 0) {
        fprintf(stderr, "kvctl split: SHARD_ID must be a shard id (a number above 0), not '%s'\n",
                a->positionals[0]);
        return KVCTL_EXIT_USAGE;
    }
    req.shard_id = shard;
    if (a->positional_count > 1) {
        req.split_key.data = (uint8_t *)a->positionals[1];
        req.split_key.len = strlen(a->positionals[1]);
        if (req.split_key.len == 0) {
            fprintf(stderr, "kvctl split: KEY must not be empty (leave it out to split at the "
                            "middle)\n");
            return KVCTL_EXIT_USAGE;
        }
    }
    int rc = kvctl_admin(client, "split", "/basalt.v1.Admin/SplitShard", &req.base,
                         &basalt__v1__split_shard_response__descriptor, (ProtobufCMessage **)&resp);
    if (rc != KVCTL_EXIT_OK)
        return rc;
    if (resp->left == NULL || resp->left->descriptor == NULL || resp->right == NULL ||
        resp->right->descriptor == NULL) {
        fprintf(stderr, "kvctl split: the router's answer lacks the two shards\n");
        rc = KVCTL_EXIT_FAILED;
    } else if (a->output == KVCTL_OUTPUT_JSON) {
        rc = output_json(json_pack("{s:[o,o]}", "shards", kvctl_shard_json(resp->left),
                                   kvctl_shard_json(resp->right)))
                 ? KVCTL_EXIT_FAILED
                 : KVCTL_EXIT_OK;
    } else {
        kvctl_print_shard_header();
        kvctl_print_shard(resp->left);
        kvctl_print_shard(resp->right);
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

int kvctl_show_shard(const Basalt__V1__ShardInfo *shard, kvctl_output output) {
    if (output == KVCTL_OUTPUT_JSON)
        return output_json(json_pack("{s:o}", "shard", kvctl_shard_json(shard))) ? KVCTL_EXIT_FAILED
                                                                                 : KVCTL_EXIT_OK;
    kvctl_print_shard_header();
    kvctl_print_shard(shard);
    return KVCTL_EXIT_OK;
}

int kvctl_shard_command(basalt_client *client, const kvctl_args *a, const char *command,
                        const char *method, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc) {
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name(resp_desc, "shard");
    ProtobufCMessage *resp;
    int rc = kvctl_admin(client, command, method, req, resp_desc, &resp);

    if (rc != KVCTL_EXIT_OK)
        return rc;
    const Basalt__V1__ShardInfo *shard =
        field ? *(Basalt__V1__ShardInfo **)((char *)resp + field->offset) : NULL;
    if (shard == NULL || shard->descriptor == NULL) {
        fprintf(stderr, "kvctl %s: the router's answer lacks the shard\n", command);
        rc = KVCTL_EXIT_FAILED;
    } else {
        rc = kvctl_show_shard(shard, a->output);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

int kvctl_transfer_leader(basalt_client *client, const kvctl_args *a) {
    Basalt__V1__TransferLeaderRequest req = BASALT__V1__TRANSFER_LEADER_REQUEST__INIT;
    uint64_t shard, node;

    if (parse_u64(a->positionals[0], 1, UINT64_MAX, &shard) != 0 ||
        parse_u64(a->positionals[1], 1, UINT64_MAX, &node) != 0) {
        fprintf(stderr, "kvctl transfer-leader: SHARD_ID and NODE_ID are ids (numbers above 0)\n");
        return KVCTL_EXIT_USAGE;
    }
    req.shard_id = shard;
    req.node_id = node;
    return kvctl_shard_command(client, a, "transfer-leader", "/basalt.v1.Admin/TransferLeader",
                               &req.base, &basalt__v1__transfer_leader_response__descriptor);
}

int kvctl_shards(basalt_client *client, const kvctl_args *a) {
    Basalt__V1__ListShardsRequest req = BASALT__V1__LIST_SHARDS_REQUEST__INIT;
    Basalt__V1__ListShardsResponse *resp;
    int rc = kvctl_admin(client, "shards", "/basalt.v1.Admin/ListShards", &req.base,
                         &basalt__v1__list_shards_response__descriptor, (ProtobufCMessage **)&resp);
    if (rc != KVCTL_EXIT_OK)
        return rc;

    if (a->output == KVCTL_OUTPUT_JSON) {
        json_t *shards = json_array();
        for (size_t i = 0; i < resp->n_shards; i++)
            json_array_append_new(shards, kvctl_shard_json(resp->shards[i]));
        rc = output_json(json_pack("{s:o}", "shards", shards)) ? KVCTL_EXIT_FAILED : KVCTL_EXIT_OK;
    } else {
        kvctl_print_shard_header();
        for (size_t i = 0; i < resp->n_shards; i++)
            kvctl_print_shard(resp->shards[i]);
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}
