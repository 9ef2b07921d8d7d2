/* parse: the numbers and addresses that users type into flags and endpoint
 * lists, checked strictly: a value out of range is refused, never wrapped. */
#ifndef BASALT_RUNTIME_PARSE_H
#define BASALT_RUNTIME_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#define PARSE_PORT_MAX 65535

/* A decimal number from min to max with nothing around it (no sign, no
 * spaces). Returns 0 with *out, or -1. */
int parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* A duration: a decimal number with a unit, ms, s, m or h ("500ms", "60s",
 * "2m"), from min_ms to max_ms. Returns 0 with *out_ms, or -1. */
int parse_duration_ms(const char *text, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms);

/* True for HOST:PORT with a port from min_port to PARSE_PORT_MAX: gRPC takes
 * a larger port and silently wraps it around. */
bool parse_host_port(const char *addr, uint64_t min_port);

#endif
