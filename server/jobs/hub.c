/* capstan: the job event hub (see hub.h). */
#include "jobs/hub.h"

#include "log/log.h"
#include "store/resources.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/str.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SUB_BUFFER_MAX (1 << 20)
#define FETCH_LIMIT    200
#define POLL_MS        2000
#define HEARTBEAT_MS   15000

struct jobs_sub {
    struct jobs_hub *hub;
    char job_id[40];
    pthread_mutex_t lock;
    int refs;                  /* guarded by hub->lock */
    bool released;             /* the stream side is gone; guarded by hub->lock */
    bool dirty;                /* guarded by hub->lock */
    long long last_seq;        /* hub thread only */
    bool ended;                /* everything is in the buffer; guarded by lock */
    struct cap_buf out;        /* guarded by lock */
    size_t out_pos;            /* guarded by lock */
    pthread_mutex_t wake_lock; /* order: wake_lock, then the stream's own lock */
    void (*wake)(void *ctx);   /* guarded by wake_lock */
    void (*hold)(void *ctx);
    void (*drop)(void *ctx);
    void *wake_ctx;
    bool detached;         /* released by the stream side; guarded by wake_lock */
    struct jobs_sub *next; /* guarded by hub->lock */
};

struct jobs_hub {
    struct store_pool *pool;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct jobs_sub *subs;
    int nsubs;
    bool stopping;
    bool any_dirty;
    pthread_t thread;
};

static void sub_unref_locked(struct jobs_hub *hub, struct jobs_sub *s)
{
    (void)hub;
    if (--s->refs > 0)
        return;
    cap_buf_free(&s->out);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->wake_lock);
    free(s);
}

/* Appends text; ends the subscriber when its buffer overflows. Called with s->lock held. */
static void sub_put(struct jobs_sub *s, const char *text)
{
    if (s->ended)
        return;
    /* drop what the reader consumed before growing */
    if (s->out_pos > 0 && s->out_pos == s->out.len) {
        cap_buf_reset(&s->out);
        s->out_pos = 0;
    }
    if (cap_buf_puts(&s->out, text) != 0) {
        log_warn("event stream of job %s fell behind; closing it (the client resumes with "
                 "Last-Event-ID)",
                 s->job_id);
        s->ended = true;
    }
}

/* Wakes the stream, holding a reference on it (not a lock) during the call, so the stream
 * may go away meanwhile without either side waiting for the other. */
static void sub_wake(struct jobs_sub *s)
{
    void (*wake)(void *) = NULL, (*drop)(void *) = NULL;
    void *ctx = NULL;
    pthread_mutex_lock(&s->wake_lock);
    if (s->wake) {
        wake = s->wake;
        drop = s->drop;
        ctx = s->wake_ctx;
        s->hold(ctx);
    }
    pthread_mutex_unlock(&s->wake_lock);
    if (wake) {
        wake(ctx);
        drop(ctx);
    }
}

static bool is_final(const char *state)
{
    return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "cancelled") == 0;
}

/* Fetches and formats the new events of s. Hub thread only. */
static void sub_fetch(struct jobs_hub *hub, struct jobs_sub *s)
{
    struct store_conn *c = NULL;
    json_t *events = NULL;
    char *state = NULL;
    size_t i;
    json_t *ev;
    int rc;

    if (store_acquire(hub->pool, &c) != 0)
        return; /* the database is away: try again on the next poll */
    rc = store_job_events(c, s->job_id, s->last_seq, FETCH_LIMIT, &events, &state);
    store_release(c);
    if (rc != 0) {
        if (rc == CAP_ENOTFOUND) {
            pthread_mutex_lock(&s->lock);
            s->ended = true;
            pthread_mutex_unlock(&s->lock);
            sub_wake(s);
        }
        return;
    }
    pthread_mutex_lock(&s->lock);
    json_array_foreach(events, i, ev)
    {
        long long seq = json_integer_value(json_object_get(ev, "seq"));
        char *data = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
        struct cap_buf line = CAP_BUF_INIT(SUB_BUFFER_MAX);
        cap_buf_printf(&line, "id: %lld\nevent: %s\ndata: %s\n\n", seq,
                       json_string_value(json_object_get(ev, "type")), data ? data : "{}");
        sub_put(s, cap_buf_str(&line));
        cap_buf_free(&line);
        free(data);
        s->last_seq = seq;
    }
    if (is_final(state) && json_array_size(events) < FETCH_LIMIT && !s->ended) {
        struct cap_buf line = CAP_BUF_INIT(256);
        cap_buf_printf(&line, "id: %lld\nevent: end\ndata: {\"state\":\"%s\"}\n\n", s->last_seq,
                       state);
        sub_put(s, cap_buf_str(&line));
        cap_buf_free(&line);
        s->ended = true;
    }
    bool more = json_array_size(events) >= FETCH_LIMIT;
    pthread_mutex_unlock(&s->lock);
    if (more) {
        pthread_mutex_lock(&hub->lock);
        s->dirty = true;
        hub->any_dirty = true;
        pthread_mutex_unlock(&hub->lock);
    }
    json_decref(events);
    free(state);
    sub_wake(s);
}

static void *hub_main(void *arg)
{
    struct jobs_hub *hub = arg;
    int64_t last_poll = cap_mono_ms(), last_beat = cap_mono_ms();

    pthread_mutex_lock(&hub->lock);
    while (!hub->stopping) {
        struct jobs_sub *work[256];
        int n = 0;
        int64_t now = cap_mono_ms();
        bool poll = now - last_poll >= POLL_MS;
        bool beat = now - last_beat >= HEARTBEAT_MS;

        if (!hub->any_dirty && !poll && !beat) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 500L * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&hub->cond, &hub->lock, &ts);
            continue;
        }
        hub->any_dirty = false;
        if (poll)
            last_poll = now;
        if (beat)
            last_beat = now;
        /* drop released subscribers; collect the ones to serve */
        for (struct jobs_sub **pp = &hub->subs; *pp;) {
            struct jobs_sub *s = *pp;
            if (s->released) {
                *pp = s->next;
                hub->nsubs--;
                sub_unref_locked(hub, s);
                continue;
            }
            if ((s->dirty || poll || beat) && n < (int)(sizeof(work) / sizeof(work[0]))) {
                s->refs++;
                s->dirty = false;
                work[n++] = s;
            } else if (s->dirty) {
                hub->any_dirty = true;
            }
            pp = &s->next;
        }
        pthread_mutex_unlock(&hub->lock);
        for (int i = 0; i < n; i++) {
            bool ended;
            pthread_mutex_lock(&work[i]->lock);
            ended = work[i]->ended;
            pthread_mutex_unlock(&work[i]->lock);
            if (!ended)
                sub_fetch(hub, work[i]);
            if (beat && !ended) {
                pthread_mutex_lock(&work[i]->lock);
                sub_put(work[i], ": keep-alive\n\n");
                pthread_mutex_unlock(&work[i]->lock);
                sub_wake(work[i]);
            }
        }
        pthread_mutex_lock(&hub->lock);
        for (int i = 0; i < n; i++)
            sub_unref_locked(hub, work[i]);
    }
    pthread_mutex_unlock(&hub->lock);
    return NULL;
}

int jobs_hub_create(struct jobs_hub **out, struct store_pool *pool)
{
    struct jobs_hub *hub = calloc(1, sizeof(*hub));
    if (!hub)
        return cap_error_set(CAP_ERROR, "out of memory");
    hub->pool = pool;
    pthread_mutex_init(&hub->lock, NULL);
    pthread_cond_init(&hub->cond, NULL);
    if (pthread_create(&hub->thread, NULL, hub_main, hub) != 0) {
        pthread_mutex_destroy(&hub->lock);
        pthread_cond_destroy(&hub->cond);
        free(hub);
        return cap_error_set(CAP_ERROR, "cannot start the event hub thread");
    }
    *out = hub;
    return 0;
}

void jobs_hub_destroy(struct jobs_hub *hub)
{
    struct jobs_sub *s, *next;
    if (!hub)
        return;
    pthread_mutex_lock(&hub->lock);
    hub->stopping = true;
    pthread_cond_signal(&hub->cond);
    pthread_mutex_unlock(&hub->lock);
    pthread_join(hub->thread, NULL);
    for (s = hub->subs; s; s = next) {
        next = s->next;
        pthread_mutex_lock(&s->lock);
        s->ended = true;
        pthread_mutex_unlock(&s->lock);
        sub_unref_locked(hub, s);
    }
    pthread_mutex_destroy(&hub->lock);
    pthread_cond_destroy(&hub->cond);
    free(hub);
}

void jobs_hub_notify(struct jobs_hub *hub, const char *job_id)
{
    pthread_mutex_lock(&hub->lock);
    for (struct jobs_sub *s = hub->subs; s; s = s->next) {
        if (strcmp(s->job_id, job_id) == 0) {
            s->dirty = true;
            hub->any_dirty = true;
        }
    }
    if (hub->any_dirty)
        pthread_cond_signal(&hub->cond);
    pthread_mutex_unlock(&hub->lock);
}

int jobs_hub_subscribe(struct jobs_hub *hub, const char *job_id, long long after,
                       struct jobs_sub **out)
{
    struct jobs_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return cap_error_set(CAP_ERROR, "out of memory");
    s->hub = hub;
    cap_strlcpy(s->job_id, job_id, sizeof(s->job_id));
    s->last_seq = after;
    s->refs = 2;
    s->dirty = true;
    cap_buf_init(&s->out, SUB_BUFFER_MAX);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->wake_lock, NULL);
    /* tell the client how soon to come back after a disconnect */
    cap_buf_puts(&s->out, "retry: 2000\n\n");
    pthread_mutex_lock(&hub->lock);
    s->next = hub->subs;
    hub->subs = s;
    hub->nsubs++;
    hub->any_dirty = true;
    pthread_cond_signal(&hub->cond);
    pthread_mutex_unlock(&hub->lock);
    *out = s;
    return 0;
}

void jobs_sub_attach(struct jobs_sub *s, void (*wake)(void *ctx), void (*hold)(void *ctx),
                     void (*drop)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&s->wake_lock);
    if (!s->detached && !s->wake) {
        hold(ctx);
        s->wake = wake;
        s->hold = hold;
        s->drop = drop;
        s->wake_ctx = ctx;
    }
    pthread_mutex_unlock(&s->wake_lock);
}

long jobs_sub_read(struct jobs_sub *s, char *buf, size_t max)
{
    long n;
    pthread_mutex_lock(&s->lock);
    size_t avail = s->out.len - s->out_pos;
    if (avail == 0) {
        n = s->ended ? -1 : 0;
    } else {
        size_t take = avail < max ? avail : max;
        memcpy(buf, s->out.data + s->out_pos, take);
        s->out_pos += take;
        n = (long)take;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

void jobs_sub_release(struct jobs_sub *s)
{
    struct jobs_hub *hub;
    if (!s)
        return;
    hub = s->hub;
    void (*drop)(void *) = NULL;
    void *ctx = NULL;
    pthread_mutex_lock(&s->wake_lock);
    if (s->wake) {
        drop = s->drop;
        ctx = s->wake_ctx;
    }
    s->wake = NULL;
    s->detached = true;
    pthread_mutex_unlock(&s->wake_lock);
    if (drop)
        drop(ctx);
    pthread_mutex_lock(&hub->lock);
    s->released = true;
    sub_unref_locked(hub, s);
    pthread_mutex_unlock(&hub->lock);
}

int jobs_hub_count(struct jobs_hub *hub)
{
    int n;
    pthread_mutex_lock(&hub->lock);
    n = hub->nsubs;
    pthread_mutex_unlock(&hub->lock);
    return n;
}
