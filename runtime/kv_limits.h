/* kv_limits: the limits of Basalt's public KV API and the checks that enforce
 * them. kvnode and the router check every request with these before acting,
 * so a bad request changes nothing. The same numbers are documented in
 * proto/basalt/v1/kv.proto and README.md.
 */
#ifndef BASALT_RUNTIME_KV_LIMITS_H
#define BASALT_RUNTIME_KV_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "basalt/v1/kv.pb-c.h"

/* A key is 1 to KV_KEY_BYTES_MAX bytes. */
#define KV_KEY_BYTES_MAX 4096
/* A value is 0 to KV_VALUE_BYTES_MAX bytes. */
#define KV_VALUE_BYTES_MAX (1024 * 1024)
/* Scan bounds may be one byte longer than a key, so that a page can always
 * continue from its last key followed by a 0x00 byte. */
#define KV_SCAN_BOUND_BYTES_MAX (KV_KEY_BYTES_MAX + 1)
/* A scan returns at most this many pairs per call. */
#define KV_SCAN_LIMIT_MAX 10000
/* A scan whose limit is 0 returns at most this many pairs. */
#define KV_SCAN_LIMIT_DEFAULT 1000
/* Room for a message explaining why a request was refused. */
#define KV_ERROR_MESSAGE_BYTES 256

/* Each check returns 0 when the request is valid, or BS_ERR_INVALID_ARGUMENT
 * with a message for the caller written into msg (msg_size bytes). */
int kv_check_put(const Basalt__V1__PutRequest *req, char *msg, size_t msg_size);
int kv_check_get(const Basalt__V1__GetRequest *req, char *msg, size_t msg_size);
int kv_check_delete(const Basalt__V1__DeleteRequest *req, char *msg, size_t msg_size);

/* Also resolves the limit: *limit_out is req->limit, or the default for 0. */
int kv_check_scan(const Basalt__V1__ScanRequest *req, uint32_t *limit_out, char *msg,
                  size_t msg_size);

/* CONSISTENCY_UNSPECIFIED becomes CONSISTENCY_STRONG; other values pass. */
Basalt__V1__Consistency kv_effective_consistency(Basalt__V1__Consistency c);

#endif
