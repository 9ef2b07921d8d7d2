/* rpc_server: gRPC core server with protobuf-c messages.
 *
 * Life of a call:
 *   1. rpc_server_arm() asks gRPC for the next call of a method, with an
 *      rpc_call as the tag (kind RPC_TAG_NEW_CALL).
 *   2. The tag comes back on the completion queue: the poller re-arms the
 *      method at once (so other calls of it are accepted meanwhile), decodes
 *      the payload and runs the handler.
 *   3. The handler answers with rpc_call_reply/rpc_call_fail, which start one
 *      batch (metadata, message, status, close) with the same rpc_call as the
 *      tag, now of kind RPC_TAG_CALL_DONE.
 *   4. That batch completes and rpc_call_free() releases everything.
 * Calls for methods nobody added arrive through grpc_server_request_call
 * (RPC_TAG_UNKNOWN_CALL) and are answered UNIMPLEMENTED.
 *
 * A client-streaming call instead reads one message at a time (kind
 * RPC_TAG_STREAM_RECV), handing each to the method's callback, until the
 * client closes its side; then step 3 answers it.
 */
#include "runtime/rpc_server.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "grpc/health/v1/health.pb-c.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/rpc_codec.h"

/* Outstanding requests per method: how many calls gRPC can hand us at once
 * before a poller re-arms. */
#define RPC_PENDING_CALLS_PER_METHOD 4
#define RPC_STATUS_MESSAGE_BYTES_MAX 512
#define RPC_HEALTH_CHECK_PATH        "/grpc.health.v1.Health/Check"

typedef enum {
    RPC_TAG_NEW_CALL,
    RPC_TAG_CALL_DONE,
    RPC_TAG_UNKNOWN_CALL,
    RPC_TAG_STREAM_RECV,
    RPC_TAG_SHUTDOWN,
} rpc_tag_kind;

typedef struct {
    char *path;
    const ProtobufCMessageDescriptor *request_desc;
    rpc_handler_cb handler;
    rpc_stream_message_cb on_message;       /* streaming methods only */
    rpc_stream_end_cb on_end;               /* streaming methods only; may be NULL */
    const ProtobufCMessage *final_response; /* streaming methods only */
    void *ctx;
    void *registration; /* gRPC's handle from grpc_server_register_method */
} rpc_method;

struct rpc_call {
    rpc_tag_kind kind; /* first, so any tag can be read as an rpc_tag_kind */
    rpc_server *server;
    rpc_method *method; /* NULL for an unknown method */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array request_metadata;
    grpc_byte_buffer *request_payload;
    grpc_call_details details; /* only for unknown methods */
    ProtobufCMessage *request;
    grpc_byte_buffer *response_payload;
    grpc_slice status_details;
    int cancelled;
    grpc_metadata trailers[RPC_CALL_TRAILERS_MAX];
    size_t n_trailers;
    void *stream_state; /* the stream handler's, across messages */
};

struct rpc_server {
    char *listen_addr;
    int thread_count;
    pthread_t threads[RPC_SERVER_THREADS_MAX];
    int port;
    rpc_method methods[RPC_SERVER_METHODS_MAX];
    int method_count;
    grpc_server *server;
    grpc_completion_queue *cq;
    rpc_tag_kind shutdown_tag;
    bool started;
    bool stopping;
    bool shutdown_done;
    pthread_mutex_t lock;
    pthread_cond_t shutdown_cond;
};

static void rpc_health_check(rpc_call *call, const ProtobufCMessage *request, void *ctx);

/* ---- creation and methods ---- */

rpc_server *rpc_server_create(const char *listen_addr, int threads) {
    rpc_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->listen_addr = strdup(listen_addr);
    if (s->listen_addr == NULL) {
        free(s);
        return NULL;
    }
    if (threads <= 0)
        threads = RPC_SERVER_THREADS_DEFAULT;
    s->thread_count = threads > RPC_SERVER_THREADS_MAX ? RPC_SERVER_THREADS_MAX : threads;
    s->shutdown_tag = RPC_TAG_SHUTDOWN;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->shutdown_cond, NULL);
    grpc_init();

    /* Every server answers health checks; add_method cannot fail on an empty
     * server with a well-formed path. */
    rpc_server_add_method(s, RPC_HEALTH_CHECK_PATH,
                          &grpc__health__v1__health_check_request__descriptor, rpc_health_check, s);
    return s;
}

/* A path is "/package.Service/Method": a leading slash and one more slash. */
static bool rpc_path_is_valid(const char *path) {
    const char *second = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    return second != NULL && second > path + 1 && second[1] != '\0' &&
           strchr(second + 1, '/') == NULL;
}

static int rpc_server_add(rpc_server *s, const char *path,
                          const ProtobufCMessageDescriptor *request_desc, rpc_method **out) {
    if (s->started || !rpc_path_is_valid(path) || s->method_count == RPC_SERVER_METHODS_MAX)
        return BS_ERR_INVALID_ARGUMENT;
    for (int i = 0; i < s->method_count; i++) {
        if (strcmp(s->methods[i].path, path) == 0)
            return BS_ERR_INVALID_ARGUMENT;
    }

    rpc_method *m = &s->methods[s->method_count];
    memset(m, 0, sizeof(*m));
    m->path = strdup(path);
    if (m->path == NULL)
        return BS_ERR_NOMEM;
    m->request_desc = request_desc;
    s->method_count++;
    *out = m;
    return 0;
}

int rpc_server_add_method(rpc_server *s, const char *path,
                          const ProtobufCMessageDescriptor *request_desc, rpc_handler_cb handler,
                          void *ctx) {
    rpc_method *m;
    int rc = rpc_server_add(s, path, request_desc, &m);

    if (rc == 0) {
        m->handler = handler;
        m->ctx = ctx;
    }
    return rc;
}

int rpc_server_add_stream_method(rpc_server *s, const char *path,
                                 const ProtobufCMessageDescriptor *message_desc,
                                 rpc_stream_message_cb on_message, rpc_stream_end_cb on_end,
                                 void *ctx, const ProtobufCMessage *final_response) {
    rpc_method *m;
    int rc = rpc_server_add(s, path, message_desc, &m);

    if (rc == 0) {
        m->on_message = on_message;
        m->on_end = on_end;
        m->final_response = final_response;
        m->ctx = ctx;
    }
    return rc;
}

/* ---- arming: asking gRPC for the next call ---- */

static rpc_call *rpc_call_new(rpc_server *s, rpc_method *m) {
    rpc_call *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->kind = m ? RPC_TAG_NEW_CALL : RPC_TAG_UNKNOWN_CALL;
    c->server = s;
    c->method = m;
    c->status_details = grpc_empty_slice();
    grpc_metadata_array_init(&c->request_metadata);
    grpc_call_details_init(&c->details);
    return c;
}

static void rpc_call_free(rpc_call *c) {
    if (c->request)
        protobuf_c_message_free_unpacked(c->request, NULL);
    if (c->request_payload)
        grpc_byte_buffer_destroy(c->request_payload);
    if (c->response_payload)
        grpc_byte_buffer_destroy(c->response_payload);
    grpc_slice_unref(c->status_details);
    for (size_t i = 0; i < c->n_trailers; i++) {
        grpc_slice_unref(c->trailers[i].key);
        grpc_slice_unref(c->trailers[i].value);
    }
    grpc_metadata_array_destroy(&c->request_metadata);
    grpc_call_details_destroy(&c->details);
    if (c->call)
        grpc_call_unref(c->call);
    free(c);
}

/* Asks gRPC for one more call of method m (or of any unknown method, m NULL).
 * Failing here only means fewer calls accepted in parallel, unless it is the
 * last outstanding request, which a log line makes visible. */
static void rpc_server_arm(rpc_server *s, rpc_method *m) {
    rpc_call *c = rpc_call_new(s, m);
    grpc_call_error err;

    if (c == NULL) {
        log_error("cannot accept calls of %s: out of memory", m ? m->path : "unknown methods");
        return;
    }
    if (m != NULL)
        err = grpc_server_request_registered_call(
            s->server, m->registration, &c->call, &c->deadline, &c->request_metadata,
            m->on_message ? NULL : &c->request_payload, s->cq, s->cq, c);
    else
        err = grpc_server_request_call(s->server, &c->call, &c->details, &c->request_metadata,
                                       s->cq, s->cq, c);
    if (err != GRPC_CALL_OK) {
        /* After shutdown began gRPC refuses new requests; nothing is lost. */
        rpc_call_free(c);
    }
}

/* ---- answering ---- */

static void rpc_call_finish(rpc_call *c, grpc_status_code code, const char *message) {
    grpc_op ops[4];
    size_t n = 0;

    memset(ops, 0, sizeof(ops));
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->response_payload != NULL) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->response_payload;
    }
    c->status_details = grpc_slice_from_copied_string(message);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = c->n_trailers;
    ops[n].data.send_status_from_server.trailing_metadata = c->trailers;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = &c->status_details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;

    c->kind = RPC_TAG_CALL_DONE;
    grpc_call_error err = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (err != GRPC_CALL_OK) {
        log_error("cannot answer a call of %s: grpc error %d",
                  c->method ? c->method->path : "an unknown method", (int)err);
        rpc_call_free(c);
    }
}

void rpc_call_reply(rpc_call *c, const ProtobufCMessage *response) {
    c->response_payload = rpc_encode(response);
    if (c->response_payload == NULL) {
        rpc_call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "server out of memory");
        return;
    }
    rpc_call_finish(c, GRPC_STATUS_OK, "");
}

void rpc_call_fail(rpc_call *c, grpc_status_code code, const char *fmt, ...) {
    char message[RPC_STATUS_MESSAGE_BYTES_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    rpc_call_finish(c, code, message);
}

void rpc_call_add_trailer(rpc_call *c, const char *key, const char *value) {
    if (c->n_trailers == RPC_CALL_TRAILERS_MAX)
        return;
    c->trailers[c->n_trailers].key = grpc_slice_from_copied_string(key);
    c->trailers[c->n_trailers].value = grpc_slice_from_copied_string(value);
    c->n_trailers++;
}

gpr_timespec rpc_call_deadline(const rpc_call *c) {
    return c->deadline;
}

/* ---- the pollers ---- */

/* Asks for the next message of a client stream. */
static void rpc_stream_recv_next(rpc_call *c) {
    grpc_op op;

    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->request_payload;
    c->kind = RPC_TAG_STREAM_RECV;
    if (grpc_call_start_batch(c->call, &op, 1, c, NULL) != GRPC_CALL_OK)
        rpc_call_fail(c, GRPC_STATUS_INTERNAL, "%s: cannot read the stream", c->method->path);
}

static void rpc_stream_end(rpc_call *c, bool complete) {
    if (c->method->on_end != NULL)
        c->method->on_end(c->method->ctx, c->stream_state, complete);
    c->stream_state = NULL;
}

static void rpc_on_stream_message(rpc_call *c, bool success) {
    rpc_method *m = c->method;

    if (!success || c->request_payload == NULL) {
        /* The client closed its side (or the call broke): answer and end. */
        rpc_stream_end(c, success);
        rpc_call_reply(c, m->final_response);
        return;
    }
    ProtobufCMessage *msg = rpc_decode(c->request_payload, m->request_desc);
    grpc_byte_buffer_destroy(c->request_payload);
    c->request_payload = NULL;
    if (msg == NULL || m->on_message(msg, m->ctx, &c->stream_state) != 0) {
        if (msg != NULL)
            protobuf_c_message_free_unpacked(msg, NULL);
        rpc_stream_end(c, false);
        rpc_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s: stream message refused (expected %s)",
                      m->path, m->request_desc->name);
        return;
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    rpc_stream_recv_next(c);
}

static void rpc_on_new_call(rpc_server *s, rpc_call *c) {
    rpc_method *m = c->method;

    rpc_server_arm(s, m);
    if (m->on_message != NULL) {
        rpc_stream_recv_next(c);
        return;
    }
    if (c->request_payload == NULL) {
        rpc_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s: the request carried no message",
                      m->path);
        return;
    }
    c->request = rpc_decode(c->request_payload, m->request_desc);
    grpc_byte_buffer_destroy(c->request_payload);
    c->request_payload = NULL;
    if (c->request == NULL) {
        rpc_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT,
                      "%s: malformed request message (expected %s)", m->path,
                      m->request_desc->name);
        return;
    }
    m->handler(c, c->request, m->ctx);
}

static void rpc_on_unknown_call(rpc_server *s, rpc_call *c) {
    char *method = grpc_slice_to_c_string(c->details.method);

    rpc_server_arm(s, NULL);
    log_debug("call of unknown method %s", method);
    rpc_call_fail(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method %s", method);
    gpr_free(method);
}

static void rpc_on_event(rpc_server *s, void *tag, bool success) {
    rpc_tag_kind kind = *(rpc_tag_kind *)tag;

    if (kind == RPC_TAG_SHUTDOWN) {
        pthread_mutex_lock(&s->lock);
        s->shutdown_done = true;
        pthread_cond_broadcast(&s->shutdown_cond);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    rpc_call *c = tag;
    if (kind == RPC_TAG_STREAM_RECV) {
        rpc_on_stream_message(c, success);
    } else if (kind == RPC_TAG_CALL_DONE || !success) {
        /* A finished call, or a request gRPC gave back at shutdown. */
        rpc_call_free(c);
    } else if (kind == RPC_TAG_NEW_CALL) {
        rpc_on_new_call(s, c);
    } else {
        rpc_on_unknown_call(s, c);
    }
}

static void *rpc_poll_main(void *arg) {
    rpc_server *s = arg;

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE)
            rpc_on_event(s, ev.tag, ev.success != 0);
    }
    return NULL;
}

/* ---- start and stop ---- */

static int rpc_server_bind(rpc_server *s) {
    grpc_arg args[2];
    grpc_channel_args channel_args = {.num_args = 2, .args = args};

    /* Without this gRPC sets SO_REUSEPORT and a second server would silently
     * share the port instead of failing to start. */
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[0].value.integer = 0;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[1].value.integer = RPC_MESSAGE_BYTES_MAX;

    s->server = grpc_server_create(&channel_args, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    for (int i = 0; i < s->method_count; i++) {
        grpc_server_register_method_payload_handling payload =
            s->methods[i].on_message ? GRPC_SRM_PAYLOAD_NONE
                                     : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER;
        s->methods[i].registration =
            grpc_server_register_method(s->server, s->methods[i].path, NULL, payload, 0);
    }

    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    s->port = grpc_server_add_http2_port(s->server, s->listen_addr, creds);
    grpc_server_credentials_release(creds);
    if (s->port == 0) {
        log_error("cannot listen on %s: address in use or not valid", s->listen_addr);
        return BS_ERR_UNAVAILABLE;
    }
    return 0;
}

int rpc_server_start(rpc_server *s) {
    int rc = rpc_server_bind(s);
    if (rc != 0)
        return rc;

    grpc_server_start(s->server);
    s->started = true;
    for (int i = 0; i < s->method_count; i++) {
        for (int k = 0; k < RPC_PENDING_CALLS_PER_METHOD; k++)
            rpc_server_arm(s, &s->methods[i]);
    }
    rpc_server_arm(s, NULL);

    for (int i = 0; i < s->thread_count; i++) {
        if (pthread_create(&s->threads[i], NULL, rpc_poll_main, s) != 0) {
            log_error("cannot start rpc thread %d of %d", i + 1, s->thread_count);
            s->thread_count = i;
            rpc_server_stop(s);
            return BS_ERR_NOMEM;
        }
    }
    return 0;
}

int rpc_server_port(const rpc_server *s) {
    return s->port;
}

void rpc_server_stop(rpc_server *s) {
    if (!s->started || s->stopping)
        return;
    s->stopping = true;

    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
    grpc_server_cancel_all_calls(s->server);
    pthread_mutex_lock(&s->lock);
    while (!s->shutdown_done && s->thread_count > 0)
        pthread_cond_wait(&s->shutdown_cond, &s->lock);
    pthread_mutex_unlock(&s->lock);

    grpc_completion_queue_shutdown(s->cq);
    for (int i = 0; i < s->thread_count; i++)
        pthread_join(s->threads[i], NULL);
}

void rpc_server_destroy(rpc_server *s) {
    if (s == NULL)
        return;
    if (s->server != NULL) {
        if (!s->started) {
            /* Bound but never started: gRPC still wants the shutdown dance. */
            grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
            grpc_completion_queue_shutdown(s->cq);
            while (
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
                GRPC_QUEUE_SHUTDOWN) {
            }
        }
        grpc_server_destroy(s->server);
        grpc_completion_queue_destroy(s->cq);
    }
    for (int i = 0; i < s->method_count; i++)
        free(s->methods[i].path);
    pthread_cond_destroy(&s->shutdown_cond);
    pthread_mutex_destroy(&s->lock);
    free(s->listen_addr);
    free(s);
    grpc_shutdown();
}

/* ---- grpc.health.v1.Health/Check ---- */

/* True when `service` names a service of one of the server's methods: the
 * part of "/pkg.Service/Method" between the slashes. */
static bool rpc_server_has_service(const rpc_server *s, const char *service) {
    size_t len = strlen(service);
    for (int i = 0; i < s->method_count; i++) {
        const char *p = s->methods[i].path + 1;
        if (strncmp(p, service, len) == 0 && p[len] == '/')
            return true;
    }
    return false;
}

static void rpc_health_check(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)request;
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    rpc_server *s = ctx;

    /* The empty name asks about the server as a whole. */
    if (req->service[0] != '\0' && !rpc_server_has_service(s, req->service)) {
        rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "unknown service %s", req->service);
        return;
    }
    resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    rpc_call_reply(call, &resp.base);
}
