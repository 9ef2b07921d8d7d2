/* transfer: handing leadership to a chosen voter (Raft thesis 3.10).
 *
 * The leader stops taking proposals, brings the target's log up to date, then
 * sends it TIMEOUT_NOW; the target campaigns at once, skipping pre-vote and
 * the other members' leader lease. A transfer that has not finished within an
 * election timeout is abandoned (raft_tick_leader).
 */
#include "raft/core.h"

void raft_abort_transfer(raft *r) {
    r->lead_transferee = RAFT_NONE;
}

void raft_send_timeout_now(raft *r, raft_id_t to) {
    raft_msg m = {.type = RAFT_MSG_TIMEOUT_NOW, .to = to};
    raft_send(r, &m);
}

void raft_maybe_finish_transfer(raft *r, raft_id_t from) {
    raft_progress *pr = raft_progress_of(r, from);

    if (r->lead_transferee == from && pr != NULL && pr->match == raft_log_last_index(&r->log)) {
        raft_logf(r, RAFT_LOG_INFO, "transfer target %llu caught up: sending timeout-now",
                  (unsigned long long)from);
        raft_send_timeout_now(r, from);
    }
}

int raft_transfer_leader(raft *r, raft_id_t target) {
    raft_progress *pr = raft_progress_of(r, target);

    if (r->role != RAFT_LEADER)
        return RAFT_ERR_NOT_LEADER;
    if (target == r->id)
        return RAFT_OK; /* already there */
    if (pr == NULL || !raft_conf_is_voter(&r->conf, target))
        return RAFT_ERR_INVALID;
    if (r->lead_transferee == target)
        return RAFT_OK;

    raft_logf(r, RAFT_LOG_INFO, "transferring leadership to %llu", (unsigned long long)target);
    r->lead_transferee = target;
    r->election_elapsed = 0; /* the transfer gets one election timeout */
    if (pr->match == raft_log_last_index(&r->log))
        raft_send_timeout_now(r, target);
    else
        raft_maybe_send_append(r, target, true);
    return RAFT_OK;
}
