/* rpc_client: unary gRPC calls with deadlines over gRPC core's C API, taking
 * and returning protobuf-c messages.
 *
 * A channel is one HTTP/2 connection (re-established by gRPC as needed) to
 * one address. Calls on a channel may come from several threads at once.
 */
#ifndef BASALT_RUNTIME_RPC_CLIENT_H
#define BASALT_RUNTIME_RPC_CLIENT_H

#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#define RPC_STATUS_MESSAGE_BYTES 512

typedef struct rpc_channel rpc_channel;

/* What a call ended with: a gRPC status code and the server's message. */
typedef struct {
    grpc_status_code code;
    char message[RPC_STATUS_MESSAGE_BYTES];
} rpc_status;

/* The longest a channel waits between attempts to reconnect to a peer that
 * went away. gRPC's own default grows to two minutes, so a node restarted
 * after a crash would stay unreachable to its leader and to the router long
 * after it is back; a connection attempt per second to a dead peer is cheap. */
#define RPC_RECONNECT_BACKOFF_MAX_MS 1000

/* A gRPC channel to `target` with Basalt's settings (message size, reconnect
 * backoff); every channel the programs open is made here. */
grpc_channel *rpc_grpc_channel_create(const char *target);

/* Opens a channel to `target` ("127.0.0.1:7379"). Connecting happens on the
 * first call. Returns NULL when out of memory. */
rpc_channel *rpc_channel_open(const char *target);

/* gRPC's channel, for the other client layers of the runtime. */
grpc_channel *rpc_channel_grpc(rpc_channel *ch);

/* The address the channel was opened with. */
const char *rpc_channel_target(const rpc_channel *ch);

void rpc_channel_close(rpc_channel *ch);

/* Calls `method` ("/basalt.v1.KV/Get") with `request` and waits at most
 * timeout_ms for the answer. On OK, *response is a message of `response_desc`
 * to free with protobuf_c_message_free_unpacked, and 0 is returned. Otherwise
 * *response is NULL, `status` says what happened, and the result is
 * BS_ERR_UNAVAILABLE, BS_ERR_DEADLINE_EXCEEDED, BS_ERR_INVALID_ARGUMENT, ...
 * following the status code. `status` is always filled in. */
int rpc_unary(rpc_channel *ch, const char *method, const ProtobufCMessage *request,
              const ProtobufCMessageDescriptor *response_desc, int64_t timeout_ms,
              ProtobufCMessage **response, rpc_status *status);

/* A client-streaming call that sends with flow control: each send waits until
 * gRPC has taken the message, so a slow receiver slows the sender instead of
 * piling up memory. One thread at a time per call. */
typedef struct rpc_call_stream rpc_call_stream;

/* Starts a call of `method` that must finish within timeout_ms. NULL when
 * out of memory. */
rpc_call_stream *rpc_call_stream_open(rpc_channel *ch, const char *method, int64_t timeout_ms);

/* Sends one message. Returns 0, or an error once the call has broken (then
 * only rpc_call_stream_finish is useful, to learn why). */
int rpc_call_stream_send(rpc_call_stream *s, const ProtobufCMessage *message);

/* Cancels the call from any thread: a send blocked on flow control returns
 * an error. */
void rpc_call_stream_cancel(rpc_call_stream *s);

/* Closes the sending side and waits for the answer (rpc_call_stream_cancel
 * still works meanwhile). Returns and fills like rpc_unary. */
int rpc_call_stream_finish(rpc_call_stream *s, const ProtobufCMessageDescriptor *response_desc,
                           ProtobufCMessage **response, rpc_status *status);

/* Frees a finished call. */
void rpc_call_stream_free(rpc_call_stream *s);

/* Fills a status from gRPC's code and details (cut to fit). */
void rpc_status_set(rpc_status *status, grpc_status_code code, grpc_slice details);

/* The project error code for a gRPC status code. */
int rpc_status_to_err(grpc_status_code code);

/* "OK", "INVALID_ARGUMENT", ... as gRPC spells them. */
const char *rpc_status_name(grpc_status_code code);

#endif
