/* rpc_stream: client-streaming gRPC calls that stay open, for sending many
 * messages to one peer without waiting for answers (Raft traffic between
 * nodes).
 *
 * A pool owns one completion queue and one thread that drives every stream
 * of the pool. rpc_stream_send never blocks: it queues the encoded message
 * and returns. At most RPC_STREAM_QUEUE_MAX messages wait per stream; past
 * that, and whenever the peer cannot be reached, messages are dropped (the
 * caller's protocol must tolerate loss, as Raft does). A broken stream is
 * opened again by the next send, at most once per RPC_STREAM_RETRY_MS.
 */
#ifndef BASALT_RUNTIME_RPC_STREAM_H
#define BASALT_RUNTIME_RPC_STREAM_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define RPC_STREAM_QUEUE_MAX 256
#define RPC_STREAM_RETRY_MS  200
#define RPC_STREAMS_MAX      64

typedef struct rpc_stream_pool rpc_stream_pool;
typedef struct rpc_stream rpc_stream;

/* A pool with its thread running; NULL when out of memory. */
rpc_stream_pool *rpc_stream_pool_create(void);

/* Cancels every stream, stops the thread and frees the pool and its streams. */
void rpc_stream_pool_destroy(rpc_stream_pool *pool);

/* A stream to `target` calling `method` ("/pkg.Service/Method"). Nothing is
 * connected until the first send. NULL when out of memory or the pool is full. */
rpc_stream *rpc_stream_open(rpc_stream_pool *pool, const char *target, const char *method);

/* Points the stream at another address: the call in progress is cancelled
 * (its queued messages are dropped) and the next send connects anew. */
int rpc_stream_retarget(rpc_stream *stream, const char *target);

/* Queues a message. Returns 0, or BS_ERR_RESOURCE_EXHAUSTED when it was
 * dropped (queue full), or BS_ERR_UNAVAILABLE (stream broken and not yet due
 * for a retry). */
int rpc_stream_send(rpc_stream *stream, const ProtobufCMessage *message);

/* Counters for tests and logs. */
typedef struct {
    uint64_t sent;
    uint64_t dropped;
    uint64_t opened;
} rpc_stream_stats;

rpc_stream_stats rpc_stream_get_stats(rpc_stream *stream);

#endif
