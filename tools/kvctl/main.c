/* kvctl: Basalt's command line client. See `kvctl --help`. */
#include <stdio.h>
#include <string.h>

#include "client/basalt_client.h"
#include "tools/kvctl/args.h"
#include "tools/kvctl/commands.h"

static int kvctl_usage_error(const char *why, const kvctl_command *cmd) {
    fprintf(stderr, "kvctl: %s\n", why);
    if (cmd != NULL)
        fprintf(stderr, "run 'kvctl %s --help' for usage\n", cmd->name);
    else
        fprintf(stderr, "run 'kvctl --help' for usage\n");
    return KVCTL_EXIT_USAGE;
}

/* Checks the arguments against what the command takes. */
static int kvctl_check_command(const kvctl_command *cmd, const kvctl_args *a, char *why,
                               size_t why_size) {
    unsigned stray = a->flags_given & ~cmd->flags;

    if (a->positional_count < cmd->args_min || a->positional_count > cmd->args_max) {
        snprintf(why, why_size, "%s takes %s", cmd->name,
                 cmd->synopsis[0] ? cmd->synopsis : "no arguments");
        return -1;
    }
    if (stray != 0) {
        snprintf(why, why_size, "%s does not take %s", cmd->name, kvctl_flag_name(stray));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const kvctl_command *cmd = NULL;
    basalt_client *client;
    kvctl_args args;
    char why[256];
    int rc;

    if (kvctl_parse_args(argc, argv, &args, why, sizeof(why)) != 0)
        return kvctl_usage_error(why, NULL);
    if (args.command == NULL) {
        kvctl_print_usage(args.help ? stdout : stderr);
        return args.help ? KVCTL_EXIT_OK : KVCTL_EXIT_USAGE;
    }
    cmd = kvctl_find_command(args.command);
    if (cmd == NULL) {
        snprintf(why, sizeof(why), "unknown command '%s'", args.command);
        return kvctl_usage_error(why, NULL);
    }
    if (args.help) {
        kvctl_print_command_usage(stdout, cmd);
        return KVCTL_EXIT_OK;
    }
    if (kvctl_check_command(cmd, &args, why, sizeof(why)) != 0)
        return kvctl_usage_error(why, cmd);

    /* A split waits out leader elections (up to 10 s on the router): give it
     * the time unless told otherwise. */
    if (strcmp(cmd->name, "split") == 0 && !args.timeout_given)
        args.timeout_ms = KVCTL_SPLIT_TIMEOUT_MS;
    if (strcmp(cmd->name, "move") == 0 && !args.timeout_given)
        args.timeout_ms = KVCTL_MOVE_TIMEOUT_MS;
    if (strcmp(cmd->name, "node") == 0 && !args.timeout_given)
        args.timeout_ms = KVCTL_DRAIN_TIMEOUT_MS;
    client = basalt_client_open(args.endpoints, args.timeout_ms, why, sizeof(why));
    if (client == NULL)
        return kvctl_usage_error(why, NULL);
    rc = cmd->run(client, &args);
    basalt_client_close(client);
    return rc;
}
