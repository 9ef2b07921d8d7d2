/* output: how kvctl prints results: raw bytes for people (table), or one JSON
 * object per command with keys and values in base64 (as etcdctl does). */
#ifndef BASALT_TOOLS_KVCTL_OUTPUT_H
#define BASALT_TOOLS_KVCTL_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "basalt/v1/kv.pb-c.h"

/* A JSON string holding the base64 of `len` bytes; NULL when out of memory. */
json_t *output_base64(const uint8_t *data, size_t len);

/* {"shard_id":..,"node_id":..,"applied_index":..}; zeros when info is NULL. */
json_t *output_read_info(const Basalt__V1__ReadInfo *info);

/* Prints `obj` compactly on one line of stdout and releases it. Returns 0, or
 * -1 when obj is NULL (out of memory) or printing failed. */
int output_json(json_t *obj);

/* Writes `len` raw bytes then `end` to stdout. */
void output_bytes(const uint8_t *data, size_t len, const char *end);

#endif
