/* rpc_stream: long-lived client streams on gRPC core.
 *
 * Each stream is in one of three states:
 *   IDLE     no call; the next send opens one (unless a retry is not due)
 *   OPEN     a call is up: SEND_INITIAL_METADATA went with the first batch,
 *            RECV_STATUS_ON_CLIENT waits for the call's end, and at most one
 *            SEND_MESSAGE is in flight, the rest queued
 *   (ending) the status arrived: the call is dropped with its queue, and the
 *            stream is IDLE again
 * Tags are small structs naming the stream and the operation; a send's tag
 * also owns the message in flight, so a send that completes after its call
 * ended still frees exactly its own buffer. The pool's thread handles
 * completions; senders take the stream's lock.
 */
#include "runtime/rpc_stream.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/support/alloc.h>

#include "runtime/error.h"
#include "runtime/rpc_client.h"
#include "runtime/log.h"
#include "runtime/rpc_codec.h"

typedef enum {
    RPC_STREAM_TAG_SEND,
    RPC_STREAM_TAG_STATUS,
    RPC_STREAM_TAG_START
} rpc_stream_tag_kind;

typedef struct {
    rpc_stream_tag_kind kind;
    rpc_stream *stream;
    uint64_t generation;      /* which call of the stream this tag belongs to */
    grpc_byte_buffer *buffer; /* sends only: the message in flight, freed here */
} rpc_stream_tag;

struct rpc_stream {
    rpc_stream_pool *pool;
    char *target;
    char *method;
    grpc_channel *channel;
    pthread_mutex_t lock;
    pthread_cond_t ended; /* signalled when a call ends */
    grpc_call *call;      /* NULL when idle */
    uint64_t generation;
    uint64_t retry_after_ms;
    bool sending;
    grpc_byte_buffer *queue[RPC_STREAM_QUEUE_MAX];
    uint32_t queue_start;
    uint32_t queue_count;
    /* The ops' out-parameters, valid while the call is up. */
    grpc_status_code status;
    grpc_slice status_details;
    grpc_metadata_array trailing;
    rpc_stream_tag status_tag, start_tag;
    rpc_stream_stats stats;
};

struct rpc_stream_pool {
    grpc_completion_queue *cq;
    pthread_t thread;
    rpc_stream *streams[RPC_STREAMS_MAX];
    int n_streams;
    pthread_mutex_t lock;
};

static uint64_t rpc_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the queue (stream lock held) ---- */

static void rpc_stream_drop_queue(rpc_stream *s) {
    while (s->queue_count > 0) {
        grpc_byte_buffer_destroy(s->queue[s->queue_start]);
        s->queue_start = (s->queue_start + 1) % RPC_STREAM_QUEUE_MAX;
        s->queue_count--;
        s->stats.dropped++;
    }
}

/* Starts sending the queue's head if nothing is in flight. */
static void rpc_stream_pump(rpc_stream *s) {
    rpc_stream_tag *tag;
    grpc_op op;

    if (s->call == NULL || s->sending || s->queue_count == 0)
        return;
    tag = malloc(sizeof(*tag));
    if (tag == NULL)
        return; /* tried again on the next send */
    *tag = (rpc_stream_tag){RPC_STREAM_TAG_SEND, s, s->generation, s->queue[s->queue_start]};
    s->queue_start = (s->queue_start + 1) % RPC_STREAM_QUEUE_MAX;
    s->queue_count--;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = tag->buffer;
    if (grpc_call_start_batch(s->call, &op, 1, tag, NULL) == GRPC_CALL_OK) {
        s->sending = true;
    } else {
        grpc_byte_buffer_destroy(tag->buffer);
        free(tag);
        s->stats.dropped++;
    }
}

/* ---- opening and ending calls (stream lock held) ---- */

static bool rpc_stream_start_call(rpc_stream *s) {
    grpc_op ops[2];

    s->call = grpc_channel_create_call(s->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->pool->cq,
                                       grpc_slice_from_static_string(s->method), NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (s->call == NULL)
        return false;
    s->generation++;
    s->stats.opened++;
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    s->start_tag = (rpc_stream_tag){RPC_STREAM_TAG_START, s, s->generation, NULL};
    grpc_call_start_batch(s->call, ops, 1, &s->start_tag, NULL);

    grpc_metadata_array_init(&s->trailing);
    s->status_details = grpc_empty_slice();
    ops[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[1].data.recv_status_on_client.trailing_metadata = &s->trailing;
    ops[1].data.recv_status_on_client.status = &s->status;
    ops[1].data.recv_status_on_client.status_details = &s->status_details;
    s->status_tag = (rpc_stream_tag){RPC_STREAM_TAG_STATUS, s, s->generation, NULL};
    grpc_call_start_batch(s->call, &ops[1], 1, &s->status_tag, NULL);
    return true;
}

static void rpc_stream_end_call(rpc_stream *s) {
    char *details = grpc_slice_to_c_string(s->status_details);

    log_debug("stream to %s ended: status %d %s", s->target, (int)s->status, details);
    gpr_free(details);
    grpc_slice_unref(s->status_details);
    grpc_metadata_array_destroy(&s->trailing);
    grpc_call_unref(s->call);
    s->call = NULL;
    s->sending = false;
    s->retry_after_ms = rpc_now_ms() + RPC_STREAM_RETRY_MS;
    rpc_stream_drop_queue(s);
    pthread_cond_broadcast(&s->ended);
}

/* ---- the pool's thread ---- */

static void rpc_stream_on_send_done(rpc_stream *s, rpc_stream_tag *tag, bool success) {
    grpc_byte_buffer_destroy(tag->buffer);
    if (tag->generation != s->generation || s->call == NULL) {
        s->stats.dropped += success ? 0 : 1;
        return; /* a send of a call that has ended since */
    }
    s->sending = false;
    if (success) {
        s->stats.sent++;
        rpc_stream_pump(s);
    } else {
        /* The call is breaking; its status will end it. */
        s->stats.dropped++;
        grpc_call_cancel(s->call, NULL);
    }
}

static void rpc_stream_on_event(rpc_stream_tag *tag, bool success) {
    rpc_stream *s = tag->stream;

    pthread_mutex_lock(&s->lock);
    if (tag->kind == RPC_STREAM_TAG_STATUS) {
        rpc_stream_end_call(s);
    } else if (tag->kind == RPC_STREAM_TAG_SEND) {
        rpc_stream_on_send_done(s, tag, success);
        free(tag);
    }
    pthread_mutex_unlock(&s->lock);
}

static void *rpc_stream_pool_main(void *arg) {
    rpc_stream_pool *pool = arg;

    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(pool->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE)
            rpc_stream_on_event(ev.tag, ev.success != 0);
    }
    return NULL;
}

rpc_stream_pool *rpc_stream_pool_create(void) {
    rpc_stream_pool *pool = calloc(1, sizeof(*pool));

    if (pool == NULL)
        return NULL;
    grpc_init();
    pthread_mutex_init(&pool->lock, NULL);
    pool->cq = grpc_completion_queue_create_for_next(NULL);
    if (pthread_create(&pool->thread, NULL, rpc_stream_pool_main, pool) != 0) {
        grpc_completion_queue_shutdown(pool->cq);
        grpc_completion_queue_destroy(pool->cq);
        free(pool);
        grpc_shutdown();
        return NULL;
    }
    return pool;
}

rpc_stream *rpc_stream_open(rpc_stream_pool *pool, const char *target, const char *method) {
    rpc_stream *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->pool = pool;
    s->target = strdup(target);
    s->method = strdup(method);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->ended, NULL);
    s->channel = rpc_grpc_channel_create(target);

    pthread_mutex_lock(&pool->lock);
    if (pool->n_streams == RPC_STREAMS_MAX || s->target == NULL || s->method == NULL) {
        pthread_mutex_unlock(&pool->lock);
        grpc_channel_destroy(s->channel);
        free(s->target);
        free(s->method);
        free(s);
        return NULL;
    }
    pool->streams[pool->n_streams++] = s;
    pthread_mutex_unlock(&pool->lock);
    return s;
}

int rpc_stream_retarget(rpc_stream *s, const char *target) {
    char *copy = strdup(target);

    if (copy == NULL)
        return BS_ERR_NOMEM;
    pthread_mutex_lock(&s->lock);
    if (s->call != NULL)
        grpc_call_cancel(s->call, NULL); /* its status event ends it */
    /* Calls hold their own reference to the old channel. */
    grpc_channel_destroy(s->channel);
    s->channel = rpc_grpc_channel_create(copy);
    free(s->target);
    s->target = copy;
    s->retry_after_ms = 0;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int rpc_stream_send(rpc_stream *s, const ProtobufCMessage *message) {
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    if (s->call == NULL) {
        if (rpc_now_ms() < s->retry_after_ms || !rpc_stream_start_call(s)) {
            s->stats.dropped++;
            pthread_mutex_unlock(&s->lock);
            return BS_ERR_UNAVAILABLE;
        }
    }
    if (s->queue_count == RPC_STREAM_QUEUE_MAX) {
        s->stats.dropped++;
        rc = BS_ERR_RESOURCE_EXHAUSTED;
    } else {
        uint32_t slot = (s->queue_start + s->queue_count) % RPC_STREAM_QUEUE_MAX;
        s->queue[slot] = rpc_encode(message);
        s->queue_count++;
        rpc_stream_pump(s);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

rpc_stream_stats rpc_stream_get_stats(rpc_stream *s) {
    rpc_stream_stats st;

    pthread_mutex_lock(&s->lock);
    st = s->stats;
    pthread_mutex_unlock(&s->lock);
    return st;
}

void rpc_stream_pool_destroy(rpc_stream_pool *pool) {
    if (pool == NULL)
        return;
    /* End every call, and wait for the pool's thread to see each end. */
    for (int i = 0; i < pool->n_streams; i++) {
        rpc_stream *s = pool->streams[i];
        pthread_mutex_lock(&s->lock);
        s->retry_after_ms = UINT64_MAX; /* no new calls from here on */
        if (s->call != NULL)
            grpc_call_cancel(s->call, NULL);
        while (s->call != NULL)
            pthread_cond_wait(&s->ended, &s->lock);
        pthread_mutex_unlock(&s->lock);
    }
    grpc_completion_queue_shutdown(pool->cq);
    pthread_join(pool->thread, NULL);
    grpc_completion_queue_destroy(pool->cq);
    for (int i = 0; i < pool->n_streams; i++) {
        rpc_stream *s = pool->streams[i];
        rpc_stream_drop_queue(s);
        grpc_channel_destroy(s->channel);
        pthread_cond_destroy(&s->ended);
        pthread_mutex_destroy(&s->lock);
        free(s->target);
        free(s->method);
        free(s);
    }
    pthread_mutex_destroy(&pool->lock);
    free(pool);
    grpc_shutdown();
}
