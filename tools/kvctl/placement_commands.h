/* placement_commands: kvctl's commands that move replicas: move, node drain
 * and remove, schedule on|off|status. */
#ifndef BASALT_TOOLS_KVCTL_PLACEMENT_COMMANDS_H
#define BASALT_TOOLS_KVCTL_PLACEMENT_COMMANDS_H

#include "tools/kvctl/commands.h"

/* Moves a shard's replica between nodes and shows the shard. */
int kvctl_move(basalt_client *client, const kvctl_args *args);

/* node drain NODE_ID (waits until drained) or node remove NODE_ID. */
int kvctl_node(basalt_client *client, const kvctl_args *args);

/* schedule on, off or status. */
int kvctl_schedule(basalt_client *client, const kvctl_args *args);

#endif
