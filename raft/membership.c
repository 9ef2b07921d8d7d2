/* membership: changing who is in the group, by joint consensus (Raft thesis
 * 4.3, as etcd does it).
 *
 *   C_old --(conf change entry with changes: enter joint)--> C_old,new
 *   C_old,new --(empty conf change entry: leave joint)--> C_new
 *
 * A configuration takes effect when its entry is applied (the host calls
 * raft_apply_conf_change), not when it is appended. That is safe because only
 * one change is in flight at a time (pending_conf_index) and a node with a
 * committed but unapplied change does not campaign (election.c). Whoever leads
 * while the group is joint, with no change in flight, proposes the leave-joint
 * entry by itself (raft_maybe_auto_leave_joint, after each ready batch), so a
 * leader change in the middle never leaves the group joint.
 *
 * Wire format of a conf change entry: version byte (1), change count byte,
 * then per change a type byte and an 8-byte little-endian member id, then
 * the host's context, if any, up to the end of the entry.
 */
#include <string.h>

#include "raft/core.h"

#define RAFT_CONF_CHANGE_VERSION   1
#define RAFT_CONF_CHANGE_BYTES_MAX (2 + RAFT_CHANGES_MAX * 9 + RAFT_CONF_CONTEXT_MAX)

int raft_conf_change_encode(const raft_conf_change *cc, uint8_t *buf, uint32_t cap, uint32_t *len) {
    uint32_t n = 0;

    if (cc->n_changes > RAFT_CHANGES_MAX || cc->context_len > RAFT_CONF_CONTEXT_MAX ||
        cap < 2 + cc->n_changes * 9 + cc->context_len)
        return RAFT_ERR_INVALID;
    buf[n++] = RAFT_CONF_CHANGE_VERSION;
    buf[n++] = (uint8_t)cc->n_changes;
    for (uint32_t i = 0; i < cc->n_changes; i++) {
        buf[n++] = (uint8_t)cc->changes[i].type;
        for (int b = 0; b < 8; b++)
            buf[n++] = (uint8_t)(cc->changes[i].id >> (8 * b));
    }
    if (cc->context_len > 0)
        memcpy(buf + n, cc->context, cc->context_len);
    *len = n + cc->context_len;
    return RAFT_OK;
}

int raft_conf_change_decode(const uint8_t *data, uint32_t len, raft_conf_change *cc) {
    memset(cc, 0, sizeof(*cc));
    if (len < 2 || data[0] != RAFT_CONF_CHANGE_VERSION || data[1] > RAFT_CHANGES_MAX ||
        len < 2u + data[1] * 9u)
        return RAFT_ERR_CORRUPT;
    cc->n_changes = data[1];
    cc->context_len = len - (2u + data[1] * 9u);
    cc->context = cc->context_len > 0 ? data + 2u + data[1] * 9u : NULL;
    for (uint32_t i = 0; i < cc->n_changes; i++) {
        const uint8_t *p = data + 2 + i * 9;
        if (p[0] > RAFT_CHANGE_REMOVE)
            return RAFT_ERR_CORRUPT;
        cc->changes[i].type = (raft_change_type)p[0];
        cc->changes[i].id = 0;
        for (int b = 0; b < 8; b++)
            cc->changes[i].id |= (raft_id_t)p[1 + b] << (8 * b);
        if (cc->changes[i].id == RAFT_NONE)
            return RAFT_ERR_CORRUPT;
    }
    return RAFT_OK;
}

/* ---- applying changes to a membership ---- */

static void raft_ids_remove(raft_id_t *ids, uint32_t *n, raft_id_t id) {
    for (uint32_t i = 0; i < *n; i++) {
        if (ids[i] == id) {
            ids[i] = ids[--(*n)];
            return;
        }
    }
}

static int raft_ids_add(raft_id_t *ids, uint32_t *n, raft_id_t id) {
    if (raft_conf_has(ids, *n, id))
        return RAFT_OK;
    if (*n == RAFT_MEMBERS_MAX)
        return RAFT_ERR_INVALID;
    ids[(*n)++] = id;
    return RAFT_OK;
}

/* Applies one change to the incoming side of a joint configuration. */
static int raft_conf_apply_change(raft_conf_state *c, const raft_change *ch) {
    raft_id_t id = ch->id;

    raft_ids_remove(c->voters, &c->n_voters, id);
    raft_ids_remove(c->learners, &c->n_learners, id);
    raft_ids_remove(c->learners_next, &c->n_learners_next, id);
    switch (ch->type) {
    case RAFT_CHANGE_ADD_VOTER:
        return raft_ids_add(c->voters, &c->n_voters, id);
    case RAFT_CHANGE_ADD_LEARNER:
        /* An outgoing voter becomes a learner only when the joint
         * configuration is left; until then it still votes on that side. */
        if (raft_conf_has(c->voters_outgoing, c->n_voters_outgoing, id))
            return raft_ids_add(c->learners_next, &c->n_learners_next, id);
        return raft_ids_add(c->learners, &c->n_learners, id);
    default:
        return RAFT_OK;
    }
}

/* Distinct members across all four lists. */
static uint32_t raft_conf_member_count(const raft_conf_state *c) {
    const raft_id_t *lists[] = {c->voters, c->voters_outgoing, c->learners, c->learners_next};
    uint32_t sizes[] = {c->n_voters, c->n_voters_outgoing, c->n_learners, c->n_learners_next};
    raft_id_t seen[4 * RAFT_MEMBERS_MAX];
    uint32_t n = 0;

    for (int l = 0; l < 4; l++) {
        for (uint32_t i = 0; i < sizes[l]; i++) {
            if (!raft_conf_has(seen, n, lists[l][i]))
                seen[n++] = lists[l][i];
        }
    }
    return n;
}

static int raft_conf_enter_joint(raft_conf_state *c, const raft_conf_change *cc) {
    raft_conf_state next = *c;

    if (raft_conf_is_joint(c))
        return RAFT_ERR_INVALID;
    memcpy(next.voters_outgoing, c->voters, sizeof(c->voters));
    next.n_voters_outgoing = c->n_voters;
    for (uint32_t i = 0; i < cc->n_changes; i++) {
        int rc = raft_conf_apply_change(&next, &cc->changes[i]);
        if (rc != RAFT_OK)
            return rc;
    }
    if (next.n_voters == 0)
        return RAFT_ERR_INVALID; /* a group needs a voter */
    if (raft_conf_member_count(&next) > RAFT_MEMBERS_MAX)
        return RAFT_ERR_INVALID; /* every member needs progress tracking */
    *c = next;
    return RAFT_OK;
}

static void raft_conf_leave_joint(raft_conf_state *c) {
    for (uint32_t i = 0; i < c->n_learners_next; i++)
        raft_ids_add(c->learners, &c->n_learners, c->learners_next[i]);
    c->n_learners_next = 0;
    c->n_voters_outgoing = 0;
}

/* ---- the node's side ---- */

int raft_propose_conf_change(raft *r, const raft_conf_change *cc, raft_index_t *index) {
    uint8_t buf[RAFT_CONF_CHANGE_BYTES_MAX];
    raft_conf_state check = r->conf;
    uint32_t len;
    int rc;

    if (r->role != RAFT_LEADER)
        return RAFT_ERR_NOT_LEADER;
    if (r->lead_transferee != RAFT_NONE)
        return RAFT_ERR_PROPOSAL_DROPPED;
    if (r->pending_conf_index > r->log.applied)
        return RAFT_ERR_CONF_CHANGE_PENDING;
    /* Refuse now what applying would refuse later. */
    if (cc->n_changes == 0 ? !raft_conf_is_joint(&r->conf)
                           : raft_conf_enter_joint(&check, cc) != RAFT_OK)
        return RAFT_ERR_INVALID;
    rc = raft_conf_change_encode(cc, buf, sizeof(buf), &len);
    if (rc != RAFT_OK)
        return rc;
    rc = raft_append_entry(r, RAFT_ENTRY_CONF_CHANGE, buf, len, index);
    if (rc == RAFT_OK) {
        r->pending_conf_index = *index;
        raft_logf(r, RAFT_LOG_INFO, "proposed %s at %llu",
                  cc->n_changes ? "membership change" : "leaving joint membership",
                  (unsigned long long)*index);
    }
    return rc;
}

static void raft_after_conf_change(raft *r) {
    if (r->role != RAFT_LEADER)
        return;
    if (!raft_conf_is_voter(&r->conf, r->id)) {
        /* Removed (or demoted) leaders step down; the rest elect anew. */
        raft_logf(r, RAFT_LOG_INFO, "stepping down: no longer a voter");
        raft_become_follower(r, r->term, RAFT_NONE);
        return;
    }
    if (r->lead_transferee != RAFT_NONE && !raft_conf_is_voter(&r->conf, r->lead_transferee))
        raft_abort_transfer(r);
    /* A different quorum may commit more now, or confirm waiting reads; new
     * members need the log either way. */
    raft_maybe_commit(r);
    raft_reads_recheck(r);
    raft_broadcast_append(r);
}

int raft_apply_conf_change(raft *r, const raft_entry *entry, raft_conf_state *conf) {
    raft_conf_change cc;
    int rc;

    if (entry->type != RAFT_ENTRY_CONF_CHANGE)
        return RAFT_ERR_INVALID;
    rc = raft_conf_change_decode(entry->data, entry->len, &cc);
    if (rc != RAFT_OK)
        return rc;
    if (cc.n_changes == 0) {
        raft_conf_leave_joint(&r->conf);
    } else if ((rc = raft_conf_enter_joint(&r->conf, &cc)) != RAFT_OK) {
        /* Committed but impossible (proposed against another membership): a
         * no-op on every node alike, since all apply the same log. */
        raft_logf(r, RAFT_LOG_WARN, "ignoring membership change at %llu: %s",
                  (unsigned long long)entry->index, raft_err_message(rc));
        *conf = r->conf;
        return RAFT_OK;
    }
    rc = raft_rebuild_progress(r);
    if (rc != RAFT_OK)
        return rc;
    raft_logf(r, RAFT_LOG_INFO, "membership at %llu: %u voters, %u outgoing, %u learners",
              (unsigned long long)entry->index, r->conf.n_voters, r->conf.n_voters_outgoing,
              r->conf.n_learners);
    raft_after_conf_change(r);
    *conf = r->conf;
    return RAFT_OK;
}

void raft_maybe_auto_leave_joint(raft *r) {
    raft_conf_change leave = {.n_changes = 0};
    raft_index_t index;

    if (r->role != RAFT_LEADER || !raft_conf_is_joint(&r->conf) ||
        r->pending_conf_index > r->log.applied || r->lead_transferee != RAFT_NONE)
        return;
    raft_propose_conf_change(r, &leave, &index);
}
