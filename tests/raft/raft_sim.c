/* raft_sim: many seeded runs of a Raft cluster on a hostile simulated network.
 *
 * Each seed drives K nodes through M random steps: ticks; messages delivered
 * out of order, duplicated or dropped; partitions that split the group,
 * isolate the leader, and heal; crashes that lose everything unpersisted
 * (including a ready batch caught between being taken and being persisted);
 * restarts; proposals, ReadIndex requests, leader transfers, membership
 * changes and log compactions. After every step the invariants are checked:
 *   - at most one leader per term;
 *   - log matching (every 50 steps, over a window of recent entries);
 *   - leader completeness: a leader holds every committed entry;
 *   - state machine safety: every node applies the same entry at an index, so
 *     no committed entry is ever lost or changed (this also covers log
 *     matching on the committed prefix);
 *   - every ReadIndex answer is at least the highest commit index any node
 *     had when the read began, and every read is answered in the end (or its
 *     node crashed, which in a real host fails the client's call).
 * After the last step every fault heals, and a leader must emerge and commit
 * a proposal within a bounded number of ticks (liveness).
 *
 *   raft_sim --seeds N --first-seed S --nodes K --steps M [--verbose]
 *
 * A failing seed is printed with its step; `--first-seed SEED --seeds 1`
 * replays it exactly.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/raft/cluster.h"

/* Ticks allowed after healing for a leader to emerge and commit. */
#define SIM_LIVENESS_TICKS 400
#define SIM_READS_MAX      100000

typedef struct {
    uint64_t seeds;
    uint64_t first_seed;
    int nodes;
    uint64_t steps;
    bool verbose;
} sim_options;

typedef struct {
    uint64_t rng;
    cluster *c;
    uint64_t next_read_id;
    raft_index_t read_bound[SIM_READS_MAX]; /* by request id */
    raft_id_t read_node[SIM_READS_MAX];     /* who took the read */
    bool read_done[SIM_READS_MAX];          /* answered, or its node crashed */
    raft_index_t max_commit;
    uint64_t commits;
    uint64_t proposals;
} sim;

static uint64_t sim_rand(sim *s) {
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t sim_below(sim *s, uint64_t n) {
    return n ? sim_rand(s) % n : 0;
}

static cluster_node *sim_random_node(sim *s) {
    return &s->c->nodes[sim_below(s, (uint64_t)s->c->n)];
}

/* A node may be stepped or ticked only between ready batches. */
static bool sim_node_idle(const cluster_node *n) {
    return n->r != NULL && !n->ready_pending;
}

static void sim_track_commit(sim *s) {
    for (int i = 0; i < s->c->n; i++) {
        raft *r = s->c->nodes[i].r;
        if (r != NULL && raft_commit_index(r) > s->max_commit)
            s->max_commit = raft_commit_index(r);
    }
}

static void sim_check_reads(sim *s) {
    cluster *c = s->c;

    for (size_t i = 0; i < c->n_reads; i++) {
        raft_read_state *rs = &c->reads[i];
        if (rs->request_id >= SIM_READS_MAX)
            continue;
        if (s->read_done[rs->request_id])
            cluster_violation(c, "read %llu answered twice", (unsigned long long)rs->request_id);
        s->read_done[rs->request_id] = true;
        if (rs->err != RAFT_OK)
            continue;
        if (rs->index < s->read_bound[rs->request_id])
            cluster_violation(c, "read %llu answered at index %llu, below commit %llu at its start",
                              (unsigned long long)rs->request_id, (unsigned long long)rs->index,
                              (unsigned long long)s->read_bound[rs->request_id]);
    }
    c->n_reads = 0;
}

/* ---- actions ---- */

static void sim_deliver(sim *s, bool duplicate) {
    cluster *c = s->c;
    if (c->n_msgs == 0)
        return;
    size_t k = (size_t)sim_below(s, c->n_msgs);
    cluster_node *to = &c->nodes[c->msgs[k].msg.to - 1];
    if (!sim_node_idle(to))
        return;
    if (duplicate && !c->cut[c->msgs[k].msg.from][c->msgs[k].msg.to])
        raft_step(to->r, &c->msgs[k].msg); /* the copy stays queued */
    else
        cluster_deliver(c, k);
}

static void sim_drop(sim *s) {
    cluster *c = s->c;
    if (c->n_msgs == 0)
        return;
    size_t k = (size_t)sim_below(s, c->n_msgs);
    /* Deliver to a crashed node = lose it. */
    raft_id_t to = c->msgs[k].msg.to;
    raft *saved = c->nodes[to - 1].r;
    c->nodes[to - 1].r = NULL;
    cluster_deliver(c, k);
    c->nodes[to - 1].r = saved;
}

static void sim_ready(sim *s, cluster_node *n) {
    if (n->r == NULL)
        return;
    if (n->ready_pending)
        cluster_ready_finish(s->c, n);
    else if (raft_has_ready(n->r))
        cluster_ready_begin(s->c, n);
}

static raft *sim_leader(sim *s) {
    raft_id_t id = cluster_leader(s->c);
    cluster_node *n = id ? &s->c->nodes[id - 1] : NULL;
    return n && sim_node_idle(n) ? n->r : NULL;
}

static void sim_propose(sim *s) {
    raft *r = sim_leader(s);
    char text[32];
    raft_index_t index;

    if (r == NULL)
        return;
    snprintf(text, sizeof(text), "p%llu", (unsigned long long)s->proposals++);
    raft_propose(r, text, (uint32_t)strlen(text), &index);
}

static void sim_read(sim *s) {
    raft *r = sim_leader(s);

    if (r == NULL || s->next_read_id >= SIM_READS_MAX)
        return;
    sim_track_commit(s);
    s->read_bound[s->next_read_id] = s->max_commit;
    s->read_node[s->next_read_id] = raft_id(r);
    int rc = raft_read_index(r, s->next_read_id);
    if (s->c->logging)
        fprintf(stderr, "[step %llu] read %llu at node %llu term %llu commit %llu: %s\n",
                (unsigned long long)s->c->now, (unsigned long long)s->next_read_id,
                (unsigned long long)raft_id(r), (unsigned long long)raft_term(r),
                (unsigned long long)raft_commit_index(r), raft_err_message(rc));
    if (rc != RAFT_OK)
        s->read_done[s->next_read_id] = true; /* refused at once: answered */
    s->next_read_id++;
}

/* A crash loses the node's waiting reads; its clients see the failure. */
static void sim_crash(sim *s, raft_id_t id) {
    cluster_crash(s->c, id);
    for (uint64_t i = 0; i < s->next_read_id; i++) {
        if (s->read_node[i] == id)
            s->read_done[i] = true;
    }
}

static void sim_check_all_reads_answered(sim *s) {
    for (uint64_t i = 0; i < s->next_read_id; i++) {
        if (!s->read_done[i]) {
            cluster_violation(s->c, "read %llu at node %llu was never answered",
                              (unsigned long long)i, (unsigned long long)s->read_node[i]);
            return;
        }
    }
}

static void sim_partition(sim *s) {
    cluster *c = s->c;

    memset(c->cut, 0, sizeof(c->cut));
    switch (sim_below(s, 3)) {
    case 0: { /* isolate the leader */
        raft_id_t lead = cluster_leader(c);
        if (lead != RAFT_NONE)
            cluster_isolate(c, lead, true);
        break;
    }
    case 1: /* isolate anyone */
        cluster_isolate(c, (raft_id_t)(sim_below(s, (uint64_t)c->n) + 1), true);
        break;
    default: /* split in two random sides */
        for (int a = 1; a <= c->n; a++) {
            for (int b = a + 1; b <= c->n; b++) {
                if (((s->rng >> a) & 1) != ((s->rng >> b) & 1))
                    cluster_cut(c, (raft_id_t)a, (raft_id_t)b, true);
            }
        }
    }
}

static void sim_compact(sim *s, cluster_node *n) {
    (void)s;
    if (n->r == NULL || n->ready_pending || n->applied < 4)
        return;
    /* At the applied index exactly: the membership the host holds is the one
     * in force there. */
    memory_storage_snapshot_at(n->ms, n->applied, &n->conf, NULL, 0);
}

static bool sim_is_voter(const raft_conf_state *conf, raft_id_t id) {
    for (uint32_t i = 0; i < conf->n_voters; i++) {
        if (conf->voters[i] == id)
            return true;
    }
    return false;
}

/* A random membership change from the leader: promote, demote, remove or
 * (re-)add a member, sometimes two at once. */
static void sim_conf_change(sim *s) {
    raft *r = sim_leader(s);
    raft_conf_change cc = {0};
    raft_index_t index;

    if (r == NULL)
        return;
    int changes = 1 + (int)sim_below(s, 2);
    for (int i = 0; i < changes; i++) {
        raft_id_t id = (raft_id_t)(sim_below(s, (uint64_t)s->c->n) + 1);
        const raft_conf_state *conf = raft_conf(r);
        bool voter = sim_is_voter(conf, id);
        raft_change_type type;
        if (voter)
            type = sim_below(s, 2) ? RAFT_CHANGE_ADD_LEARNER : RAFT_CHANGE_REMOVE;
        else
            type = sim_below(s, 3) ? RAFT_CHANGE_ADD_VOTER : RAFT_CHANGE_ADD_LEARNER;
        cc.changes[cc.n_changes++] = (raft_change){type, id};
    }
    raft_propose_conf_change(r, &cc, &index);
}

static void sim_transfer(sim *s) {
    raft *r = sim_leader(s);
    if (r != NULL)
        raft_transfer_leader(r, (raft_id_t)(sim_below(s, (uint64_t)s->c->n) + 1));
}

/* Weights of the actions of one step, in thousandths. */
enum {
    SIM_W_DELIVER = 300,
    SIM_W_DUPLICATE = 10,
    SIM_W_DROP = 20,
    SIM_W_READY = 250,
    SIM_W_TICK = 200,
    SIM_W_PROPOSE = 120,
    SIM_W_READ = 40,
    SIM_W_CRASH = 4,
    SIM_W_RESTART = 20,
    SIM_W_PARTITION = 6,
    SIM_W_HEAL = 15,
    SIM_W_COMPACT = 10,
    SIM_W_TRANSFER = 5,
    SIM_W_CONF_CHANGE = 5,
};

static void sim_step(sim *s) {
    static const int weights[] = {
        SIM_W_DELIVER, SIM_W_DUPLICATE, SIM_W_DROP,     SIM_W_READY,       SIM_W_TICK,
        SIM_W_PROPOSE, SIM_W_READ,      SIM_W_CRASH,    SIM_W_RESTART,     SIM_W_PARTITION,
        SIM_W_HEAL,    SIM_W_COMPACT,   SIM_W_TRANSFER, SIM_W_CONF_CHANGE,
    };
    int total = 0, roll, action = 0;
    cluster *c = s->c;
    cluster_node *n = sim_random_node(s);

    for (size_t i = 0; i < sizeof(weights) / sizeof(weights[0]); i++)
        total += weights[i];
    roll = (int)sim_below(s, (uint64_t)total);
    while (roll >= weights[action])
        roll -= weights[action++];

    switch (action) {
    case 0:
        sim_deliver(s, false);
        break;
    case 1:
        sim_deliver(s, true);
        break;
    case 2:
        sim_drop(s);
        break;
    case 3:
        sim_ready(s, n);
        break;
    case 4:
        if (sim_node_idle(n))
            raft_tick(n->r);
        break;
    case 5:
        sim_propose(s);
        break;
    case 6:
        sim_read(s);
        break;
    case 7:
        if (n->r != NULL)
            sim_crash(s, n->id);
        break;
    case 8:
        if (n->r == NULL)
            cluster_start(c, n->id);
        break;
    case 9:
        sim_partition(s);
        break;
    case 10:
        memset(c->cut, 0, sizeof(c->cut));
        break;
    case 11:
        sim_compact(s, n);
        break;
    case 12:
        sim_transfer(s);
        break;
    default:
        sim_conf_change(s);
        break;
    }
}

/* Heals everything and demands progress within a bounded number of ticks. */
static void sim_check_liveness(sim *s) {
    cluster *c = s->c;

    memset(c->cut, 0, sizeof(c->cut));
    for (int i = 0; i < c->n; i++) {
        cluster_node *n = &c->nodes[i];
        if (n->ready_pending)
            cluster_ready_finish(c, n);
        cluster_start(c, n->id);
    }
    raft_index_t target = 0;
    raft_term_t target_term = 0;
    for (int t = 0; t < SIM_LIVENESS_TICKS && c->violation[0] == '\0'; t++) {
        cluster_tick_all(c);
        cluster_stabilize(c, 100);
        sim_check_reads(s);
        raft_id_t lead = cluster_leader(c);
        if (lead == RAFT_NONE)
            continue;
        raft *r = cluster_raft(c, lead);
        /* Propose (again, when a new leader may have dropped it). */
        if (target == 0 || raft_term(r) != target_term) {
            raft_index_t index;
            if (raft_propose(r, "liveness", 8, &index) == RAFT_OK) {
                target = index;
                target_term = raft_term(r);
            }
            continue;
        }
        raft_term_t t_at;
        if (raft_commit_index(r) >= target && c->nodes[lead - 1].applied >= target &&
            raft_term_at(r, target, &t_at) == RAFT_OK && t_at == target_term) {
            /* A few heartbeat rounds more, for reads still in flight. */
            for (int k = 0; k < 3 * c->base.election_ticks; k++) {
                cluster_tick_all(c);
                cluster_stabilize(c, 100);
                sim_check_reads(s);
            }
            sim_check_all_reads_answered(s);
            return;
        }
    }
    if (c->violation[0] == '\0')
        cluster_violation(c, "no leader committed a proposal within %d ticks after healing",
                          SIM_LIVENESS_TICKS);
}

/* Runs one seed; returns true when every invariant held. */
static bool sim_run(const sim_options *o, uint64_t seed, uint64_t *elections, uint64_t *commits) {
    sim *s = calloc(1, sizeof(*s));
    uint64_t step;
    bool ok;

    s->rng = seed;
    /* One seed in three starts with a learner among the nodes. */
    int voters = o->nodes > 1 && seed % 3 == 0 ? o->nodes - 1 : o->nodes;
    s->c = cluster_new(o->nodes, voters, seed);
    /* Vary the limits by seed: small appends and windows make partial
     * replication (where commit rules matter most) common. */
    s->c->base.max_entries_per_msg = 1 + (uint32_t)sim_below(s, 8);
    s->c->base.max_inflight_msgs = 1 + (uint32_t)sim_below(s, 8);
    for (int i = 0; i < s->c->n; i++) {
        /* Restart with the limits above; nothing has happened yet. */
        cluster_crash(s->c, s->c->nodes[i].id);
        cluster_start(s->c, s->c->nodes[i].id);
    }
    s->c->logging = o->verbose;
    for (step = 0; step < o->steps && s->c->violation[0] == '\0'; step++) {
        s->c->now = step;
        sim_step(s);
        cluster_check_leaders(s->c);
        if (step % 50 == 0)
            cluster_check_log_matching(s->c);
        sim_track_commit(s);
        sim_check_reads(s);
    }
    if (s->c->violation[0] == '\0') {
        sim_check_liveness(s);
        sim_check_reads(s);
    }
    ok = s->c->violation[0] == '\0';
    if (!ok)
        printf("raft_sim: seed %llu failed at step %llu: %s\n"
               "raft_sim: replay with --first-seed %llu --seeds 1 --nodes %d --steps %llu\n",
               (unsigned long long)seed, (unsigned long long)step, s->c->violation,
               (unsigned long long)seed, o->nodes, (unsigned long long)o->steps);
    *elections += s->c->elections;
    *commits += s->c->n_committed;
    cluster_free(s->c);
    free(s);
    return ok;
}

static int sim_parse(int argc, char **argv, sim_options *o) {
    static const struct option options[] = {
        {"seeds", required_argument, NULL, 's'}, {"first-seed", required_argument, NULL, 'f'},
        {"nodes", required_argument, NULL, 'n'}, {"steps", required_argument, NULL, 'm'},
        {"verbose", no_argument, NULL, 'v'},     {NULL, 0, NULL, 0},
    };
    int opt;

    *o = (sim_options){.seeds = 100, .first_seed = 1, .nodes = 3, .steps = 5000};
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            o->seeds = strtoull(optarg, NULL, 10);
            break;
        case 'f':
            o->first_seed = strtoull(optarg, NULL, 10);
            break;
        case 'n':
            o->nodes = atoi(optarg);
            break;
        case 'm':
            o->steps = strtoull(optarg, NULL, 10);
            break;
        case 'v':
            o->verbose = true;
            break;
        default:
            return -1;
        }
    }
    if (o->nodes < 1 || o->nodes > CLUSTER_NODES_MAX || o->seeds == 0 || o->steps == 0) {
        fprintf(stderr, "raft_sim: --nodes 1..%d, --seeds and --steps at least 1\n",
                CLUSTER_NODES_MAX);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    uint64_t elections = 0, commits = 0, violations = 0;
    sim_options o;

    if (sim_parse(argc, argv, &o) != 0)
        return 2;
    printf("raft_sim: seeds %llu..%llu, %d nodes, %llu steps each\n",
           (unsigned long long)o.first_seed, (unsigned long long)(o.first_seed + o.seeds - 1),
           o.nodes, (unsigned long long)o.steps);
    for (uint64_t i = 0; i < o.seeds; i++) {
        if (!sim_run(&o, o.first_seed + i, &elections, &commits))
            violations++;
    }
    printf("raft_sim: %llu seeds, %llu steps, %llu elections, %llu commits, %llu violations\n",
           (unsigned long long)o.seeds, (unsigned long long)(o.seeds * o.steps),
           (unsigned long long)elections, (unsigned long long)commits,
           (unsigned long long)violations);
    return violations == 0 ? 0 : 1;
}
