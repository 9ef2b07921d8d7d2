/* rpc_test: the gRPC server and client layers, talking over real loopback
 * sockets within one process. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <CUnit/CUnit.h>

#include "basalt/v1/kv.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "runtime/error.h"
#include "runtime/rpc_async.h"
#include "runtime/rpc_client.h"
#include "runtime/rpc_server.h"
#include "runtime/rpc_stream.h"
#include "tests/testing/cunit_main.h"

#define TEST_TIMEOUT_MS 5000

static rpc_server *server;
static rpc_channel *channel;

/* A call parked by the Hold handler until the test answers it. */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t held_cond = PTHREAD_COND_INITIALIZER;
static rpc_call *held_call;

/* Echo: answers a PutRequest with a GetResponse holding its value. */
static void echo_handler(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__PutRequest *req = (const void *)request;
    Basalt__V1__GetResponse resp = BASALT__V1__GET_RESPONSE__INIT;
    (void)ctx;
    resp.found = true;
    resp.value = req->value;
    rpc_call_reply(call, &resp.base);
}

static void fail_handler(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    const Basalt__V1__PutRequest *req = (const void *)request;
    (void)ctx;
    rpc_call_add_trailer(call, "basalt-test-detail", "typed");
    rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "refused key %.*s", (int)req->key.len,
                  (const char *)req->key.data);
}

static void hold_handler(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
    (void)request;
    (void)ctx;
    pthread_mutex_lock(&held_lock);
    held_call = call;
    pthread_cond_broadcast(&held_cond);
    pthread_mutex_unlock(&held_lock);
}

/* Messages received on the test stream method. */
static pthread_mutex_t stream_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stream_cond = PTHREAD_COND_INITIALIZER;
static int stream_received;
static int stream_in_order = 1;
static const Basalt__V1__PutResponse stream_done = BASALT__V1__PUT_RESPONSE__INIT;

static int stream_handler(const ProtobufCMessage *message, void *ctx, void **state) {
    const Basalt__V1__PutRequest *req = (const void *)message;
    char want[32];
    (void)ctx;
    (void)state;
    pthread_mutex_lock(&stream_lock);
    snprintf(want, sizeof(want), "m%d", stream_received);
    if (req->key.len != strlen(want) || memcmp(req->key.data, want, req->key.len) != 0)
        stream_in_order = 0;
    stream_received++;
    pthread_cond_broadcast(&stream_cond);
    pthread_mutex_unlock(&stream_lock);
    return 0;
}

/* Waits until `count` stream messages arrived or 10 seconds passed. */
static int wait_for_stream_messages(int count) {
    struct timespec deadline;
    int got;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&stream_lock);
    while (stream_received < count &&
           pthread_cond_timedwait(&stream_cond, &stream_lock, &deadline) == 0) {
    }
    got = stream_received;
    pthread_mutex_unlock(&stream_lock);
    return got;
}

static void setup(void) {
    const ProtobufCMessageDescriptor *put = &basalt__v1__put_request__descriptor;
    char target[64];

    server = rpc_server_create("127.0.0.1:0", 2);
    cunit_require(server != NULL, "create a server");
    cunit_require(
        rpc_server_add_method(server, "/test.Echo/Echo", put, echo_handler, NULL) == 0 &&
            rpc_server_add_method(server, "/test.Echo/Fail", put, fail_handler, NULL) == 0 &&
            rpc_server_add_method(server, "/test.Echo/Hold", put, hold_handler, NULL) == 0 &&
            rpc_server_add_stream_method(server, "/test.Echo/Stream", put, stream_handler, NULL,
                                         NULL, &stream_done.base) == 0,
        "add the test methods");
    stream_received = 0;
    stream_in_order = 1;
    cunit_require(rpc_server_start(server) == 0, "start the server");
    snprintf(target, sizeof(target), "127.0.0.1:%d", rpc_server_port(server));
    channel = rpc_channel_open(target);
    cunit_require(channel != NULL, "open a channel");
}

static void teardown(void) {
    rpc_channel_close(channel);
    rpc_server_stop(server);
    rpc_server_destroy(server);
}

static int call_echo(const char *method, const char *key, const char *value,
                     Basalt__V1__GetResponse **resp, rpc_status *st, int64_t timeout_ms) {
    Basalt__V1__PutRequest req = BASALT__V1__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    req.value = (ProtobufCBinaryData){strlen(value), (uint8_t *)value};
    return rpc_unary(channel, method, &req.base, &basalt__v1__get_response__descriptor, timeout_ms,
                     (ProtobufCMessage **)resp, st);
}

static void test_unary_call_round_trips_message(void) {
    Basalt__V1__GetResponse *resp;
    rpc_status st;

    CU_ASSERT_EQUAL_FATAL(call_echo("/test.Echo/Echo", "k", "hello", &resp, &st, TEST_TIMEOUT_MS),
                          0);
    CU_ASSERT_EQUAL(st.code, GRPC_STATUS_OK);
    CU_ASSERT_TRUE(resp->found);
    CU_ASSERT_EQUAL(resp->value.len, 5);
    CU_ASSERT_NSTRING_EQUAL(resp->value.data, "hello", 5);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void test_handler_failure_carries_code_and_message(void) {
    Basalt__V1__GetResponse *resp;
    rpc_status st;

    CU_ASSERT_EQUAL(call_echo("/test.Echo/Fail", "abc", "", &resp, &st, TEST_TIMEOUT_MS),
                    BS_ERR_FAILED_PRECONDITION);
    CU_ASSERT_PTR_NULL(resp);
    CU_ASSERT_EQUAL(st.code, GRPC_STATUS_FAILED_PRECONDITION);
    CU_ASSERT_STRING_EQUAL(st.message, "refused key abc");
}

static void test_unknown_method_is_unimplemented(void) {
    Basalt__V1__GetResponse *resp;
    rpc_status st;

    CU_ASSERT_NOT_EQUAL(call_echo("/test.Echo/Nope", "k", "v", &resp, &st, TEST_TIMEOUT_MS), 0);
    CU_ASSERT_EQUAL(st.code, GRPC_STATUS_UNIMPLEMENTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "/test.Echo/Nope"));
}

static void test_malformed_request_is_invalid_argument(void) {
    /* Field 2 of GetRequest is a varint; in PutRequest it is bytes, so these
     * bytes are not a PutRequest. */
    Basalt__V1__GetRequest wrong = BASALT__V1__GET_REQUEST__INIT;
    Basalt__V1__GetResponse *resp;
    rpc_status st;

    wrong.consistency = BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL;
    CU_ASSERT_EQUAL(rpc_unary(channel, "/test.Echo/Echo", &wrong.base,
                              &basalt__v1__get_response__descriptor, TEST_TIMEOUT_MS,
                              (ProtobufCMessage **)&resp, &st),
                    BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(st.code, GRPC_STATUS_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "malformed"));

    /* The server still serves. */
    CU_ASSERT_EQUAL(call_echo("/test.Echo/Echo", "k", "v", &resp, &st, TEST_TIMEOUT_MS), 0);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void test_deadline_passes_while_handler_holds_call(void) {
    Basalt__V1__GetResponse *resp;
    Basalt__V1__GetResponse late = BASALT__V1__GET_RESPONSE__INIT;
    rpc_status st;

    CU_ASSERT_EQUAL(call_echo("/test.Echo/Hold", "k", "v", &resp, &st, 200),
                    BS_ERR_DEADLINE_EXCEEDED);
    CU_ASSERT_EQUAL(st.code, GRPC_STATUS_DEADLINE_EXCEEDED);

    /* The handler answers late, from this thread; that must be harmless. */
    pthread_mutex_lock(&held_lock);
    while (held_call == NULL)
        pthread_cond_wait(&held_cond, &held_lock);
    rpc_call_reply(held_call, &late.base);
    held_call = NULL;
    pthread_mutex_unlock(&held_lock);
}

static void test_health_check_knows_services(void) {
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    Grpc__Health__V1__HealthCheckResponse *resp;
    rpc_status st;
    const char *known[] = {"", "test.Echo", "grpc.health.v1.Health"};

    for (size_t i = 0; i < 3; i++) {
        req.service = (char *)known[i];
        CU_ASSERT_EQUAL_FATAL(rpc_unary(channel, "/grpc.health.v1.Health/Check", &req.base,
                                        &grpc__health__v1__health_check_response__descriptor,
                                        TEST_TIMEOUT_MS, (ProtobufCMessage **)&resp, &st),
                              0);
        CU_ASSERT_EQUAL(resp->status,
                        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    req.service = "test.Ech";
    CU_ASSERT_EQUAL(rpc_unary(channel, "/grpc.health.v1.Health/Check", &req.base,
                              &grpc__health__v1__health_check_response__descriptor, TEST_TIMEOUT_MS,
                              (ProtobufCMessage **)&resp, &st),
                    BS_ERR_NOT_FOUND);
}

static void test_second_server_on_same_port_fails_to_start(void) {
    char addr[64];
    rpc_server *other;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", rpc_server_port(server));
    other = rpc_server_create(addr, 1);
    CU_ASSERT_EQUAL(rpc_server_start(other), BS_ERR_UNAVAILABLE);
    rpc_server_destroy(other);
}

static void test_add_method_refuses_bad_paths_and_duplicates(void) {
    rpc_server *s = rpc_server_create("127.0.0.1:0", 1);
    const ProtobufCMessageDescriptor *d = &basalt__v1__put_request__descriptor;

    CU_ASSERT_EQUAL(rpc_server_add_method(s, "/a.B/C", d, echo_handler, NULL), 0);
    CU_ASSERT_EQUAL(rpc_server_add_method(s, "/a.B/C", d, echo_handler, NULL),
                    BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(rpc_server_add_method(s, "a.B/C", d, echo_handler, NULL),
                    BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(rpc_server_add_method(s, "/a.B", d, echo_handler, NULL),
                    BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(rpc_server_add_method(s, "/a.B/C/D", d, echo_handler, NULL),
                    BS_ERR_INVALID_ARGUMENT);
    rpc_server_destroy(s);
}

/* Several client threads at once over one channel. */
#define CONCURRENT_THREADS 4
#define CALLS_PER_THREAD   50

static void *concurrent_caller(void *arg) {
    long failures = 0;
    char value[32];
    (void)arg;

    for (int i = 0; i < CALLS_PER_THREAD; i++) {
        Basalt__V1__GetResponse *resp;
        rpc_status st;
        snprintf(value, sizeof(value), "v%d", i);
        if (call_echo("/test.Echo/Echo", "k", value, &resp, &st, TEST_TIMEOUT_MS) != 0) {
            failures++;
            continue;
        }
        if (resp->value.len != strlen(value) || memcmp(resp->value.data, value, resp->value.len))
            failures++;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    return (void *)failures;
}

static void test_concurrent_calls_all_succeed(void) {
    pthread_t threads[CONCURRENT_THREADS];
    long total = 0;

    for (int i = 0; i < CONCURRENT_THREADS; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&threads[i], NULL, concurrent_caller, NULL), 0);
    for (int i = 0; i < CONCURRENT_THREADS; i++) {
        void *failures;
        pthread_join(threads[i], &failures);
        total += (long)failures;
    }
    CU_ASSERT_EQUAL(total, 0);
}

static void test_unreachable_server_is_unavailable(void) {
    rpc_channel *dead = rpc_channel_open("127.0.0.1:1");
    Basalt__V1__PutRequest req = BASALT__V1__PUT_REQUEST__INIT;
    Basalt__V1__GetResponse *resp;
    rpc_status st;

    CU_ASSERT_EQUAL(rpc_unary(dead, "/test.Echo/Echo", &req.base,
                              &basalt__v1__get_response__descriptor, TEST_TIMEOUT_MS,
                              (ProtobufCMessage **)&resp, &st),
                    BS_ERR_UNAVAILABLE);
    CU_ASSERT_EQUAL(st.code, GRPC_STATUS_UNAVAILABLE);
    rpc_channel_close(dead);
}

static void test_client_stream_delivers_messages_in_order(void) {
    rpc_stream_pool *pool = rpc_stream_pool_create();
    char target[64], key[32];
    rpc_stream *stream;

    snprintf(target, sizeof(target), "127.0.0.1:%d", rpc_server_port(server));
    stream = rpc_stream_open(pool, target, "/test.Echo/Stream");
    CU_ASSERT_PTR_NOT_NULL_FATAL(stream);
    for (int i = 0; i < 100; i++) {
        Basalt__V1__PutRequest req = BASALT__V1__PUT_REQUEST__INIT;
        snprintf(key, sizeof(key), "m%d", i);
        req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
        CU_ASSERT_EQUAL(rpc_stream_send(stream, &req.base), 0);
    }
    CU_ASSERT_EQUAL(wait_for_stream_messages(100), 100);
    CU_ASSERT_TRUE(stream_in_order);
    CU_ASSERT_EQUAL(rpc_stream_get_stats(stream).opened, 1);
    rpc_stream_pool_destroy(pool);
}

static void test_stream_to_unreachable_peer_drops_without_blocking(void) {
    rpc_stream_pool *pool = rpc_stream_pool_create();
    rpc_stream *stream = rpc_stream_open(pool, "127.0.0.1:1", "/test.Echo/Stream");
    Basalt__V1__PutRequest req = BASALT__V1__PUT_REQUEST__INIT;
    int refused = 0;

    /* Sends return at once whatever happens. One call takes at most a full
     * queue plus the message in flight; a broken call is not retried for
     * RPC_STREAM_RETRY_MS, so the rest are refused. */
    for (int i = 0; i < 2 * RPC_STREAM_QUEUE_MAX; i++)
        refused += rpc_stream_send(stream, &req.base) != 0;
    CU_ASSERT(refused >= RPC_STREAM_QUEUE_MAX - 1);
    rpc_stream_pool_destroy(pool);
}

/* What an asynchronous call's callback saw. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int finished;
    int rc;
    grpc_status_code code;
    char value[32];
    char trailer[64];
} async_result;

static void async_cb(void *ctx, int rc, ProtobufCMessage *response, const rpc_status *status,
                     const rpc_trailers *trailers) {
    async_result *r = ctx;
    const char *t = rpc_trailer(trailers, "basalt-test-detail");

    pthread_mutex_lock(&r->lock);
    r->rc = rc;
    r->code = status->code;
    if (response != NULL) {
        const Basalt__V1__GetResponse *resp = (const void *)response;
        snprintf(r->value, sizeof(r->value), "%.*s", (int)resp->value.len,
                 (const char *)resp->value.data);
        protobuf_c_message_free_unpacked(response, NULL);
    }
    snprintf(r->trailer, sizeof(r->trailer), "%s", t ? t : "");
    r->finished++;
    pthread_cond_broadcast(&r->done);
    pthread_mutex_unlock(&r->lock);
}

static void async_wait(async_result *r, int count) {
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&r->lock);
    while (r->finished < count && pthread_cond_timedwait(&r->done, &r->lock, &deadline) == 0) {
    }
    pthread_mutex_unlock(&r->lock);
}

static void test_async_calls_answer_through_callbacks(void) {
    rpc_async_pool *pool = rpc_async_pool_create();
    async_result ok = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -1, 0, "", ""};
    async_result bad = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -1, 0, "", ""};
    Basalt__V1__PutRequest req = BASALT__V1__PUT_REQUEST__INIT;

    req.key = (ProtobufCBinaryData){1, (uint8_t *)"k"};
    req.value = (ProtobufCBinaryData){5, (uint8_t *)"async"};
    CU_ASSERT_EQUAL(rpc_async_unary(pool, channel, "/test.Echo/Echo", &req.base,
                                    &basalt__v1__get_response__descriptor, TEST_TIMEOUT_MS,
                                    async_cb, &ok),
                    0);
    CU_ASSERT_EQUAL(rpc_async_unary(pool, channel, "/test.Echo/Fail", &req.base,
                                    &basalt__v1__get_response__descriptor, TEST_TIMEOUT_MS,
                                    async_cb, &bad),
                    0);
    async_wait(&ok, 1);
    async_wait(&bad, 1);
    CU_ASSERT_EQUAL(ok.finished, 1);
    CU_ASSERT_EQUAL(ok.rc, 0);
    CU_ASSERT_STRING_EQUAL(ok.value, "async");
    CU_ASSERT_EQUAL(bad.finished, 1);
    CU_ASSERT_EQUAL(bad.code, GRPC_STATUS_FAILED_PRECONDITION);
    CU_ASSERT_STRING_EQUAL(bad.trailer, "typed");
    rpc_async_pool_destroy(pool);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"unary_call_round_trips_message", test_unary_call_round_trips_message},
        {"handler_failure_carries_code_and_message", test_handler_failure_carries_code_and_message},
        {"unknown_method_is_unimplemented", test_unknown_method_is_unimplemented},
        {"malformed_request_is_invalid_argument", test_malformed_request_is_invalid_argument},
        {"deadline_passes_while_handler_holds_call", test_deadline_passes_while_handler_holds_call},
        {"health_check_knows_services", test_health_check_knows_services},
        {"second_server_on_same_port_fails_to_start",
         test_second_server_on_same_port_fails_to_start},
        {"add_method_refuses_bad_paths_and_duplicates",
         test_add_method_refuses_bad_paths_and_duplicates},
        {"concurrent_calls_all_succeed", test_concurrent_calls_all_succeed},
        {"unreachable_server_is_unavailable", test_unreachable_server_is_unavailable},
        {"client_stream_delivers_messages_in_order", test_client_stream_delivers_messages_in_order},
        {"stream_to_unreachable_peer_drops_without_blocking",
         test_stream_to_unreachable_peer_drops_without_blocking},
        {"async_calls_answer_through_callbacks", test_async_calls_answer_through_callbacks},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("rpc", tests, setup, teardown);
}
