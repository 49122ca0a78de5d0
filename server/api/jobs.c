/* capstan: /api/v1/jobs: list, read, follow (server-sent events), cancel and retry jobs. */
#include "api/api.h"
#include "api/auth.h"
#include "api/common.h"
#include "app.h"
#include "jobs/hub.h"
#include "store/resources.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/str.h"

#include <stdlib.h>
#include <string.h>

static const char *const job_states[] = {"queued", "running",   "succeeded",
                                         "failed", "cancelled", NULL};
static const char *const job_kinds[] = {
    "tenant.create",      "tenant.update",      "tenant.delete",      "environment.create",
    "environment.update", "environment.delete", "environment.expire", NULL};

static int job_param(struct http_request *req, const char **out)
{
    *out = http_param(req, "id");
    if (!*out || !cap_is_uuid(*out))
        return cap_error_set(CAP_ENOTFOUND, "job \"%.64s\" does not exist", *out ? *out : "");
    return 0;
}

int api_jobs_list(struct http_request *req)
{
    static const char *const q[] = {"tenant", "state", "kind", "limit", "cursor", NULL};
    struct store_page page;
    const char *tenant = http_query(req, "tenant"), *state, *kind;
    char *items = NULL;
    int rc;

    if ((rc = http_query_only(req, q)) != 0 ||
        (rc = api_enum_query(req, "state", job_states, &state)) != 0 ||
        (rc = api_enum_query(req, "kind", job_kinds, &kind)) != 0 ||
        (rc = api_page(req, 'j', &page)) != 0)
        return rc;
    if (tenant && !cap_is_dns_label(tenant, 63))
        return cap_error_set_field(CAP_EMALFORMED, "tenant", "tenant must be a tenant name");
    if (api_auth_list_scope(req)) {
        /* a tenant role sees its tenant's jobs only; asking for another tenant finds none */
        if (tenant && strcmp(tenant, api_auth_list_scope(req)) != 0) {
            page.next = 0;
            return api_list_reply(req, 'j', &page, "[]");
        }
        tenant = api_auth_list_scope(req);
    }
    if ((rc = store_job_list(capstan_app->pool, tenant, state, kind, &page, &items)) != 0)
        return rc;
    rc = api_list_reply(req, 'j', &page, items);
    free(items);
    return rc;
}

int api_jobs_get(struct http_request *req)
{
    const char *id;
    json_t *j = NULL;
    int rc;
    if ((rc = job_param(req, &id)) != 0)
        return rc;
    if ((rc = store_job_get(capstan_app->pool, id, &j)) != 0)
        return rc;
    return http_reply_json(req, HTTP_OK, j);
}

static int job_action(struct http_request *req,
                      int (*fn)(struct store_pool *, const char *, struct store_write *, json_t **))
{
    const char *id;
    json_t *body = NULL;
    struct store_write w;
    int rc;
    if ((rc = job_param(req, &id)) != 0 ||
        (rc = http_query_only(req, (const char *const[]){NULL})) != 0 ||
        (rc = api_write_init(req, &w)) != 0)
        return rc;
    if ((rc = fn(capstan_app->pool, id, &w, &body)) != 0)
        return rc;
    return api_write_reply(req, &w, body);
}

int api_jobs_cancel(struct http_request *req)
{
    return job_action(req, store_job_cancel);
}

int api_jobs_retry(struct http_request *req)
{
    return job_action(req, store_job_retry);
}

/* ---- the event stream ---- */

static long events_read(void *ctx, char *buf, size_t max)
{
    return jobs_sub_read(ctx, buf, max);
}

static void events_done(void *ctx)
{
    jobs_sub_release(ctx);
}

static void stream_wake(void *ctx)
{
    http_stream_wake(ctx);
}

static void stream_hold(void *ctx)
{
    http_stream_hold(ctx);
}

static void stream_drop(void *ctx)
{
    http_stream_drop(ctx);
}

int api_jobs_events(struct http_request *req)
{
    const char *id, *last = http_header(req, "Last-Event-ID");
    struct jobs_sub *sub = NULL;
    struct http_stream *stream = NULL;
    json_t *j = NULL;
    long long after = 0;
    int rc;

    if ((rc = job_param(req, &id)) != 0 ||
        (rc = http_query_only(req, (const char *const[]){NULL})) != 0)
        return rc;
    if (last && *last && cap_parse_long(&after, last, 0, 1LL << 31))
        return cap_error_set_field(CAP_EMALFORMED, "Last-Event-ID",
                                   "Last-Event-ID must be an event id this stream sent");
    /* the job must exist (and, with roles, be visible) before anything streams */
    if ((rc = store_job_get(capstan_app->pool, id, &j)) != 0)
        return rc;
    json_decref(j);
    if ((rc = jobs_hub_subscribe(capstan_app->hub, id, after, &sub)) != 0)
        return rc;
    /* from here the stream owns the caller's reference of sub (events_done releases it) */
    rc = http_stream_start(req, "text/event-stream; charset=utf-8", events_read, events_done, sub,
                           &stream);
    if (rc)
        return rc;
    jobs_sub_attach(sub, stream_wake, stream_hold, stream_drop, stream);
    http_stream_wake(stream);
    http_stream_drop(stream);
    return 0;
}
