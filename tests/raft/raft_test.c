/* raft_test: the Raft library's features and the regressions that broke real
 * Raft systems, each on a small deterministic cluster (tests/raft/cluster.h)
 * or on a single node fed by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "raft/memory_storage.h"
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

static raft *node(raft_id_t id) {
    return cluster_raft(c, id);
}

static raft_index_t commit_of(raft_id_t id) {
    return raft_commit_index(node(id));
}

/* Ticks everyone n times, stabilizing after each tick. */
static void run_ticks(int n) {
    for (int i = 0; i < n; i++) {
        cluster_tick_all(c);
        cluster_stabilize(c, 50);
    }
}

/* Ticks one node n times, stabilizing after each tick. */
static void tick_node(raft_id_t id, int n) {
    for (int i = 0; i < n; i++) {
        raft_tick(node(id));
        cluster_stabilize(c, 50);
    }
}

static void propose_n(raft_id_t id, int n) {
    char text[32];
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof(text), "cmd-%d", i);
        CU_ASSERT_EQUAL_FATAL(cluster_propose(c, id, text), RAFT_OK);
    }
}

/* Queued messages of a type from one node to another. */
static int queued(raft_msg_type type, raft_id_t from, raft_id_t to) {
    int n = 0;
    for (size_t i = 0; i < c->n_msgs; i++) {
        const raft_msg *m = &c->msgs[i].msg;
        n += m->type == type && m->from == from && m->to == to;
    }
    return n;
}

/* Read states handed to the host of `id` so far, with error `err`. */
static int reads_of(raft_id_t id, int err) {
    int n = 0;
    for (size_t i = 0; i < c->n_reads; i++)
        n += c->read_node[i] == id && c->reads[i].err == err;
    return n;
}

/* Makes `id` leader of a new term (by a transfer from the current leader),
 * and cuts it off before its empty entry reaches anyone. */
static void elect_without_commit(raft_id_t id) {
    CU_ASSERT_EQUAL_FATAL(raft_transfer_leader(node(cluster_leader(c)), id), RAFT_OK);
    for (int round = 0; round < 100 && raft_get_role(node(id)) != RAFT_LEADER; round++)
        cluster_stabilize(c, 1);
    CU_ASSERT_EQUAL_FATAL(raft_get_role(node(id)), RAFT_LEADER);
    cluster_isolate(c, id, true);
    cluster_stabilize(c, 10);
}

/* ---- election ---- */

static void test_three_nodes_elect_one_leader(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    CU_ASSERT_EQUAL(raft_get_role(node(1)), RAFT_LEADER);
    CU_ASSERT_EQUAL(raft_leader(node(2)), 1);
    CU_ASSERT_EQUAL(raft_leader(node(3)), 1);
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
        CU_ASSERT_EQUAL(raft_leader(node(id)), lead);
}

static void test_single_node_elects_itself_and_commits(void) {
    c = cluster_new(1, 1, 3);
    run_ticks(25);
    CU_ASSERT_EQUAL(raft_get_role(node(1)), RAFT_LEADER);
    CU_ASSERT_EQUAL(cluster_propose(c, 1, "x"), RAFT_OK);
    cluster_stabilize(c, 10);
    CU_ASSERT_EQUAL(commit_of(1), 2);
    CU_ASSERT_EQUAL(c->nodes[0].applied, 2);
}

static void test_proposals_without_leadership_fail_fast(void) {
    c = cluster_new(3, 3, 1);
    CU_ASSERT_EQUAL(cluster_propose(c, 1, "x"), RAFT_ERR_NOT_LEADER); /* no leader yet */
    cluster_elect(c, 1);
    CU_ASSERT_EQUAL(cluster_propose(c, 2, "x"), RAFT_ERR_NOT_LEADER);
    CU_ASSERT_EQUAL(raft_read_index(node(2), 1), RAFT_ERR_NOT_LEADER);
    CU_ASSERT_EQUAL(raft_leader(node(2)), 1); /* the hint a host forwards with */
}

static void test_pre_vote_keeps_term_of_isolated_node(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    raft_term_t term = raft_term(node(1));
    cluster_isolate(c, 3, true);
    tick_node(3, 100); /* many election timeouts */
    CU_ASSERT_EQUAL(raft_term(node(3)), term);
    CU_ASSERT_NOT_EQUAL(raft_get_role(node(3)), RAFT_LEADER);
}

/* Regression 5: a long-partitioned node rejoins and must not depose a
 * healthy leader. */
static void test_rejoining_node_does_not_disrupt_leader(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    raft_term_t term = raft_term(node(1));
    cluster_isolate(c, 3, true);
    for (int i = 0; i < 100; i++) {
        raft_tick(node(1));
        raft_tick(node(2));
        tick_node(3, 1);
    }
    cluster_isolate(c, 3, false);
    run_ticks(30);
    CU_ASSERT_EQUAL(raft_get_role(node(1)), RAFT_LEADER);
    CU_ASSERT_EQUAL(raft_term(node(1)), term);
    CU_ASSERT_EQUAL(raft_leader(node(3)), 1);
}

static void test_check_quorum_leader_steps_down_when_cut_off(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    cluster_isolate(c, 1, true);
    tick_node(1, 2 * c->base.election_ticks);
    CU_ASSERT_EQUAL(raft_get_role(node(1)), RAFT_FOLLOWER);
}

/* ---- votes and persistence, on one node fed by hand ---- */

typedef struct {
    memory_storage *ms;
    raft *r;
} lone;

static lone lone_new_with(raft_id_t id, bool check_quorum) {
    raft_conf_state conf = {.voters = {1, 2, 3}, .n_voters = 3};
    lone n;
    raft_config cfg = {
        .id = id,
        .election_ticks = 10,
        .heartbeat_ticks = 1,
        .pre_vote = true,
        .check_quorum = check_quorum,
        .max_entries_per_msg = 16,
        .max_bytes_per_msg = 1 << 16,
        .max_inflight_msgs = 4,
        .seed = 1,
    };
    n.ms = memory_storage_new(&conf);
    cfg.storage = memory_storage_interface(n.ms);
    CU_ASSERT_EQUAL_FATAL(raft_new(&cfg, &n.r), RAFT_OK);
    return n;
}

static lone lone_new(raft_id_t id) {
    return lone_new_with(id, true);
}

/* Persists a ready batch the way a host must. */
static void lone_persist(lone *n, raft_ready *rd) {
    if (rd->has_snapshot)
        memory_storage_apply_snapshot(n->ms, &rd->snapshot);
    memory_storage_append(n->ms, rd->entries, rd->n_entries);
    if (rd->has_hard_state)
        memory_storage_set_hard_state(n->ms, &rd->hard_state);
}

static void lone_restart(lone *n) {
    raft_config cfg;
    raft_conf_state conf;
    raft_hard_state hs;
    (void)conf;
    (void)hs;
    raft_free(n->r);
    memset(&cfg, 0, sizeof(cfg));
    cfg = (raft_config){.id = 1,
                        .election_ticks = 10,
                        .heartbeat_ticks = 1,
                        .pre_vote = true,
                        .check_quorum = true,
                        .max_entries_per_msg = 16,
                        .max_bytes_per_msg = 1 << 16,
                        .max_inflight_msgs = 4,
                        .seed = 2,
                        .storage = memory_storage_interface(n->ms)};
    CU_ASSERT_EQUAL_FATAL(raft_new(&cfg, &n->r), RAFT_OK);
}

static void lone_free(lone *n) {
    raft_free(n->r);
    memory_storage_free(n->ms);
}

static raft_msg vote_request(raft_id_t from, raft_term_t term) {
    raft_msg m = {.type = RAFT_MSG_VOTE, .from = from, .to = 1, .term = term};
    return m;
}

/* Regression 1: a node votes once per term, and the vote is on disk before
 * the reply leaves, so a restart cannot vote again. */
static void test_vote_is_persisted_before_reply_and_never_given_twice(void) {
    lone n = lone_new(1);
    raft_msg ask2 = vote_request(2, 5), ask3 = vote_request(3, 5);
    raft_ready rd;

    CU_ASSERT_EQUAL(raft_step(n.r, &ask2), RAFT_OK);
    CU_ASSERT_EQUAL_FATAL(raft_ready_get(n.r, &rd), RAFT_OK);
    /* The grant waits for the batch that persists term 5 and the vote. */
    CU_ASSERT_EQUAL(rd.n_messages, 0);
    CU_ASSERT_EQUAL_FATAL(rd.n_messages_after_persist, 1);
    CU_ASSERT_FALSE(rd.messages_after_persist[0].reject);
    CU_ASSERT_TRUE(rd.has_hard_state);
    CU_ASSERT_EQUAL(rd.hard_state.term, 5);
    CU_ASSERT_EQUAL(rd.hard_state.vote, 2);
    lone_persist(&n, &rd);
    raft_advance(n.r, &rd);

    /* Same term, another candidate: refused, before and after a restart. */
    CU_ASSERT_EQUAL(raft_step(n.r, &ask3), RAFT_OK);
    CU_ASSERT_EQUAL_FATAL(raft_ready_get(n.r, &rd), RAFT_OK);
    CU_ASSERT_TRUE(rd.messages_after_persist[0].reject);
    raft_advance(n.r, &rd);
    lone_restart(&n);
    CU_ASSERT_EQUAL(raft_term(n.r), 5);
    CU_ASSERT_EQUAL(raft_step(n.r, &ask3), RAFT_OK);
    CU_ASSERT_EQUAL_FATAL(raft_ready_get(n.r, &rd), RAFT_OK);
    CU_ASSERT_EQUAL_FATAL(rd.n_messages_after_persist, 1);
    CU_ASSERT_TRUE(rd.messages_after_persist[0].reject);
    raft_advance(n.r, &rd);
    lone_free(&n);
}

static void test_vote_refused_to_candidate_with_stale_log(void) {
    /* Without check-quorum, so the leader's lease does not silence the vote. */
    lone n = lone_new_with(1, false);
    raft_entry e = {.term = 3, .index = 1};
    raft_msg app = {
        .type = RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 3, .n_entries = 1, .entries = &e};
    raft_msg ask = {
        .type = RAFT_MSG_VOTE, .from = 3, .to = 1, .term = 4, .index = 5, .log_term = 2};
    raft_ready rd;

    raft_step(n.r, &app);
    raft_ready_get(n.r, &rd);
    lone_persist(&n, &rd);
    raft_advance(n.r, &rd);
    /* The candidate's log is longer but ends in an older term (paper 5.4.1). */
    raft_step(n.r, &ask);
    raft_ready_get(n.r, &rd);
    CU_ASSERT_EQUAL_FATAL(rd.n_messages_after_persist, 1);
    CU_ASSERT_TRUE(rd.messages_after_persist[0].reject);
    raft_advance(n.r, &rd);
    lone_free(&n);
}

/* Regression 6: a follower acknowledges only what it has persisted. */
static void test_follower_acks_entries_only_after_persisting(void) {
    lone n = lone_new(1);
    raft_entry ents[2] = {{.term = 1, .index = 1}, {.term = 1, .index = 2}};
    raft_msg app = {.type = RAFT_MSG_APPEND,
                    .from = 2,
                    .to = 1,
                    .term = 1,
                    .n_entries = 2,
                    .entries = ents,
                    .commit = 0};
    raft_ready rd;

    CU_ASSERT_EQUAL(raft_step(n.r, &app), RAFT_OK);
    CU_ASSERT_EQUAL_FATAL(raft_ready_get(n.r, &rd), RAFT_OK);
    CU_ASSERT_EQUAL(rd.n_entries, 2);
    CU_ASSERT_EQUAL(rd.n_messages, 0);
    CU_ASSERT_EQUAL_FATAL(rd.n_messages_after_persist, 1);
    CU_ASSERT_EQUAL(rd.messages_after_persist[0].type, RAFT_MSG_APPEND_RESP);
    CU_ASSERT_EQUAL(rd.messages_after_persist[0].index, 2);
    /* Crash before persisting: nothing was acknowledged, nothing is kept. */
    lone_restart(&n);
    CU_ASSERT_EQUAL(raft_last_index(n.r), 0);
    lone_free(&n);
}

static void test_leader_counts_itself_only_once_persisted(void) {
    c = cluster_new(1, 1, 3);
    run_ticks(25);
    CU_ASSERT_EQUAL_FATAL(raft_get_role(node(1)), RAFT_LEADER);
    raft_index_t before = commit_of(1);
    CU_ASSERT_EQUAL(cluster_propose(c, 1, "x"), RAFT_OK);
    /* Taken but not yet persisted: even a group of one must not commit. */
    cluster_ready_begin(c, &c->nodes[0]);
    CU_ASSERT_EQUAL(commit_of(1), before);
    cluster_ready_finish(c, &c->nodes[0]);
    CU_ASSERT_EQUAL(commit_of(1), before + 1);
}

/* ---- replication ---- */

static void test_proposals_commit_and_apply_everywhere(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    propose_n(1, 100);
    cluster_stabilize(c, 200);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(c->nodes[i].applied, 101);
        CU_ASSERT_EQUAL(commit_of(c->nodes[i].id), 101);
    }
}

static void test_appends_are_pipelined_within_the_inflight_window(void) {
    c = cluster_new(3, 3, 1);
    c->base.max_entries_per_msg = 1;
    cluster_crash(c, 1);
    cluster_start(c, 1);
    cluster_elect(c, 1);
    /* Each proposal goes out at once, without waiting for acks, until the
     * window of max_inflight_msgs is full. */
    propose_n(1, 20);
    cluster_handle_ready(c, &c->nodes[0]);
    int appends = queued(RAFT_MSG_APPEND, 1, 2);
    CU_ASSERT(appends > 1);
    CU_ASSERT(appends <= (int)c->base.max_inflight_msgs);
    cluster_stabilize(c, 500);
    CU_ASSERT_EQUAL(commit_of(2), 21);
}

static void test_fast_back_off_skips_conflicting_terms(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    /* Leader 1, cut off, takes 50 entries nobody else gets. */
    cluster_isolate(c, 1, true);
    propose_n(1, 50);
    cluster_stabilize(c, 10);
    /* 2 and 3 elect 2, which writes entries of its own term. */
    for (int i = 0; i < 3 * c->base.election_ticks; i++) {
        raft_tick(node(2));
        raft_tick(node(3));
        cluster_stabilize(c, 50);
        if (raft_get_role(node(2)) == RAFT_LEADER)
            break;
    }
    CU_ASSERT_EQUAL_FATAL(raft_get_role(node(2)), RAFT_LEADER);
    propose_n(2, 5);
    cluster_stabilize(c, 50);
    c->append_rejects = 0;
    cluster_isolate(c, 1, false);
    run_ticks(5);
    /* One rejection names the conflicting term's start; no walk of 50. */
    CU_ASSERT(c->append_rejects <= 3);
    CU_ASSERT_EQUAL(raft_last_index(node(1)), raft_last_index(node(2)));
    CU_ASSERT_EQUAL(commit_of(1), commit_of(2));
}

static void test_uncommitted_bytes_bound_drops_proposals(void) {
    c = cluster_new(3, 3, 1);
    c->base.max_uncommitted_bytes = 100;
    cluster_crash(c, 1);
    cluster_start(c, 1);
    cluster_elect(c, 1);
    cluster_isolate(c, 1, true);
    char big[60];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CU_ASSERT_EQUAL(cluster_propose(c, 1, big), RAFT_OK);
    CU_ASSERT_EQUAL(cluster_propose(c, 1, big), RAFT_ERR_PROPOSAL_DROPPED);
    cluster_isolate(c, 1, false);
    cluster_stabilize(c, 50);
    /* Once applied, the budget is free again. */
    CU_ASSERT_EQUAL(cluster_propose(c, 1, big), RAFT_OK);
}

/* ---- ReadIndex ---- */

static void test_read_index_confirmed_by_one_quorum_round(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    propose_n(1, 3);
    cluster_stabilize(c, 50);
    c->n_reads = 0;
    uint64_t heartbeats = c->sent[RAFT_MSG_HEARTBEAT];
    for (uint64_t id = 1; id <= 10; id++)
        CU_ASSERT_EQUAL(raft_read_index(node(1), id), RAFT_OK);
    cluster_stabilize(c, 50);
    /* Ten reads, one round: one heartbeat per follower. */
    CU_ASSERT_EQUAL(c->sent[RAFT_MSG_HEARTBEAT] - heartbeats, 2);
    CU_ASSERT_EQUAL(reads_of(1, RAFT_OK), 10);
    for (size_t i = 0; i < c->n_reads; i++)
        CU_ASSERT_EQUAL(c->reads[i].index, commit_of(1));
}

/* Regression 2: a new leader serves no ReadIndex before an entry of its term
 * commits; it answers with that commit index once it does. */
static void test_new_leader_holds_reads_until_its_entry_commits(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    propose_n(1, 5);
    cluster_stabilize(c, 50);
    elect_without_commit(2);
    raft_index_t noop = raft_last_index(node(2));
    c->n_reads = 0;
    CU_ASSERT_EQUAL(raft_read_index(node(2), 42), RAFT_OK);
    cluster_stabilize(c, 20);
    CU_ASSERT_EQUAL(reads_of(2, RAFT_OK), 0);
    cluster_isolate(c, 2, false);
    tick_node(2, 3); /* heartbeats bring the followers back */
    CU_ASSERT_EQUAL_FATAL(reads_of(2, RAFT_OK), 1);
    CU_ASSERT(c->reads[0].index >= noop);
}

/* Regression 3: an answer to an old round must not release a newer read. */
static void test_old_round_answer_does_not_release_newer_read(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    CU_ASSERT_EQUAL(raft_read_index(node(1), 1), RAFT_OK);
    cluster_stabilize(c, 50);
    CU_ASSERT_EQUAL(reads_of(1, RAFT_OK), 1);
    cluster_isolate(c, 1, true);
    CU_ASSERT_EQUAL(raft_read_index(node(1), 2), RAFT_OK);
    cluster_stabilize(c, 10);
    /* Replay follower 2's answer to the first round. */
    raft_msg old = {.type = RAFT_MSG_HEARTBEAT_RESP,
                    .from = 2,
                    .to = 1,
                    .term = raft_term(node(1)),
                    .context = 1};
    raft_step(node(1), &old);
    cluster_stabilize(c, 10);
    CU_ASSERT_EQUAL(reads_of(1, RAFT_OK), 1);
}

/* Regression 4: a partitioned leader must not serve reads once the majority
 * has moved on; its waiting reads fail instead. */
static void test_partitioned_leader_serves_no_reads(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    cluster_isolate(c, 1, true);
    c->n_reads = 0;
    CU_ASSERT_EQUAL(raft_read_index(node(1), 7), RAFT_OK);
    for (int i = 0; i < 4 * c->base.election_ticks; i++) {
        cluster_tick_all(c);
        cluster_stabilize(c, 50);
    }
    CU_ASSERT_NOT_EQUAL(cluster_leader(c), 1);
    CU_ASSERT_EQUAL(reads_of(1, RAFT_OK), 0);
    CU_ASSERT_EQUAL(reads_of(1, RAFT_ERR_READ_DROPPED), 1);
}

static void test_pending_reads_bounded(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    cluster_isolate(c, 1, true);
    for (uint64_t id = 0; id < RAFT_READS_PENDING_MAX; id++)
        CU_ASSERT_EQUAL_FATAL(raft_read_index(node(1), id), RAFT_OK);
    CU_ASSERT_EQUAL(raft_read_index(node(1), 99999), RAFT_ERR_BUSY);
}

/* ---- learners and membership ---- */

static void test_learner_gets_log_but_never_campaigns(void) {
    c = cluster_new(4, 3, 1); /* node 4 is a learner */
    cluster_elect(c, 1);
    propose_n(1, 10);
    cluster_stabilize(c, 100);
    CU_ASSERT_EQUAL(c->nodes[3].applied, 11);
    cluster_isolate(c, 1, true);
    tick_node(4, 100);
    CU_ASSERT_EQUAL(raft_get_role(node(4)), RAFT_FOLLOWER);
    /* Its acks do not count: 1 and 4 alone are no quorum of voters. */
    cluster_isolate(c, 1, false);
    cluster_isolate(c, 2, true);
    cluster_isolate(c, 3, true);
    propose_n(1, 1);
    cluster_stabilize(c, 50);
    CU_ASSERT_EQUAL(commit_of(1), 11);
}

static raft_index_t change_members(raft_id_t leader, raft_change_type type, raft_id_t id) {
    raft_conf_change cc = {.n_changes = 1, .changes = {{type, id}}};
    raft_index_t index = 0;
    CU_ASSERT_EQUAL(raft_propose_conf_change(node(leader), &cc, &index), RAFT_OK);
    return index;
}

static void test_learner_promoted_through_joint_consensus(void) {
    c = cluster_new(4, 3, 1);
    cluster_elect(c, 1);
    change_members(1, RAFT_CHANGE_ADD_VOTER, 4);
    cluster_stabilize(c, 200);
    /* Entered and left the joint configuration by itself. */
    const raft_conf_state *conf = raft_conf(node(1));
    CU_ASSERT_EQUAL(conf->n_voters, 4);
    CU_ASSERT_EQUAL(conf->n_voters_outgoing, 0);
    CU_ASSERT_EQUAL(conf->n_learners, 0);
    CU_ASSERT_EQUAL(raft_conf(node(4))->n_voters, 4);
    /* Now 4 counts: with 2 and 3 cut off, 1 and 4 are 2 of 4, not a quorum;
     * with only 3 cut off, 1, 2 and 4 are. */
    cluster_isolate(c, 3, true);
    raft_index_t before = commit_of(1);
    propose_n(1, 1);
    cluster_stabilize(c, 50);
    CU_ASSERT_EQUAL(commit_of(1), before + 1);
}

static void test_one_membership_change_at_a_time(void) {
    c = cluster_new(4, 3, 1);
    cluster_elect(c, 1);
    change_members(1, RAFT_CHANGE_ADD_VOTER, 4);
    raft_conf_change again = {.n_changes = 1, .changes = {{RAFT_CHANGE_REMOVE, 3}}};
    raft_index_t index;
    CU_ASSERT_EQUAL(raft_propose_conf_change(node(1), &again, &index),
                    RAFT_ERR_CONF_CHANGE_PENDING);
    raft_conf_change empty_voters = {.n_changes = 4,
                                     .changes = {{RAFT_CHANGE_REMOVE, 1},
                                                 {RAFT_CHANGE_REMOVE, 2},
                                                 {RAFT_CHANGE_REMOVE, 3},
                                                 {RAFT_CHANGE_REMOVE, 4}}};
    cluster_stabilize(c, 200);
    CU_ASSERT_EQUAL(raft_propose_conf_change(node(1), &empty_voters, &index), RAFT_ERR_INVALID);
}

static void test_conf_change_context_is_bounded(void) {
    static uint8_t context[RAFT_CONF_CONTEXT_MAX + 1];
    raft_conf_change cc = {.n_changes = 1,
                           .changes = {{RAFT_CHANGE_ADD_LEARNER, 4}},
                           .context = context,
                           .context_len = sizeof(context)};
    raft_index_t index;

    c = cluster_new(4, 3, 1);
    cluster_elect(c, 1);
    raft_index_t last = raft_last_index(node(1));
    CU_ASSERT_EQUAL(raft_propose_conf_change(node(1), &cc, &index), RAFT_ERR_INVALID);
    CU_ASSERT_EQUAL(raft_last_index(node(1)), last);
    /* Refused without a trace: the largest context allowed goes through. */
    cc.context_len = RAFT_CONF_CONTEXT_MAX;
    CU_ASSERT_EQUAL(raft_propose_conf_change(node(1), &cc, &index), RAFT_OK);
    CU_ASSERT_EQUAL(index, last + 1);
    cluster_stabilize(c, 200);
    CU_ASSERT_EQUAL(raft_conf(node(1))->n_learners, 1);
}

/* Regression 7: a node with a committed but unapplied membership change does
 * not campaign on the old membership. */
static void test_no_campaign_with_unapplied_membership_change(void) {
    c = cluster_new(4, 3, 1);
    cluster_elect(c, 1);
    change_members(1, RAFT_CHANGE_ADD_VOTER, 4);
    /* Let 2 receive and commit the change, but not apply it: its ready batch
     * is never handled. */
    for (int round = 0; round < 20; round++) {
        cluster_stabilize(c, 1);
        raft_index_t applied = c->nodes[1].applied;
        if (commit_of(2) > applied && c->nodes[1].r != NULL) {
            cluster_isolate(c, 2, true);
            break;
        }
    }
    CU_ASSERT_FATAL(commit_of(2) > raft_applied_index(node(2)));
    for (int i = 0; i < 5 * c->base.election_ticks; i++)
        raft_tick(node(2));
    CU_ASSERT_EQUAL(raft_get_role(node(2)), RAFT_FOLLOWER);
}

/* Regression 5, removed: a node taken out of the group keeps ticking and must
 * not disrupt the rest. */
static void test_removed_node_cannot_disrupt(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    change_members(1, RAFT_CHANGE_REMOVE, 3);
    cluster_stabilize(c, 200);
    CU_ASSERT_EQUAL(raft_conf(node(1))->n_voters, 2);
    raft_term_t term = raft_term(node(1));
    for (int i = 0; i < 100; i++) {
        raft_tick(node(1));
        raft_tick(node(2));
        tick_node(3, 1);
    }
    CU_ASSERT_EQUAL(raft_get_role(node(1)), RAFT_LEADER);
    CU_ASSERT_EQUAL(raft_term(node(1)), term);
}

static void test_demoted_leader_steps_down_and_group_recovers(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    change_members(1, RAFT_CHANGE_ADD_LEARNER, 1);
    cluster_stabilize(c, 200);
    run_ticks(10 * c->base.election_ticks);
    raft_id_t lead = cluster_leader(c);
    CU_ASSERT(lead == 2 || lead == 3);
    CU_ASSERT_EQUAL(raft_conf(node(lead))->n_voters, 2);
    CU_ASSERT_EQUAL(cluster_propose(c, lead, "after"), RAFT_OK);
    cluster_stabilize(c, 50);
    CU_ASSERT_EQUAL(commit_of(1), commit_of(lead)); /* the learner follows */
}

/* ---- leader transfer ---- */

static void test_leader_transfer_catches_up_target_then_hands_over(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    cluster_isolate(c, 3, true);
    propose_n(1, 20);
    cluster_stabilize(c, 50);
    cluster_isolate(c, 3, false);
    CU_ASSERT_EQUAL(raft_transfer_leader(node(1), 3), RAFT_OK);
    /* Proposals stop while the transfer runs. */
    CU_ASSERT_EQUAL(cluster_propose(c, 1, "x"), RAFT_ERR_PROPOSAL_DROPPED);
    run_ticks(5);
    CU_ASSERT_EQUAL(raft_get_role(node(3)), RAFT_LEADER);
    CU_ASSERT_EQUAL(raft_leader(node(1)), 3);
}

static void test_transfer_to_non_voter_refused_and_stale_transfer_aborted(void) {
    c = cluster_new(4, 3, 1);
    cluster_elect(c, 1);
    CU_ASSERT_EQUAL(raft_transfer_leader(node(1), 4), RAFT_ERR_INVALID);
    CU_ASSERT_EQUAL(raft_transfer_leader(node(1), 9), RAFT_ERR_INVALID);
    CU_ASSERT_EQUAL(raft_transfer_leader(node(2), 3), RAFT_ERR_NOT_LEADER);
    cluster_isolate(c, 2, true);
    CU_ASSERT_EQUAL(raft_transfer_leader(node(1), 2), RAFT_OK);
    tick_node(1, c->base.election_ticks);
    CU_ASSERT_EQUAL(raft_transferee(node(1)), RAFT_NONE);
    CU_ASSERT_EQUAL(cluster_propose(c, 1, "again"), RAFT_OK);
}

/* ---- snapshots ---- */

static void test_lagging_follower_catches_up_by_snapshot(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    cluster_isolate(c, 3, true);
    propose_n(1, 50);
    cluster_stabilize(c, 100);
    cluster_node *leader = &c->nodes[0];
    CU_ASSERT_EQUAL_FATAL(
        memory_storage_snapshot_at(leader->ms, leader->applied, &leader->conf, "state", 5),
        RAFT_OK);
    cluster_isolate(c, 3, false);
    uint64_t snapshots = c->sent[RAFT_MSG_SNAPSHOT];
    run_ticks(5);
    CU_ASSERT_EQUAL(c->sent[RAFT_MSG_SNAPSHOT] - snapshots, 1);
    CU_ASSERT_EQUAL(commit_of(3), commit_of(1));
    CU_ASSERT_EQUAL(c->nodes[2].applied, leader->applied);
    /* And it keeps up by appends afterwards. */
    propose_n(1, 3);
    cluster_stabilize(c, 50);
    CU_ASSERT_EQUAL(c->nodes[2].applied, leader->applied);
}

static void test_failed_snapshot_is_retried(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    cluster_isolate(c, 3, true);
    propose_n(1, 10);
    cluster_stabilize(c, 100);
    cluster_node *leader = &c->nodes[0];
    memory_storage_snapshot_at(leader->ms, leader->applied, &leader->conf, NULL, 0);
    /* The first snapshot is lost on the cut link (reported as failed). */
    tick_node(1, 2);
    cluster_isolate(c, 3, false);
    run_ticks(10);
    CU_ASSERT_EQUAL(commit_of(3), commit_of(1));
}

/* Regression 8: a crash between installing a snapshot and writing the log
 * after it leaves storage whose log ends before the snapshot; the node must
 * start, with its log ending at the snapshot. */
typedef struct {
    raft_index_t snapshot_index;
    raft_term_t snapshot_term;
} short_log;

static int short_initial_state(void *ctx, raft_hard_state *hs, raft_conf_state *conf) {
    short_log *s = ctx;
    *hs = (raft_hard_state){.term = s->snapshot_term, .vote = 0, .commit = s->snapshot_index};
    *conf = (raft_conf_state){.voters = {1, 2, 3}, .n_voters = 3};
    return RAFT_OK;
}

static int short_entries(void *ctx, raft_index_t lo, raft_index_t hi, uint64_t max_bytes,
                         raft_entry **out, size_t *n) {
    (void)ctx;
    (void)lo;
    (void)hi;
    (void)max_bytes;
    *out = NULL;
    *n = 0;
    return RAFT_ERR_UNAVAILABLE;
}

static int short_term(void *ctx, raft_index_t i, raft_term_t *term) {
    short_log *s = ctx;
    *term = i == s->snapshot_index ? s->snapshot_term : 0;
    return i == s->snapshot_index ? RAFT_OK : RAFT_ERR_UNAVAILABLE;
}

static raft_index_t short_first(void *ctx) {
    return ((short_log *)ctx)->snapshot_index + 1;
}

static raft_index_t short_last(void *ctx) {
    (void)ctx;
    return 5; /* the stale log's end, before the snapshot at 10 */
}

static int short_snapshot(void *ctx, raft_snapshot *snap) {
    short_log *s = ctx;
    memset(snap, 0, sizeof(*snap));
    snap->index = s->snapshot_index;
    snap->term = s->snapshot_term;
    return RAFT_OK;
}

static void test_restart_with_log_shorter_than_snapshot(void) {
    short_log s = {.snapshot_index = 10, .snapshot_term = 2};
    raft_config cfg = {
        .id = 1,
        .election_ticks = 10,
        .heartbeat_ticks = 1,
        .max_entries_per_msg = 16,
        .max_bytes_per_msg = 1 << 16,
        .max_inflight_msgs = 4,
        .storage = {&s, short_initial_state, short_entries, short_term, short_first, short_last,
                    short_snapshot},
    };
    raft *r = NULL;

    CU_ASSERT_EQUAL_FATAL(raft_new(&cfg, &r), RAFT_OK);
    CU_ASSERT_EQUAL(raft_last_index(r), 10);
    CU_ASSERT_EQUAL(raft_commit_index(r), 10);
    CU_ASSERT_EQUAL(raft_applied_index(r), 10);
    raft_term_t t = 0;
    CU_ASSERT_EQUAL(raft_term_at(r, 10, &t), RAFT_OK);
    CU_ASSERT_EQUAL(t, 2);
    raft_free(r);
}

static void test_bad_config_and_messages_refused(void) {
    raft_config cfg = {.id = 0};
    raft *r = (raft *)1;
    lone n;

    CU_ASSERT_EQUAL(raft_new(&cfg, &r), RAFT_ERR_INVALID);
    CU_ASSERT_PTR_NULL(r);
    n = lone_new(1);
    raft_msg wrong_to = {.type = RAFT_MSG_APPEND, .from = 2, .to = 3, .term = 1};
    raft_msg bad_type = {.type = (raft_msg_type)99, .from = 2, .to = 1, .term = 1};
    raft_msg from_self = {.type = RAFT_MSG_APPEND, .from = 1, .to = 1, .term = 1};
    CU_ASSERT_EQUAL(raft_step(n.r, &wrong_to), RAFT_ERR_INVALID);
    CU_ASSERT_EQUAL(raft_step(n.r, &bad_type), RAFT_ERR_INVALID);
    CU_ASSERT_EQUAL(raft_step(n.r, &from_self), RAFT_ERR_INVALID);
    CU_ASSERT_EQUAL(raft_term(n.r), 0);
    lone_free(&n);
}

static void test_conf_change_encoding_round_trips_and_rejects_garbage(void) {
    raft_conf_change cc;
    uint8_t good[] = {1, 1, RAFT_CHANGE_ADD_VOTER, 4, 0, 0, 0, 0, 0, 0, 0};
    uint8_t with_context[] = {1, 1, RAFT_CHANGE_ADD_VOTER, 4, 0, 0, 0, 0, 0, 0, 0, 'h', 'i'};
    uint8_t bad_version[] = {2, 0};
    uint8_t short_len[] = {1, 1, 0, 4};
    uint8_t zero_id[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};

    CU_ASSERT_EQUAL(raft_conf_change_decode(good, sizeof(good), &cc), RAFT_OK);
    CU_ASSERT_EQUAL(cc.n_changes, 1);
    CU_ASSERT_EQUAL(cc.changes[0].id, 4);
    CU_ASSERT_EQUAL(cc.context_len, 0);
    CU_ASSERT_EQUAL(raft_conf_change_decode(with_context, sizeof(with_context), &cc), RAFT_OK);
    CU_ASSERT_EQUAL(cc.n_changes, 1);
    CU_ASSERT_EQUAL(cc.context_len, 2);
    CU_ASSERT(cc.context != NULL && cc.context[0] == 'h' && cc.context[1] == 'i');
    CU_ASSERT_EQUAL(raft_conf_change_decode(bad_version, 2, &cc), RAFT_ERR_CORRUPT);
    CU_ASSERT_EQUAL(raft_conf_change_decode(short_len, 4, &cc), RAFT_ERR_CORRUPT);
    CU_ASSERT_EQUAL(raft_conf_change_decode(zero_id, sizeof(zero_id), &cc), RAFT_ERR_CORRUPT);
}

/* ---- found in review ---- */

/* Delivers the queued messages of a type (-1: any) to a node. */
static void deliver_where(int type, raft_id_t to) {
    for (size_t k = 0; k < c->n_msgs;) {
        raft_msg *m = &c->msgs[k].msg;
        if ((type < 0 || (int)m->type == type) && m->to == to) {
            cluster_deliver(c, k); /* moves the last message into k */
            k = 0;
            continue;
        }
        k++;
    }
}

static void ready_of(raft_id_t id) {
    cluster_node *n = &c->nodes[id - 1];
    if (n->r != NULL && raft_has_ready(n->r))
        cluster_handle_ready(c, n);
}

/* Applying a membership change inside a ready batch can make the leader step
 * down, dropping waiting reads: those answers must reach the host in the
 * next batch, not vanish (nor be written into the batch being handled). */
static void test_reads_dropped_while_applying_membership_are_answered(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    raft_conf_change cc = {.n_changes = 1, .changes = {{RAFT_CHANGE_ADD_LEARNER, 1}}};
    raft_index_t index;
    CU_ASSERT_EQUAL_FATAL(raft_propose_conf_change(node(1), &cc, &index), RAFT_OK);
    for (int i = 0; i < 200 && raft_conf(node(1))->n_voters_outgoing == 0; i++)
        cluster_stabilize(c, 1);
    CU_ASSERT_FATAL(raft_conf(node(1))->n_voters_outgoing > 0);
    raft_index_t leave = raft_last_index(node(1));
    ready_of(1); /* the leave-joint entry goes out */
    deliver_where(-1, 2);
    deliver_where(-1, 3);
    ready_of(2);
    ready_of(3); /* their acks wait in the queue */
    c->n_reads = 0;
    for (uint64_t id = 1; id <= 16; id++)
        CU_ASSERT_EQUAL(raft_read_index(node(1), id), RAFT_OK);
    ready_of(1);
    deliver_where(RAFT_MSG_HEARTBEAT, 2);
    deliver_where(RAFT_MSG_HEARTBEAT, 3);
    ready_of(2);
    ready_of(3);
    deliver_where(RAFT_MSG_HEARTBEAT_RESP, 1);
    CU_ASSERT(raft_commit_index(node(1)) < leave);
    CU_ASSERT_EQUAL(raft_read_index(node(1), 17), RAFT_OK); /* a new round, still open */
    deliver_where(RAFT_MSG_APPEND_RESP, 1);                 /* leave-joint commits */
    CU_ASSERT(raft_commit_index(node(1)) >= leave);
    ready_of(1); /* applies it: 1 is a learner now, steps down, drops read 17 */
    CU_ASSERT_NOT_EQUAL(raft_get_role(node(1)), RAFT_LEADER);
    cluster_stabilize(c, 50);
    CU_ASSERT_EQUAL(reads_of(1, RAFT_OK), 16);
    CU_ASSERT_EQUAL(reads_of(1, RAFT_ERR_READ_DROPPED), 1);
}

/* A lone voter wins at once; until its new term is on disk it must not send
 * anything, or after a crash it could win that term again with other
 * entries. */
static void test_leader_sends_nothing_before_its_term_is_persisted(void) {
    c = cluster_new(2, 1, 1); /* voter 1, learner 2 */
    cluster_elect(c, 1);
    cluster_crash(c, 1);
    cluster_start(c, 1);
    for (int i = 0; i < 100 && raft_get_role(node(1)) != RAFT_LEADER; i++)
        raft_tick(node(1));
    CU_ASSERT_EQUAL_FATAL(raft_get_role(node(1)), RAFT_LEADER);
    CU_ASSERT_EQUAL(cluster_propose(c, 1, "early"), RAFT_OK);
    cluster_ready_begin(c, &c->nodes[0]);
    CU_ASSERT_EQUAL(queued(RAFT_MSG_APPEND, 1, 2), 0);
    cluster_ready_finish(c, &c->nodes[0]);
    CU_ASSERT(queued(RAFT_MSG_APPEND, 1, 2) > 0);
}

static void test_membership_over_members_max_refused(void) {
    c = cluster_new(1, 1, 1);
    run_ticks(25);
    raft_conf_change learners = {.n_changes = 15};
    for (uint32_t i = 0; i < 15; i++)
        learners.changes[i] = (raft_change){RAFT_CHANGE_ADD_LEARNER, 2 + i};
    raft_index_t index;
    CU_ASSERT_EQUAL_FATAL(raft_propose_conf_change(node(1), &learners, &index), RAFT_OK);
    cluster_stabilize(c, 100);
    CU_ASSERT_EQUAL(raft_conf(node(1))->n_learners, 15);
    /* A 17th member cannot be tracked: refused, nothing changes. */
    raft_conf_change one_more = {.n_changes = 1, .changes = {{RAFT_CHANGE_ADD_VOTER, 17}}};
    CU_ASSERT_EQUAL(raft_propose_conf_change(node(1), &one_more, &index), RAFT_ERR_INVALID);
    CU_ASSERT_EQUAL(raft_conf(node(1))->n_voters, 1);
}

static void test_append_with_misnumbered_entries_refused(void) {
    c = cluster_new(3, 3, 1);
    cluster_elect(c, 1);
    raft_term_t t = raft_term(node(2));
    raft_index_t last = raft_last_index(node(2));
    uint8_t d[4] = "xyz";
    raft_entry e = {.term = t, .index = last - 1, .len = 3, .data = d}; /* should be last+1 */
    raft_msg m = {.type = RAFT_MSG_APPEND,
                  .from = 1,
                  .to = 2,
                  .term = t,
                  .index = last,
                  .log_term = t,
                  .n_entries = 1,
                  .entries = &e};
    CU_ASSERT_EQUAL(raft_step(node(2), &m), RAFT_ERR_CORRUPT);
    CU_ASSERT_EQUAL(raft_last_index(node(2)), last);
    e.index = last + 1;
    e.term = t + 1; /* newer than the message's own term */
    CU_ASSERT_EQUAL(raft_step(node(2), &m), RAFT_ERR_CORRUPT);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"three_nodes_elect_one_leader", test_three_nodes_elect_one_leader},
        {"election_happens_by_ticks_alone", test_election_happens_by_ticks_alone},
        {"single_node_elects_itself_and_commits", test_single_node_elects_itself_and_commits},
        {"proposals_without_leadership_fail_fast", test_proposals_without_leadership_fail_fast},
        {"pre_vote_keeps_term_of_isolated_node", test_pre_vote_keeps_term_of_isolated_node},
        {"rejoining_node_does_not_disrupt_leader", test_rejoining_node_does_not_disrupt_leader},
        {"check_quorum_leader_steps_down_when_cut_off",
         test_check_quorum_leader_steps_down_when_cut_off},
        {"vote_is_persisted_before_reply_and_never_given_twice",
         test_vote_is_persisted_before_reply_and_never_given_twice},
        {"vote_refused_to_candidate_with_stale_log", test_vote_refused_to_candidate_with_stale_log},
        {"follower_acks_entries_only_after_persisting",
         test_follower_acks_entries_only_after_persisting},
        {"leader_counts_itself_only_once_persisted", test_leader_counts_itself_only_once_persisted},
        {"proposals_commit_and_apply_everywhere", test_proposals_commit_and_apply_everywhere},
        {"appends_are_pipelined_within_the_inflight_window",
         test_appends_are_pipelined_within_the_inflight_window},
        {"fast_back_off_skips_conflicting_terms", test_fast_back_off_skips_conflicting_terms},
        {"uncommitted_bytes_bound_drops_proposals", test_uncommitted_bytes_bound_drops_proposals},
        {"read_index_confirmed_by_one_quorum_round", test_read_index_confirmed_by_one_quorum_round},
        {"new_leader_holds_reads_until_its_entry_commits",
         test_new_leader_holds_reads_until_its_entry_commits},
        {"old_round_answer_does_not_release_newer_read",
         test_old_round_answer_does_not_release_newer_read},
        {"partitioned_leader_serves_no_reads", test_partitioned_leader_serves_no_reads},
        {"pending_reads_bounded", test_pending_reads_bounded},
        {"learner_gets_log_but_never_campaigns", test_learner_gets_log_but_never_campaigns},
        {"learner_promoted_through_joint_consensus", test_learner_promoted_through_joint_consensus},
        {"one_membership_change_at_a_time", test_one_membership_change_at_a_time},
        {"no_campaign_with_unapplied_membership_change",
         test_no_campaign_with_unapplied_membership_change},
        {"removed_node_cannot_disrupt", test_removed_node_cannot_disrupt},
        {"demoted_leader_steps_down_and_group_recovers",
         test_demoted_leader_steps_down_and_group_recovers},
        {"leader_transfer_catches_up_target_then_hands_over",
         test_leader_transfer_catches_up_target_then_hands_over},
        {"transfer_to_non_voter_refused_and_stale_transfer_aborted",
         test_transfer_to_non_voter_refused_and_stale_transfer_aborted},
        {"lagging_follower_catches_up_by_snapshot", test_lagging_follower_catches_up_by_snapshot},
        {"failed_snapshot_is_retried", test_failed_snapshot_is_retried},
        {"restart_with_log_shorter_than_snapshot", test_restart_with_log_shorter_than_snapshot},
        {"bad_config_and_messages_refused", test_bad_config_and_messages_refused},
        {"conf_change_encoding_round_trips_and_rejects_garbage",
         test_conf_change_encoding_round_trips_and_rejects_garbage},
        {"conf_change_context_is_bounded", test_conf_change_context_is_bounded},
        {"reads_dropped_while_applying_membership_are_answered",
         test_reads_dropped_while_applying_membership_are_answered},
        {"leader_sends_nothing_before_its_term_is_persisted",
         test_leader_sends_nothing_before_its_term_is_persisted},
        {"membership_over_members_max_refused", test_membership_over_members_max_refused},
        {"append_with_misnumbered_entries_refused", test_append_with_misnumbered_entries_refused},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("raft", tests, setup, teardown);
}
