/* commands: what each kvctl command does, and its help. */
#ifndef BASALT_TOOLS_KVCTL_COMMANDS_H
#define BASALT_TOOLS_KVCTL_COMMANDS_H

#include <stdio.h>

#include "client/basalt_client.h"
#include "tools/kvctl/args.h"

/* Exit codes of kvctl. */
#define KVCTL_EXIT_OK        0
#define KVCTL_EXIT_NOT_FOUND 1 /* get: the key does not exist */
#define KVCTL_EXIT_USAGE     2 /* the command line is wrong */
#define KVCTL_EXIT_FAILED    3 /* the server refused or could not be reached */

typedef struct {
    const char *name;
    const char *synopsis; /* arguments and flags after the name */
    const char *summary;
    int args_min;
    int args_max;
    unsigned flags; /* KVCTL_FLAG_* the command accepts */
    int (*run)(basalt_client *client, const kvctl_args *args);
} kvctl_command;

/* The command called `name`, or NULL. */
const kvctl_command *kvctl_find_command(const char *name);

/* Prints the usage of kvctl as a whole, or of one command. */
void kvctl_print_usage(FILE *out);
void kvctl_print_command_usage(FILE *out, const kvctl_command *cmd);

#endif
