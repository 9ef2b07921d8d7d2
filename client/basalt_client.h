/* basalt_client: the C client library of Basalt's public KV API.
 *
 * A client holds channels to one or more endpoints (routers, or a single
 * kvnode). Each call goes to the endpoint that answered last; when that one is
 * unreachable (UNAVAILABLE) the call moves on to the next, once around the list.
 * Put and Delete are safe to resend that way: a resent Put writes the same
 * value, a resent Delete removes the same key (its `deleted` answer then says
 * whether the key existed before the resend). Used by kvctl, kvbench and the
 * tests.
 */
#ifndef BASALT_CLIENT_BASALT_CLIENT_H
#define BASALT_CLIENT_BASALT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basalt/v1/kv.pb-c.h"
#include "runtime/rpc_client.h"

/* A client takes at most this many endpoints. */
#define BASALT_ENDPOINTS_MAX 16
/* Per-call timeout used when the caller passes 0. */
#define BASALT_TIMEOUT_MS_DEFAULT 5000

typedef struct basalt_client basalt_client;

/* Opens a client for a comma-separated list of HOST:PORT endpoints, each call
 * bounded by timeout_ms (0: the default). Returns NULL, with a reason in
 * `why` (why_size bytes), when the list is empty, has an empty entry or more
 * than BASALT_ENDPOINTS_MAX entries, or memory runs out. */
basalt_client *basalt_client_open(const char *endpoints, int64_t timeout_ms, char *why,
                                  size_t why_size);

void basalt_client_close(basalt_client *c);

/* Every call returns 0 on success or a project error code, and fills `status`
 * with the gRPC status and the server's message either way. Responses are
 * freed with basalt_response_free. */

int basalt_put(basalt_client *c, const void *key, size_t key_len, const void *value,
               size_t value_len, rpc_status *status);

int basalt_get(basalt_client *c, const void *key, size_t key_len, Basalt__V1__Consistency level,
               Basalt__V1__GetResponse **response, rpc_status *status);

int basalt_delete(basalt_client *c, const void *key, size_t key_len, bool *deleted,
                  rpc_status *status);

int basalt_scan(basalt_client *c, const Basalt__V1__ScanRequest *request,
                Basalt__V1__ScanResponse **response, rpc_status *status);

/* Asks grpc.health.v1.Health/Check of the endpoint; 0 when it is SERVING. */
int basalt_health(basalt_client *c, rpc_status *status);

/* Any unary method of the endpoints (the router's Admin service, say), with
 * the same failover. */
int basalt_client_call(basalt_client *c, const char *method, const ProtobufCMessage *request,
                       const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
                       rpc_status *status);

/* The channel calls go to now (for asynchronous callers). */
rpc_channel *basalt_client_channel(basalt_client *c);

/* Frees a response of any of the calls above; NULL is fine. */
void basalt_response_free(void *response);

#endif
