/* capstan: the job event hub behind GET /api/v1/jobs/{id}/events.
 *
 * Streams do not pin database connections or threads: each subscriber is a buffer that the
 * hub's one thread fills (fetching new events with a pooled connection for a moment, when the
 * listener reports a capstan_events notification for the job, and on a slow poll), and that
 * the HTTP layer drains without blocking. The hub formats server-sent events: one per stored
 * event (`id:` = its sequence number), comments as heartbeats, and a final `end` event once the
 * job is final and every event was sent. A subscriber that falls too far behind is ended (the
 * client reconnects with Last-Event-ID). Thread-safe. */
#ifndef CAPSTAN_JOBS_HUB_H
#define CAPSTAN_JOBS_HUB_H

#include "store/store.h"

#include <stddef.h>

struct jobs_hub;
struct jobs_sub;

int jobs_hub_create(struct jobs_hub **out, struct store_pool *pool);
/* Ends every subscriber and stops the thread. */
void jobs_hub_destroy(struct jobs_hub *hub);

/* New events exist for job_id (called by the engine's listener). */
void jobs_hub_notify(struct jobs_hub *hub, const char *job_id);

/* Subscribes to the events of job_id after sequence number `after`. The subscriber is
 * referenced by the hub and by the caller; the caller drops its reference with
 * jobs_sub_release. */
int jobs_hub_subscribe(struct jobs_hub *hub, const char *job_id, long long after,
                       struct jobs_sub **out);
/* wake(ctx) is called from the hub thread, without locks held, when data arrives; hold/drop
 * reference ctx: the subscriber holds one until jobs_sub_release, and one more during each
 * wake call. */
void jobs_sub_attach(struct jobs_sub *s, void (*wake)(void *ctx), void (*hold)(void *ctx),
                     void (*drop)(void *ctx), void *ctx);
/* Copies up to max bytes of pending stream text into buf; 0 when nothing is pending, -1 when
 * the stream has ended and everything was read. Never blocks. */
long jobs_sub_read(struct jobs_sub *s, char *buf, size_t max);
void jobs_sub_release(struct jobs_sub *s);

/* Open subscribers (metrics). */
int jobs_hub_count(struct jobs_hub *hub);

#endif
