/* meta_test: the router's durable state on a real RocksDB. */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "router/meta.h"
#include "runtime/error.h"
#include "tests/testing/cunit_main.h"
#include "tests/testing/temp_dir.h"

static char dir[256];
static meta *m;

static void setup(void) {
    cunit_require(temp_dir_make(dir, sizeof(dir)) == 0, "make a temporary directory");
    cunit_require(meta_open(dir, &m) == 0, "open the router's store");
}

static void teardown(void) {
    meta_close(m);
    temp_dir_remove(dir);
}

static void reopen(void) {
    meta_close(m);
    CU_ASSERT_EQUAL_FATAL(meta_open(dir, &m), 0);
}

static void test_cluster_id_is_random_and_kept(void) {
    char first[64];

    snprintf(first, sizeof(first), "%s", meta_cluster_id(m));
    CU_ASSERT_EQUAL(strlen(first), 32);
    reopen();
    CU_ASSERT_STRING_EQUAL(meta_cluster_id(m), first);
}

static void test_ids_are_never_handed_out_twice(void) {
    uint64_t a, b, c;

    CU_ASSERT_EQUAL(meta_alloc_ids(m, META_ID_REPLICA, 3, &a), 0);
    CU_ASSERT_EQUAL(a, 1);
    CU_ASSERT_EQUAL(meta_alloc_ids(m, META_ID_REPLICA, 1, &b), 0);
    CU_ASSERT_EQUAL(b, 4);
    /* Kinds count separately. */
    CU_ASSERT_EQUAL(meta_alloc_ids(m, META_ID_SHARD, 1, &c), 0);
    CU_ASSERT_EQUAL(c, 1);
    reopen();
    CU_ASSERT_EQUAL(meta_alloc_ids(m, META_ID_REPLICA, 1, &b), 0);
    CU_ASSERT_EQUAL(b, 5);
}

static void test_reserved_ids_are_skipped(void) {
    uint64_t id;

    CU_ASSERT_EQUAL(meta_reserve_ids(m, META_ID_NODE, 5), 0);
    CU_ASSERT_EQUAL(meta_alloc_ids(m, META_ID_NODE, 1, &id), 0);
    CU_ASSERT_EQUAL(id, 6);
    /* Reserving below what was handed out changes nothing. */
    CU_ASSERT_EQUAL(meta_reserve_ids(m, META_ID_NODE, 2), 0);
    CU_ASSERT_EQUAL(meta_alloc_ids(m, META_ID_NODE, 1, &id), 0);
    CU_ASSERT_EQUAL(id, 7);
}

typedef struct {
    int count;
    char seen[256];
} node_log;

static void collect_node(void *ctx, uint64_t id, const char *address, const char *zone) {
    node_log *log = ctx;
    size_t len = strlen(log->seen);
    snprintf(log->seen + len, sizeof(log->seen) - len, "%llu=%s@%s;", (unsigned long long)id,
             address, zone);
    log->count++;
}

static void test_node_registry_survives_restart(void) {
    node_log log = {0};

    CU_ASSERT_EQUAL(meta_put_node(m, 2, "127.0.0.1:7381", "b"), 0);
    CU_ASSERT_EQUAL(meta_put_node(m, 1, "127.0.0.1:7380", ""), 0);
    CU_ASSERT_EQUAL(meta_put_node(m, 2, "127.0.0.1:7399", "b"), 0); /* moved */
    reopen();
    CU_ASSERT_EQUAL(meta_each_node(m, collect_node, &log), 0);
    CU_ASSERT_EQUAL(log.count, 2);
    CU_ASSERT_STRING_EQUAL(log.seen, "1=127.0.0.1:7380@;2=127.0.0.1:7399@b;");
}

static void test_drains_removals_and_the_schedule_switch_survive_restart(void) {
    node_log log = {0};

    CU_ASSERT_EQUAL(meta_put_node(m, 1, "127.0.0.1:7380", ""), 0);
    CU_ASSERT_EQUAL(meta_put_node(m, 2, "127.0.0.1:7381", ""), 0);
    CU_ASSERT_EQUAL(meta_node_admin_of(m, 1), META_NODE_ACTIVE);
    CU_ASSERT_TRUE(meta_schedule_enabled(m)); /* on unless turned off */
    CU_ASSERT_EQUAL(meta_put_node_admin(m, 1, META_NODE_DRAINING), 0);
    CU_ASSERT_EQUAL(meta_put_node_admin(m, 2, META_NODE_DRAINED), 0);
    CU_ASSERT_EQUAL(meta_put_schedule_enabled(m, false), 0);
    reopen();
    CU_ASSERT_EQUAL(meta_node_admin_of(m, 1), META_NODE_DRAINING);
    CU_ASSERT_EQUAL(meta_node_admin_of(m, 2), META_NODE_DRAINED);
    CU_ASSERT_FALSE(meta_schedule_enabled(m));
    CU_ASSERT_FALSE(meta_node_removed(m, 2));
    CU_ASSERT_EQUAL(meta_remove_node(m, 2), 0);
    reopen();
    CU_ASSERT_TRUE(meta_node_removed(m, 2));
    CU_ASSERT_FALSE(meta_node_removed(m, 1));
    CU_ASSERT_EQUAL(meta_node_admin_of(m, 2), META_NODE_ACTIVE); /* its record is gone */
    CU_ASSERT_EQUAL(meta_each_node(m, collect_node, &log), 0);
    CU_ASSERT_STRING_EQUAL(log.seen, "1=127.0.0.1:7380@;");
}

static void test_second_router_on_same_dir_refused(void) {
    meta *other = NULL;
    CU_ASSERT_NOT_EQUAL(meta_open(dir, &other), 0);
    CU_ASSERT_PTR_NULL(other);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"cluster_id_is_random_and_kept", test_cluster_id_is_random_and_kept},
        {"ids_are_never_handed_out_twice", test_ids_are_never_handed_out_twice},
        {"node_registry_survives_restart", test_node_registry_survives_restart},
        {"reserved_ids_are_skipped", test_reserved_ids_are_skipped},
        {"drains_removals_and_the_schedule_switch_survive_restart",
         test_drains_removals_and_the_schedule_switch_survive_restart},
        {"second_router_on_same_dir_refused", test_second_router_on_same_dir_refused},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("router_meta", tests, setup, teardown);
}
