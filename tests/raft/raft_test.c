/* raft_test: the Raft library's features, each on a small deterministic
 * cluster (tests/raft/cluster.h). */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "raft/raft.h"
#include "tests/raft/cluster.h"
#include "tests/testing/cunit_main.h"

static cluster *c;

static void setup(void) {
    c = NULL;
}

static void teardown(void) {
    if (c != NULL) {
        CU_ASSERT_STRING_EQUAL(c->violation, "");
        cluster_free(c);
    }
    c = NULL;
}

static raft_index_t commit_of(raft_id_t id) {
    return raft_commit_index(cluster_raft(c, id));
}

/* Ticks everyone n times, stabilizing after each tick. */
static void run_ticks(int n) {
    for (int i = 0; i < n; i++) {
        cluster_tick_all(c);
        cluster_stabilize(c, 50);
    }
}

/* ---- election ---- */

static void test_three_nodes_elect_one_leader(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    CU_ASSERT_EQUAL(raft_get_role(cluster_raft(c, 1)), RAFT_LEADER);
    CU_ASSERT_EQUAL(raft_leader(cluster_raft(c, 2)), 1);
    CU_ASSERT_EQUAL(raft_leader(cluster_raft(c, 3)), 1);
    /* The leader's empty entry of its term commits everywhere. */
    CU_ASSERT_EQUAL(commit_of(1), 1);
    CU_ASSERT_EQUAL(commit_of(2), 1);
}

static void test_election_happens_by_ticks_alone(void) {
    c = cluster_new(5, 5, 7);
    run_ticks(60);
    raft_id_t lead = cluster_leader(c);
    CU_ASSERT_NOT_EQUAL(lead, RAFT_NONE);
    for (raft_id_t id = 1; id <= 5; id++)
        CU_ASSERT_EQUAL(raft_leader(cluster_raft(c, id)), lead);
}

static void test_single_node_elects_itself_and_commits(void) {
    c = cluster_new(1, 1, 3);
    run_ticks(25);
    CU_ASSERT_EQUAL(raft_get_role(cluster_raft(c, 1)), RAFT_LEADER);
    CU_ASSERT_EQUAL(cluster_propose(c, 1, "x"), RAFT_OK);
    cluster_stabilize(c, 10);
    CU_ASSERT_EQUAL(commit_of(1), 2);
    CU_ASSERT_EQUAL(c->nodes[0].applied, 2);
}

static void test_proposal_on_follower_fails_fast(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    CU_ASSERT_EQUAL(cluster_propose(c, 2, "x"), RAFT_ERR_NOT_LEADER);
    CU_ASSERT_EQUAL(raft_read_index(cluster_raft(c, 2), 1), RAFT_ERR_NOT_LEADER);
}

/* ---- replication ---- */

static void test_proposals_commit_and_apply_everywhere(void) {
    char text[16];

    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    for (int i = 0; i < 100; i++) {
        snprintf(text, sizeof(text), "cmd-%d", i);
        CU_ASSERT_EQUAL_FATAL(cluster_propose(c, 1, text), RAFT_OK);
    }
    cluster_stabilize(c, 200);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(c->nodes[i].applied, 101);
        CU_ASSERT_EQUAL(commit_of(c->nodes[i].id), 101);
    }
}

static void test_leader_counts_itself_only_once_persisted(void) {
    cluster_node *leader;

    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    cluster_isolate(c, 2, true);
    cluster_isolate(c, 3, true);
    leader = &c->nodes[0];
    CU_ASSERT_EQUAL(cluster_propose(c, 1, "x"), RAFT_OK);
    /* Take the batch but do not persist it: nothing may commit, though the
     * leader holds the entry. */
    cluster_ready_begin(c, leader);
    CU_ASSERT_EQUAL(commit_of(1), 1);
    cluster_ready_finish(c, leader);
    CU_ASSERT_EQUAL(commit_of(1), 1); /* one of three is no quorum */
}

int main(void) {
    CU_TestInfo tests[] = {
        {"three_nodes_elect_one_leader", test_three_nodes_elect_one_leader},
        {"election_happens_by_ticks_alone", test_election_happens_by_ticks_alone},
        {"single_node_elects_itself_and_commits", test_single_node_elects_itself_and_commits},
        {"proposal_on_follower_fails_fast", test_proposal_on_follower_fails_fast},
        {"proposals_commit_and_apply_everywhere", test_proposals_commit_and_apply_everywhere},
        {"leader_counts_itself_only_once_persisted", test_leader_counts_itself_only_once_persisted},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("raft", tests, setup, teardown);
}
