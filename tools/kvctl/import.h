/* import: kvctl import FILE. */
#ifndef BASALT_TOOLS_KVCTL_IMPORT_H
#define BASALT_TOOLS_KVCTL_IMPORT_H

#include "tools/kvctl/commands.h"

/* Loads key<TAB>value lines; exits 0 when every well-formed line was stored,
 * 3 when some failed (each reported, the first ones by line number). */
int kvctl_import(basalt_client *client, const kvctl_args *args);

#endif
