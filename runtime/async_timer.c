/* async_timer: a list of callbacks kept in due order, and a thread that
 * sleeps until the first is due. */
#include "runtime/async_timer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/error.h"

typedef struct async_timer_item {
    struct async_timer_item *next;
    uint64_t due_ms;
    async_timer_cb cb;
    void *ctx;
} async_timer_item;

struct async_timer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    async_timer_item *head; /* by due time */
    size_t count;
    bool stopping;
};

static uint64_t async_timer_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static async_timer_item *async_timer_pop(async_timer *t) {
    async_timer_item *item = t->head;
    t->head = item->next;
    t->count--;
    return item;
}

static void *async_timer_main(void *arg) {
    async_timer *t = arg;

    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        if (t->head == NULL) {
            pthread_cond_wait(&t->wake, &t->lock);
            continue;
        }
        uint64_t now = async_timer_now_ms();
        if (t->head->due_ms > now) {
            struct timespec ts;
            uint64_t wait = t->head->due_ms - now;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&t->wake, &t->lock, &ts);
            continue;
        }
        async_timer_item *item = async_timer_pop(t);
        pthread_mutex_unlock(&t->lock);
        item->cb(item->ctx);
        free(item);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

async_timer *async_timer_create(void) {
    async_timer *t = calloc(1, sizeof(*t));
    pthread_condattr_t attr;

    if (t == NULL)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&t->thread, NULL, async_timer_main, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

void async_timer_destroy(async_timer *t) {
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    while (t->head != NULL) {
        async_timer_item *item = async_timer_pop(t);
        item->cb(item->ctx);
        free(item);
    }
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int async_timer_after(async_timer *t, uint64_t delay_ms, async_timer_cb cb, void *ctx) {
    async_timer_item *item = malloc(sizeof(*item));
    async_timer_item **at;

    if (item == NULL)
        return BS_ERR_NOMEM;
    item->due_ms = async_timer_now_ms() + delay_ms;
    item->cb = cb;
    item->ctx = ctx;
    pthread_mutex_lock(&t->lock);
    if (t->count >= ASYNC_TIMER_PENDING_MAX || t->stopping) {
        pthread_mutex_unlock(&t->lock);
        free(item);
        return BS_ERR_RESOURCE_EXHAUSTED;
    }
    for (at = &t->head; *at != NULL && (*at)->due_ms <= item->due_ms; at = &(*at)->next) {
    }
    item->next = *at;
    *at = item;
    t->count++;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    return 0;
}
