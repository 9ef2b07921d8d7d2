/* quorum: majorities over a membership, joint or not.
 *
 * Under joint consensus (Raft thesis 4.3) a decision needs a majority of the
 * incoming voters and, separately, of the outgoing ones. An empty side (no
 * joint configuration) agrees to everything.
 */
#include <stdlib.h>

#include "raft/core.h"

bool raft_conf_has(const raft_id_t *ids, uint32_t n, raft_id_t id) {
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] == id)
            return true;
    }
    return false;
}

bool raft_conf_is_voter(const raft_conf_state *c, raft_id_t id) {
    return raft_conf_has(c->voters, c->n_voters, id) ||
           raft_conf_has(c->voters_outgoing, c->n_voters_outgoing, id);
}

bool raft_conf_is_member(const raft_conf_state *c, raft_id_t id) {
    return raft_conf_is_voter(c, id) || raft_conf_has(c->learners, c->n_learners, id) ||
           raft_conf_has(c->learners_next, c->n_learners_next, id);
}

bool raft_conf_is_joint(const raft_conf_state *c) {
    return c->n_voters_outgoing > 0;
}

static raft_vote_result raft_majority_vote(const raft_id_t *ids, uint32_t n,
                                           int (*granted)(void *, raft_id_t), void *ctx) {
    uint32_t yes = 0, no = 0, need = n / 2 + 1;

    if (n == 0)
        return RAFT_VOTE_WON;
    for (uint32_t i = 0; i < n; i++) {
        int g = granted(ctx, ids[i]);
        if (g == 1)
            yes++;
        else if (g == 0)
            no++;
    }
    if (yes >= need)
        return RAFT_VOTE_WON;
    if (n - no < need)
        return RAFT_VOTE_LOST;
    return RAFT_VOTE_PENDING;
}

raft_vote_result raft_quorum_vote(const raft_conf_state *c, int (*granted)(void *, raft_id_t),
                                  void *ctx) {
    raft_vote_result in = raft_majority_vote(c->voters, c->n_voters, granted, ctx);
    raft_vote_result out =
        raft_majority_vote(c->voters_outgoing, c->n_voters_outgoing, granted, ctx);

    if (in == RAFT_VOTE_WON && out == RAFT_VOTE_WON)
        return RAFT_VOTE_WON;
    if (in == RAFT_VOTE_LOST || out == RAFT_VOTE_LOST)
        return RAFT_VOTE_LOST;
    return RAFT_VOTE_PENDING;
}

static int raft_index_desc(const void *a, const void *b) {
    raft_index_t x = *(const raft_index_t *)a, y = *(const raft_index_t *)b;
    return (x < y) - (x > y);
}

static raft_index_t raft_majority_committed(const raft_id_t *ids, uint32_t n,
                                            raft_index_t (*match)(void *, raft_id_t), void *ctx) {
    raft_index_t m[RAFT_MEMBERS_MAX];

    if (n == 0)
        return UINT64_MAX;
    for (uint32_t i = 0; i < n; i++)
        m[i] = match(ctx, ids[i]);
    qsort(m, n, sizeof(m[0]), raft_index_desc);
    /* The highest index that n/2+1 voters have reached. */
    return m[n / 2];
}

raft_index_t raft_quorum_committed(const raft_conf_state *c,
                                   raft_index_t (*match)(void *, raft_id_t), void *ctx) {
    raft_index_t in = raft_majority_committed(c->voters, c->n_voters, match, ctx);
    raft_index_t out =
        raft_majority_committed(c->voters_outgoing, c->n_voters_outgoing, match, ctx);
    raft_index_t committed = in < out ? in : out;
    return committed == UINT64_MAX ? 0 : committed;
}
