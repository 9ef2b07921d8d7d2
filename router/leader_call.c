/* leader_call: asking the replicas of a shard until its leader answers. */
#include "router/leader_call.h"

#include <stdio.h>

#include "runtime/error.h"

int router_call_leader(router_state *s, const Basalt__V1__ShardDescriptor *d, uint64_t leader,
                       const char *method, const ProtobufCMessage *request,
                       const ProtobufCMessageDescriptor *response_desc, uint64_t deadline_ms,
                       ProtobufCMessage **response, rpc_status *status, uint64_t *answered_by) {
    int rc = BS_ERR_UNAVAILABLE;

    *response = NULL;
    *status = (rpc_status){GRPC_STATUS_UNAVAILABLE, "no replica of the shard could be reached"};
    /* Turn 0 is the known leader (when there is one), then each replica. */
    for (size_t turn = leader != 0 ? 0 : 1;; turn++) {
        uint64_t now = router_now_ms();
        if (now >= deadline_ms || d->n_replicas == 0)
            return rc;
        uint64_t node = turn == 0 ? leader : d->replicas[(turn - 1) % d->n_replicas]->node_id;
        rpc_channel *ch = router_node_channel(s, node);
        if (ch != NULL) {
            *answered_by = node;
            rc = rpc_unary(ch, method, request, response_desc, (int64_t)(deadline_ms - now),
                           response, status);
            if (rc != BS_ERR_UNAVAILABLE)
                return rc;
        }
        if (turn > 0 && turn % d->n_replicas == 0)
            router_sleep_ms(ROUTER_LEADER_RETRY_MS); /* a full round refused */
    }
}
