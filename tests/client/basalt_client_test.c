/* basalt_client_test: the C client library against a real KV service (store
 * and gRPC server in this process, real sockets on loopback). */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "client/basalt_client.h"
#include "kvnode/kv_service.h"
#include "kvnode/node.h"
#include "kvnode/store.h"
#include "runtime/error.h"
#include "tests/testing/cunit_main.h"
#include "tests/testing/temp_dir.h"

static char dir[256];
static kvs *store;
static node *kvnode;
static rpc_server *server;
static char endpoint[64];
static char why[256];

static void setup(void) {
    cunit_require(temp_dir_make(dir, sizeof(dir)) == 0, "make a temporary directory");
    cunit_require(kvs_open(dir, &store) == 0, "open the store");
    node_config cfg = {.node_id = 1, .store = store, .bootstrap = true};
    cunit_require(node_start(&cfg, &kvnode) == 0, "start a node with one shard");
    server = rpc_server_create("127.0.0.1:0", 2);
    cunit_require(server != NULL && kv_service_register(server, kvnode) == 0 &&
                      rpc_server_start(server) == 0,
                  "start the KV service");
    snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%d", rpc_server_port(server));
}

static void teardown(void) {
    node_halt(kvnode);
    rpc_server_stop(server);
    rpc_server_destroy(server);
    node_free(kvnode);
    kvs_close(store);
    temp_dir_remove(dir);
}

static void test_put_get_delete_through_client(void) {
    basalt_client *c = basalt_client_open(endpoint, 0, why, sizeof(why));
    const char key[] = {'k', '\0', (char)0xff};
    Basalt__V1__GetResponse *resp;
    bool deleted;
    rpc_status st;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(basalt_put(c, key, sizeof(key), "\0v", 2, &st), 0);
    CU_ASSERT_EQUAL_FATAL(
        basalt_get(c, key, sizeof(key), BASALT__V1__CONSISTENCY__CONSISTENCY_STRONG, &resp, &st),
        0);
    CU_ASSERT_TRUE(resp->found);
    CU_ASSERT(resp->value.len == 2 && memcmp(resp->value.data, "\0v", 2) == 0);
    CU_ASSERT_PTR_NOT_NULL(resp->info);
    basalt_response_free(resp);

    CU_ASSERT_EQUAL(basalt_delete(c, key, sizeof(key), &deleted, &st), 0);
    CU_ASSERT_TRUE(deleted);
    CU_ASSERT_EQUAL_FATAL(
        basalt_get(c, key, sizeof(key), BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL, &resp, &st),
        0);
    CU_ASSERT_FALSE(resp->found);
    basalt_response_free(resp);
    basalt_client_close(c);
}

static void test_server_errors_reach_the_caller(void) {
    basalt_client *c = basalt_client_open(endpoint, 0, why, sizeof(why));
    rpc_status st;

    CU_ASSERT_EQUAL(basalt_put(c, "", 0, "v", 1, &st), BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(st.code, GRPC_STATUS_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(st.message, "key must not be empty");
    basalt_client_close(c);
}

static void test_scan_pages_with_more(void) {
    basalt_client *c = basalt_client_open(endpoint, 0, why, sizeof(why));
    Basalt__V1__ScanRequest req = BASALT__V1__SCAN_REQUEST__INIT;
    Basalt__V1__ScanResponse *resp;
    rpc_status st;
    char key[8];

    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        CU_ASSERT_EQUAL_FATAL(basalt_put(c, key, strlen(key), "v", 1, &st), 0);
    }
    req.start = (ProtobufCBinaryData){1, (uint8_t *)"s"};
    req.limit = 3;
    CU_ASSERT_EQUAL_FATAL(basalt_scan(c, &req, &resp, &st), 0);
    CU_ASSERT_EQUAL(resp->n_kvs, 3);
    CU_ASSERT_TRUE(resp->more);
    CU_ASSERT_NSTRING_EQUAL(resp->kvs[2]->key.data, "s2", 2);
    basalt_response_free(resp);
    basalt_client_close(c);
}

static void test_unreachable_endpoint_fails_over_to_next(void) {
    char list[160];
    basalt_client *c;
    rpc_status st;

    snprintf(list, sizeof(list), "127.0.0.1:1,%s", endpoint);
    c = basalt_client_open(list, 0, why, sizeof(why));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(basalt_put(c, "f", 1, "1", 1, &st), 0);
    CU_ASSERT_EQUAL(basalt_health(c, &st), 0);
    basalt_client_close(c);
}

static void test_only_unreachable_endpoints_is_unavailable(void) {
    basalt_client *c = basalt_client_open("127.0.0.1:1", 0, why, sizeof(why));
    rpc_status st;

    CU_ASSERT_EQUAL(basalt_put(c, "f", 1, "1", 1, &st), BS_ERR_UNAVAILABLE);
    CU_ASSERT_EQUAL(st.code, GRPC_STATUS_UNAVAILABLE);
    basalt_client_close(c);
}

static void test_bad_endpoint_lists_are_refused(void) {
    char many[BASALT_ENDPOINTS_MAX * 16 + 32] = "";

    CU_ASSERT_PTR_NULL(basalt_client_open("", 0, why, sizeof(why)));
    CU_ASSERT_PTR_NULL(basalt_client_open("a:1,,b:2", 0, why, sizeof(why)));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "empty"));
    for (int i = 0; i <= BASALT_ENDPOINTS_MAX; i++)
        strcat(many, i ? ",h:1" : "h:1");
    CU_ASSERT_PTR_NULL(basalt_client_open(many, 0, why, sizeof(why)));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "more than"));
    CU_ASSERT_PTR_NULL(basalt_client_open("127.0.0.1:99999", 0, why, sizeof(why)));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "65535"));
    CU_ASSERT_PTR_NULL(basalt_client_open("127.0.0.1", 0, why, sizeof(why)));
    CU_ASSERT_PTR_NULL(basalt_client_open("127.0.0.1:0", 0, why, sizeof(why)));
    CU_ASSERT_PTR_NULL(basalt_client_open("127.0.0.1:80x", 0, why, sizeof(why)));
}

int main(void) {
    CU_TestInfo tests[] = {
        {"put_get_delete_through_client", test_put_get_delete_through_client},
        {"server_errors_reach_the_caller", test_server_errors_reach_the_caller},
        {"scan_pages_with_more", test_scan_pages_with_more},
        {"unreachable_endpoint_fails_over_to_next", test_unreachable_endpoint_fails_over_to_next},
        {"only_unreachable_endpoints_is_unavailable",
         test_only_unreachable_endpoints_is_unavailable},
        {"bad_endpoint_lists_are_refused", test_bad_endpoint_lists_are_refused},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("basalt_client", tests, setup, teardown);
}
