/* progress: what a leader knows of each member's log.
 *
 * States (etcd's naming):
 *   PROBE      the leader does not know where the member's log ends; it sends
 *              one append per heartbeat interval and walks `next` back on
 *              rejections.
 *   REPLICATE  the member keeps up; appends are pipelined, `next` moves ahead
 *              optimistically, and at most max_inflight_msgs are in flight.
 *   SNAPSHOT   the member needs a snapshot; nothing is sent until the host
 *              reports how sending it ended.
 */
#include <string.h>

#include "raft/core.h"

void raft_pr_reset(raft_progress *pr, raft_index_t next) {
    pr->match = 0;
    pr->next = next;
    pr->state = RAFT_PR_PROBE;
    pr->pending_snapshot = 0;
    pr->recent_active = false;
    pr->probe_sent = false;
    pr->read_ack = 0;
    pr->inflight_start = 0;
    pr->inflight_count = 0;
}

bool raft_pr_is_paused(const raft_progress *pr) {
    switch (pr->state) {
    case RAFT_PR_PROBE:
        return pr->probe_sent;
    case RAFT_PR_REPLICATE:
        return pr->inflight_count == pr->inflight_cap;
    default:
        return true;
    }
}

static void raft_pr_reset_state(raft_progress *pr, raft_pr_state state) {
    pr->state = state;
    pr->probe_sent = false;
    pr->pending_snapshot = 0;
    pr->inflight_start = 0;
    pr->inflight_count = 0;
}

void raft_pr_become_probe(raft_progress *pr) {
    /* After a snapshot, resume right after it (or after match if further). */
    if (pr->state == RAFT_PR_SNAPSHOT) {
        raft_index_t pending = pr->pending_snapshot;
        raft_pr_reset_state(pr, RAFT_PR_PROBE);
        pr->next = (pr->match + 1 > pending + 1) ? pr->match + 1 : pending + 1;
    } else {
        raft_pr_reset_state(pr, RAFT_PR_PROBE);
        pr->next = pr->match + 1;
    }
}

void raft_pr_become_replicate(raft_progress *pr) {
    raft_pr_reset_state(pr, RAFT_PR_REPLICATE);
    pr->next = pr->match + 1;
}

void raft_pr_become_snapshot(raft_progress *pr, raft_index_t snapshot_index) {
    raft_pr_reset_state(pr, RAFT_PR_SNAPSHOT);
    pr->pending_snapshot = snapshot_index;
}

bool raft_pr_maybe_update(raft_progress *pr, raft_index_t index) {
    bool updated = false;

    if (pr->match < index) {
        pr->match = index;
        updated = true;
        pr->probe_sent = false;
    }
    if (pr->next < index + 1)
        pr->next = index + 1;
    return updated;
}

bool raft_pr_maybe_decr_to(raft_progress *pr, raft_index_t rejected, raft_index_t match_hint) {
    if (pr->state == RAFT_PR_REPLICATE) {
        /* A rejection of something already matched is stale. */
        if (rejected <= pr->match)
            return false;
        pr->next = pr->match + 1;
        return true;
    }
    /* In probe, only the rejection of the latest probe counts. */
    if (pr->next - 1 != rejected)
        return false;
    raft_index_t next = rejected < match_hint + 1 ? rejected : match_hint + 1;
    pr->next = next < 1 ? 1 : next;
    pr->probe_sent = false;
    return true;
}

void raft_pr_inflight_add(raft_progress *pr, raft_index_t last) {
    uint32_t slot = (pr->inflight_start + pr->inflight_count) % pr->inflight_cap;
    pr->inflight[slot] = last;
    pr->inflight_count++;
}

void raft_pr_inflight_free_first(raft_progress *pr) {
    if (pr->inflight_count > 0) {
        pr->inflight_start = (pr->inflight_start + 1) % pr->inflight_cap;
        pr->inflight_count--;
    }
}

void raft_pr_inflight_free_to(raft_progress *pr, raft_index_t index) {
    while (pr->inflight_count > 0 && pr->inflight[pr->inflight_start] <= index) {
        pr->inflight_start = (pr->inflight_start + 1) % pr->inflight_cap;
        pr->inflight_count--;
    }
}

const char *raft_pr_state_name(raft_pr_state state) {
    static const char *const names[] = {"probe", "replicate", "snapshot"};
    return names[state];
}
