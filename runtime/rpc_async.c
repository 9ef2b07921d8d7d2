/* rpc_async: unary calls on a completion queue driven by one thread. Each
 * call is one batch of the six unary ops; its struct is the tag. */
#include "runtime/rpc_async.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/alloc.h>

#include "runtime/error.h"
#include "runtime/rpc_codec.h"

struct rpc_async_pool {
    grpc_completion_queue *cq;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    uint64_t in_flight;
};

typedef struct {
    rpc_async_pool *pool;
    grpc_call *call;
    const char *method;
    const ProtobufCMessageDescriptor *response_desc;
    rpc_async_cb cb;
    void *ctx;
    grpc_byte_buffer *payload;
    grpc_byte_buffer *reply;
    grpc_metadata_array initial;
    grpc_metadata_array trailing;
    grpc_status_code code;
    grpc_slice details;
} rpc_async_call;

const char *rpc_trailer(const rpc_trailers *t, const char *key) {
    for (int i = 0; i < t->n; i++) {
        if (strcmp(t->key[i], key) == 0)
            return t->value[i];
    }
    return NULL;
}

static void rpc_copy_trailers(const grpc_metadata_array *md, rpc_trailers *t) {
    t->n = 0;
    for (size_t i = 0; i < md->count && t->n < RPC_ASYNC_TRAILERS_MAX; i++) {
        size_t kl = GRPC_SLICE_LENGTH(md->metadata[i].key);
        size_t vl = GRPC_SLICE_LENGTH(md->metadata[i].value);
        if (kl >= sizeof(t->key[0]) || vl >= sizeof(t->value[0]))
            continue;
        memcpy(t->key[t->n], GRPC_SLICE_START_PTR(md->metadata[i].key), kl);
        t->key[t->n][kl] = '\0';
        memcpy(t->value[t->n], GRPC_SLICE_START_PTR(md->metadata[i].value), vl);
        t->value[t->n][vl] = '\0';
        t->n++;
    }
}

static void rpc_async_finish(rpc_async_call *c) {
    rpc_status status;
    rpc_trailers trailers;
    ProtobufCMessage *response = NULL;
    int rc;

    rpc_status_set(&status, c->code, c->details);
    rpc_copy_trailers(&c->trailing, &trailers);
    rc = rpc_status_to_err(c->code);
    if (rc == BS_OK) {
        response = c->reply ? rpc_decode(c->reply, c->response_desc) : NULL;
        if (response == NULL) {
            status.code = GRPC_STATUS_INTERNAL;
            snprintf(status.message, sizeof(status.message), "%s: malformed response", c->method);
            rc = BS_ERR_CORRUPTION;
        }
    }
    c->cb(c->ctx, rc, response, &status, &trailers);

    if (c->reply)
        grpc_byte_buffer_destroy(c->reply);
    grpc_byte_buffer_destroy(c->payload);
    grpc_slice_unref(c->details);
    grpc_metadata_array_destroy(&c->initial);
    grpc_metadata_array_destroy(&c->trailing);
    grpc_call_unref(c->call);

    rpc_async_pool *pool = c->pool;
    free(c);
    pthread_mutex_lock(&pool->lock);
    if (--pool->in_flight == 0)
        pthread_cond_broadcast(&pool->idle);
    pthread_mutex_unlock(&pool->lock);
}

static void *rpc_async_main(void *arg) {
    rpc_async_pool *pool = arg;

    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(pool->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return NULL;
        if (ev.type == GRPC_OP_COMPLETE)
            rpc_async_finish(ev.tag);
    }
}

rpc_async_pool *rpc_async_pool_create(void) {
    rpc_async_pool *pool = calloc(1, sizeof(*pool));

    if (pool == NULL)
        return NULL;
    grpc_init();
    pool->cq = grpc_completion_queue_create_for_next(NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->idle, NULL);
    if (pthread_create(&pool->thread, NULL, rpc_async_main, pool) != 0) {
        grpc_completion_queue_shutdown(pool->cq);
        grpc_completion_queue_destroy(pool->cq);
        free(pool);
        grpc_shutdown();
        return NULL;
    }
    return pool;
}

void rpc_async_pool_destroy(rpc_async_pool *pool) {
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    while (pool->in_flight > 0)
        pthread_cond_wait(&pool->idle, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    grpc_completion_queue_shutdown(pool->cq);
    pthread_join(pool->thread, NULL);
    grpc_completion_queue_destroy(pool->cq);
    pthread_cond_destroy(&pool->idle);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
    grpc_shutdown();
}

int rpc_async_unary(rpc_async_pool *pool, rpc_channel *ch, const char *method,
                    const ProtobufCMessage *request,
                    const ProtobufCMessageDescriptor *response_desc, int64_t timeout_ms,
                    rpc_async_cb cb, void *ctx) {
    rpc_async_call *c = calloc(1, sizeof(*c));
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    grpc_op ops[6];

    if (c == NULL)
        return BS_ERR_NOMEM;
    c->pool = pool;
    c->method = method;
    c->response_desc = response_desc;
    c->cb = cb;
    c->ctx = ctx;
    c->payload = rpc_encode(request);
    c->details = grpc_empty_slice();
    c->code = GRPC_STATUS_UNKNOWN;
    grpc_metadata_array_init(&c->initial);
    grpc_metadata_array_init(&c->trailing);
    c->call =
        grpc_channel_create_call(rpc_channel_grpc(ch), NULL, GRPC_PROPAGATE_DEFAULTS, pool->cq,
                                 grpc_slice_from_static_string(method), NULL, deadline, NULL);

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->payload;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->reply;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->trailing;
    ops[5].data.recv_status_on_client.status = &c->code;
    ops[5].data.recv_status_on_client.status_details = &c->details;

    pthread_mutex_lock(&pool->lock);
    pool->in_flight++;
    pthread_mutex_unlock(&pool->lock);
    if (grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK) {
        c->code = GRPC_STATUS_INTERNAL;
        rpc_async_finish(c);
    }
    return 0;
}
