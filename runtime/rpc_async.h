/* rpc_async: unary gRPC calls that do not block the caller.
 *
 * A pool owns one completion queue and one thread; a call's callback runs on
 * that thread when the call ends (answered, failed, or its deadline passed).
 * Any thread may start calls. For a proxy (the router forwards each client
 * call this way) and for load generators.
 */
#ifndef BASALT_RUNTIME_RPC_ASYNC_H
#define BASALT_RUNTIME_RPC_ASYNC_H

#include <stdint.h>

#include "runtime/rpc_client.h"

/* Trailing metadata kept per answer, at most. */
#define RPC_ASYNC_TRAILERS_MAX  8
#define RPC_ASYNC_TRAILER_BYTES 256

typedef struct rpc_async_pool rpc_async_pool;

/* The trailing metadata of an answer: typed errors carry their details here. */
typedef struct {
    char key[RPC_ASYNC_TRAILERS_MAX][64];
    char value[RPC_ASYNC_TRAILERS_MAX][RPC_ASYNC_TRAILER_BYTES];
    int n;
} rpc_trailers;

/* Looks up a trailer; NULL when absent. */
const char *rpc_trailer(const rpc_trailers *t, const char *key);

/* Called once per call on the pool's thread. `response` (a message of the
 * call's response type, or NULL unless rc is 0) is the callback's to free
 * with protobuf_c_message_free_unpacked. */
typedef void (*rpc_async_cb)(void *ctx, int rc, ProtobufCMessage *response,
                             const rpc_status *status, const rpc_trailers *trailers);

rpc_async_pool *rpc_async_pool_create(void);

/* Stops the thread once every started call has ended, and frees the pool. */
void rpc_async_pool_destroy(rpc_async_pool *pool);

/* Starts a call. The request is encoded before this returns. Returns 0, or
 * an error (out of memory) after which cb is never called. */
int rpc_async_unary(rpc_async_pool *pool, rpc_channel *ch, const char *method,
                    const ProtobufCMessage *request,
                    const ProtobufCMessageDescriptor *response_desc, int64_t timeout_ms,
                    rpc_async_cb cb, void *ctx);

#endif
