/* rpc_client: blocking unary calls, one pluck completion queue per call. */
#include "runtime/rpc_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "runtime/error.h"
#include "runtime/rpc_codec.h"

struct rpc_channel {
    char *target;
    grpc_channel *channel;
};

grpc_channel *rpc_grpc_channel_create(const char *target) {
    grpc_arg arg[3];
    grpc_channel_args args = {.num_args = 3, .args = arg};

    arg[0].type = GRPC_ARG_INTEGER;
    arg[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    arg[0].value.integer = RPC_MESSAGE_BYTES_MAX;
    arg[1].type = GRPC_ARG_INTEGER;
    arg[1].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
    arg[1].value.integer = RPC_RECONNECT_BACKOFF_MAX_MS;
    arg[2].type = GRPC_ARG_INTEGER;
    arg[2].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
    arg[2].value.integer = RPC_RECONNECT_BACKOFF_MAX_MS;
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *channel = grpc_channel_create(target, creds, &args);
    grpc_channel_credentials_release(creds);
    return channel;
}

rpc_channel *rpc_channel_open(const char *target) {
    rpc_channel *ch = calloc(1, sizeof(*ch));

    if (ch == NULL || (ch->target = strdup(target)) == NULL) {
        free(ch);
        return NULL;
    }
    grpc_init();
    ch->channel = rpc_grpc_channel_create(target);
    return ch;
}

grpc_channel *rpc_channel_grpc(rpc_channel *ch) {
    return ch->channel;
}

const char *rpc_channel_target(const rpc_channel *ch) {
    return ch->target;
}

void rpc_channel_close(rpc_channel *ch) {
    if (ch == NULL)
        return;
    grpc_channel_destroy(ch->channel);
    free(ch->target);
    free(ch);
    grpc_shutdown();
}

static const char *const rpc_status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *rpc_status_name(grpc_status_code code) {
    size_t n = sizeof(rpc_status_names) / sizeof(rpc_status_names[0]);
    return (size_t)code < n ? rpc_status_names[code] : "UNKNOWN";
}

int rpc_status_to_err(grpc_status_code code) {
    switch (code) {
    case GRPC_STATUS_OK:
        return BS_OK;
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_OUT_OF_RANGE:
        return BS_ERR_INVALID_ARGUMENT;
    case GRPC_STATUS_NOT_FOUND:
        return BS_ERR_NOT_FOUND;
    case GRPC_STATUS_UNAVAILABLE:
        return BS_ERR_UNAVAILABLE;
    case GRPC_STATUS_DEADLINE_EXCEEDED:
        return BS_ERR_DEADLINE_EXCEEDED;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        return BS_ERR_RESOURCE_EXHAUSTED;
    case GRPC_STATUS_FAILED_PRECONDITION:
    case GRPC_STATUS_ABORTED:
        return BS_ERR_FAILED_PRECONDITION;
    case GRPC_STATUS_DATA_LOSS:
        return BS_ERR_CORRUPTION;
    default:
        return BS_ERR_INTERNAL;
    }
}

void rpc_status_set(rpc_status *status, grpc_status_code code, grpc_slice details) {
    size_t n = GRPC_SLICE_LENGTH(details);

    status->code = code;
    if (n >= sizeof(status->message))
        n = sizeof(status->message) - 1;
    memcpy(status->message, GRPC_SLICE_START_PTR(details), n);
    status->message[n] = '\0';
}

/* Runs one batch of the six unary ops and waits for it. */
static int rpc_unary_batch(grpc_call *call, grpc_completion_queue *cq, grpc_byte_buffer *payload,
                           grpc_byte_buffer **reply, rpc_status *status) {
    grpc_metadata_array initial, trailing;
    grpc_slice details = grpc_empty_slice();
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    const char *error_string = NULL;
    grpc_op ops[6];

    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = payload;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = reply;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &error_string;

    grpc_call_error err = grpc_call_start_batch(call, ops, 6, call, NULL);
    if (err == GRPC_CALL_OK)
        grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    else
        details = grpc_slice_from_static_string("cannot start the call");

    rpc_status_set(status, code, details);
    grpc_slice_unref(details);
    gpr_free((void *)error_string);
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    return rpc_status_to_err(code);
}

struct rpc_call_stream {
    rpc_channel *channel;
    grpc_completion_queue *cq;
    grpc_call *call;
    const char *method;
    bool broken;
};

/* Runs one batch on the stream's call and waits for it. */
static bool rpc_call_stream_batch(rpc_call_stream *s, grpc_op *ops, size_t n) {
    if (grpc_call_start_batch(s->call, ops, n, s, NULL) != GRPC_CALL_OK)
        return false;
    grpc_event ev = grpc_completion_queue_pluck(s->cq, s, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

rpc_call_stream *rpc_call_stream_open(rpc_channel *ch, const char *method, int64_t timeout_ms) {
    rpc_call_stream *s = calloc(1, sizeof(*s));
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    grpc_op op;

    if (s == NULL)
        return NULL;
    s->channel = ch;
    s->method = method;
    s->cq = grpc_completion_queue_create_for_pluck(NULL);
    s->call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq,
                                       grpc_slice_from_static_string(method), NULL, deadline, NULL);
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    s->broken = !rpc_call_stream_batch(s, &op, 1);
    return s;
}

int rpc_call_stream_send(rpc_call_stream *s, const ProtobufCMessage *message) {
    grpc_op op;

    if (s->broken)
        return BS_ERR_UNAVAILABLE;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = rpc_encode(message);
    s->broken = !rpc_call_stream_batch(s, &op, 1);
    grpc_byte_buffer_destroy(op.data.send_message.send_message);
    return s->broken ? BS_ERR_UNAVAILABLE : 0;
}

void rpc_call_stream_cancel(rpc_call_stream *s) {
    grpc_call_cancel(s->call, NULL);
}

int rpc_call_stream_finish(rpc_call_stream *s, const ProtobufCMessageDescriptor *response_desc,
                           ProtobufCMessage **response, rpc_status *status) {
    grpc_metadata_array initial, trailing;
    grpc_slice details = grpc_empty_slice();
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_byte_buffer *reply = NULL;
    grpc_op ops[4];
    size_t n = 0;
    int rc;

    *response = NULL;
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    memset(ops, 0, sizeof(ops));
    if (!s->broken)
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &initial;
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &reply;
    ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[n].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[n].data.recv_status_on_client.status = &code;
    ops[n++].data.recv_status_on_client.status_details = &details;
    if (!rpc_call_stream_batch(s, ops, n) && code == GRPC_STATUS_OK)
        code = GRPC_STATUS_UNAVAILABLE;
    rpc_status_set(status, code, details);
    rc = rpc_status_to_err(code);
    if (rc == BS_OK) {
        *response = reply ? rpc_decode(reply, response_desc) : NULL;
        if (*response == NULL) {
            status->code = GRPC_STATUS_INTERNAL;
            snprintf(status->message, sizeof(status->message), "%s: malformed response", s->method);
            rc = BS_ERR_CORRUPTION;
        }
    }
    if (reply)
        grpc_byte_buffer_destroy(reply);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    return rc;
}

void rpc_call_stream_free(rpc_call_stream *s) {
    if (s == NULL)
        return;
    grpc_call_unref(s->call);
    grpc_completion_queue_shutdown(s->cq);
    grpc_completion_queue_destroy(s->cq);
    free(s);
}

int rpc_unary(rpc_channel *ch, const char *method, const ProtobufCMessage *request,
              const ProtobufCMessageDescriptor *response_desc, int64_t timeout_ms,
              ProtobufCMessage **response, rpc_status *status) {
    grpc_byte_buffer *payload = rpc_encode(request), *reply = NULL;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    grpc_slice method_slice = grpc_slice_from_static_string(method);
    int rc;

    *response = NULL;
    grpc_call *call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               method_slice, NULL, deadline, NULL);
    rc = rpc_unary_batch(call, cq, payload, &reply, status);
    if (rc == BS_OK) {
        *response = reply ? rpc_decode(reply, response_desc) : NULL;
        if (*response == NULL) {
            status->code = GRPC_STATUS_INTERNAL;
            snprintf(status->message, sizeof(status->message), "%s: malformed response from %s",
                     method, ch->target);
            rc = BS_ERR_CORRUPTION;
        }
    }

    if (reply)
        grpc_byte_buffer_destroy(reply);
    grpc_byte_buffer_destroy(payload);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
    return rc;
}
