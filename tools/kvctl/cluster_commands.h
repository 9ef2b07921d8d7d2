/* cluster_commands: kvctl's views of the cluster, from the router. */
#ifndef BASALT_TOOLS_KVCTL_CLUSTER_COMMANDS_H
#define BASALT_TOOLS_KVCTL_CLUSTER_COMMANDS_H

#include "basalt/v1/admin.pb-c.h"
#include "tools/kvctl/commands.h"

/* Calls an Admin method of the router; on failure says why on stderr and
 * returns KVCTL_EXIT_FAILED. */
int kvctl_admin(basalt_client *client, const char *command, const char *method,
                const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
                ProtobufCMessage **resp);

/* Nodes (id, address, zone, up/down, replicas, leaders) and the shard count. */
/* "active", "draining" or "drained". */
const char *kvctl_admin_name(Basalt__V1__NodeAdminState s);

int kvctl_status(basalt_client *client, const kvctl_args *args);

/* One row per shard: id, range, epoch, leader node, replicas with roles. */
int kvctl_shards(basalt_client *client, const kvctl_args *args);

/* Splits a shard (at KEY, or at its middle by size) and shows both halves. */
int kvctl_split(basalt_client *client, const kvctl_args *args);

/* Prints one shard as kvctl shards does (or as JSON). */
int kvctl_show_shard(const Basalt__V1__ShardInfo *shard, kvctl_output output);

/* Calls an Admin method whose response has a `shard` field and shows it. */
int kvctl_shard_command(basalt_client *client, const kvctl_args *a, const char *command,
                        const char *method, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc);

/* Hands a shard's leadership to a node and shows the shard. */
int kvctl_transfer_leader(basalt_client *client, const kvctl_args *args);

#endif
