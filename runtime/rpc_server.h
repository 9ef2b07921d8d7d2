/* rpc_server: a gRPC server on gRPC core's C API whose methods take and return
 * protobuf-c messages.
 *
 * A program creates a server, adds its methods (full paths such as
 * "/basalt.v1.KV/Put" with the request's descriptor and a handler), and starts
 * it. A few threads poll one completion queue; each incoming call is decoded
 * and handed to its method's handler on one of them. A request that does not
 * decode gets INVALID_ARGUMENT without reaching the handler; a method nobody
 * added gets UNIMPLEMENTED. Every server also answers the standard
 * grpc.health.v1.Health/Check for itself and for each service it has methods of.
 *
 * Handlers may answer at once or later from any thread (for work that waits on
 * Raft): either way they call exactly one of rpc_call_reply or rpc_call_fail.
 */
#ifndef BASALT_RUNTIME_RPC_SERVER_H
#define BASALT_RUNTIME_RPC_SERVER_H

#include <stdbool.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

/* Threads polling the completion queue when the caller asks for 0. */
#define RPC_SERVER_THREADS_DEFAULT 2
/* Upper bound on polling threads. */
#define RPC_SERVER_THREADS_MAX 16
/* Upper bound on methods per server (health included). */
#define RPC_SERVER_METHODS_MAX 64

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

/* Handles one call. `request` belongs to the call and stays valid until the
 * handler answers with rpc_call_reply or rpc_call_fail, which free it. */
typedef void (*rpc_handler_cb)(rpc_call *call, const ProtobufCMessage *request, void *ctx);

/* A server that will listen on `listen_addr` ("127.0.0.1:7379"; port 0 picks
 * a free one) with `threads` polling threads (0 for the default). Returns NULL
 * when out of memory. */
rpc_server *rpc_server_create(const char *listen_addr, int threads);

/* Adds a method before the server starts. `path` is copied. Returns 0, or
 * BS_ERR_INVALID_ARGUMENT for a malformed path, a duplicate, or one too many. */
int rpc_server_add_method(rpc_server *server, const char *path,
                          const ProtobufCMessageDescriptor *request_desc, rpc_handler_cb handler,
                          void *ctx);

/* Called for each message of a client stream, on a polling thread, in
 * order. `message` is freed when the callback returns. *state starts NULL for
 * each call and is the handler's to use across the call's messages. Returning
 * non-zero ends the call with INVALID_ARGUMENT. */
typedef int (*rpc_stream_message_cb)(const ProtobufCMessage *message, void *ctx, void **state);

/* Called once when a stream ends: `complete` when the client closed its side
 * normally, false when the call broke or a message was refused. */
typedef void (*rpc_stream_end_cb)(void *ctx, void *state, bool complete);

/* Adds a client-streaming method: each message that arrives goes to
 * on_message; when the client closes its side, on_end runs (if given) and the
 * call ends with OK and `final_response` (which must outlive the server). A
 * message that does not decode ends the call with INVALID_ARGUMENT. */
int rpc_server_add_stream_method(rpc_server *server, const char *path,
                                 const ProtobufCMessageDescriptor *message_desc,
                                 rpc_stream_message_cb on_message, rpc_stream_end_cb on_end,
                                 void *ctx, const ProtobufCMessage *final_response);

/* Binds and starts serving. Returns 0, or BS_ERR_UNAVAILABLE when the address
 * cannot be bound (in use, bad host). */
int rpc_server_start(rpc_server *server);

/* The bound port, after a successful start. */
int rpc_server_port(const rpc_server *server);

/* Stops accepting calls, cancels those in flight, and joins the threads.
 * Handlers holding calls must have answered them before this returns, so hosts
 * with asynchronous handlers stop their own work first. */
void rpc_server_stop(rpc_server *server);

/* Frees a stopped (or never started) server. */
void rpc_server_destroy(rpc_server *server);

/* Answers the call with OK and `response`, and frees the call. */
void rpc_call_reply(rpc_call *call, const ProtobufCMessage *response);

/* Answers the call with a non-OK status and a message, and frees the call. */
void rpc_call_fail(rpc_call *call, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Trailing metadata sent with the call's answer (at most
 * RPC_CALL_TRAILERS_MAX pairs; key and value are copied). Typed errors carry
 * their details this way, e.g. the leader to retry with. */
#define RPC_CALL_TRAILERS_MAX 4
void rpc_call_add_trailer(rpc_call *call, const char *key, const char *value);

/* The deadline the client set (infinite when it set none). */
gpr_timespec rpc_call_deadline(const rpc_call *call);

#endif
