/* async_timer: callbacks run once after a delay, on one thread of the
 * timer's own. For retries that must wait without holding a thread. */
#ifndef BASALT_RUNTIME_ASYNC_TIMER_H
#define BASALT_RUNTIME_ASYNC_TIMER_H

#include <stdint.h>

/* Callbacks waiting at once, at most. */
#define ASYNC_TIMER_PENDING_MAX 65536

typedef struct async_timer async_timer;
typedef void (*async_timer_cb)(void *ctx);

async_timer *async_timer_create(void);

/* Runs every waiting callback now (in order of their due times), stops the
 * thread and frees the timer. */
void async_timer_destroy(async_timer *t);

/* Runs cb(ctx) on the timer's thread about delay_ms from now. Returns 0, or
 * BS_ERR_RESOURCE_EXHAUSTED when too many wait (cb will not run). */
int async_timer_after(async_timer *t, uint64_t delay_ms, async_timer_cb cb, void *ctx);

#endif
