/* target: the database kvbench drives, behind three operations.
 *
 *   basalt://HOST:PORT[,HOST:PORT...]  Basalt's public KV API (routers, or one
 *                                      kvnode);
 *   etcd://HOST:PORT[,HOST:PORT...]    etcd's v3 KV API (Range and Put), an
 *                                      eventual read being a serializable
 *                                      Range.
 * A target holds `conns` channels, spread over its endpoints in turn; every
 * call names the channel it goes on. Calls are asynchronous (rpc_async): the
 * result comes to a callback on the pool's thread.
 */
#ifndef BASALT_TOOLS_KVBENCH_TARGET_H
#define BASALT_TOOLS_KVBENCH_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/rpc_async.h"

/* Endpoints and channels one target takes, at most. */
#define TARGET_ENDPOINTS_MAX 16
#define TARGET_CONNS_MAX     256

typedef enum {
    TARGET_BASALT,
    TARGET_ETCD,
} target_kind;

typedef struct target target;

/* What one call came to. */
typedef struct {
    grpc_status_code code;
    const char *message; /* the server's words when code is not OK */
    bool found;          /* reads: the key exists */
    uint32_t records;    /* scans: pairs returned */
} target_result;

typedef void (*target_cb)(void *ctx, const target_result *result);

/* The caller's handle for one call in flight; it lives in the caller's own
 * memory (one per logical client), so a call allocates nothing of ours. */
typedef struct {
    target *target;
    target_cb cb;
    void *ctx;
} target_call;

/* Parses "basalt://..." or "etcd://..." and opens `conns` channels. Returns
 * NULL with a reason in `why` for a malformed spec or out of memory. */
target *target_open(const char *spec, int conns, char *why, size_t why_size);
void target_close(target *t);

target_kind target_kind_of(const target *t);
const char *target_kind_name(target_kind kind);

/* Each returns 0 once the call is started (cb runs later, once), or an
 * error after which cb never runs. key and value are copied before return. */
int target_read(target_call *call, rpc_async_pool *pool, int conn, const uint8_t *key,
                size_t key_len, bool eventual, int64_t timeout_ms);
int target_write(target_call *call, rpc_async_pool *pool, int conn, const uint8_t *key,
                 size_t key_len, const uint8_t *value, size_t value_len, int64_t timeout_ms);
/* Up to `count` pairs from `start` on, in key order. */
int target_scan(target_call *call, rpc_async_pool *pool, int conn, const uint8_t *start,
                size_t start_len, uint32_t count, bool eventual, int64_t timeout_ms);

#endif
