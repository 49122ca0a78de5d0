/* capstan: tenants, environments and jobs in PostgreSQL, shaped as the API shows them.
 *
 * Reads return jansson objects built by SQL (jsonb_build_object) in the API's field names.
 * Writes that start work run in one transaction that changes the resource, inserts its job
 * (and wakes the workers through NOTIFY) and records the Idempotency-Key answer, so a request
 * is either wholly recorded or not at all. Thread-safe; each call takes and returns its own
 * pooled connection. */
#ifndef CAPSTAN_STORE_RESOURCES_H
#define CAPSTAN_STORE_RESOURCES_H

#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>

/* Who asks and how to answer a repeated Idempotency-Key. */
struct store_write {
    const char *actor;     /* requestedBy (token name) */
    const char *idem_key;  /* NULL: the request had no Idempotency-Key */
    const char *idem_hash; /* SHA-256 of method, path and body */
    long long if_match;    /* -1: no If-Match; else the generation the client saw */
    /* set when the key was used before for the same request: answer with these */
    bool replayed;
    int status;
    char location[512];
};

/* ---- tenants ---- */
int store_tenant_get(struct store_pool *p, const char *name, json_t **out);
/* The tenant's spec (as the model keeps it, with "name") and its generation. */
int store_tenant_spec(struct store_pool *p, const char *name, json_t **spec, long long *generation);
int store_tenant_list(struct store_pool *p, const char *state, const json_t *labels,
                      struct store_page *page, char **items);
/* *out = {"tenant": ..., "job": ...}. CAP_ECONFLICT if the name is taken (also by a tenant
 * deleted less than 7 days ago). */
int store_tenant_create(struct store_pool *p, const json_t *spec, struct store_write *w,
                        json_t **out);
/* Stores new_spec if the tenant is still at `generation` (else CAP_EPRECONDITION when the
 * client's If-Match differs, CAP_ERETRY when someone else changed it meanwhile). */
int store_tenant_update(struct store_pool *p, const char *name, long long generation,
                        const json_t *new_spec, struct store_write *w, json_t **out);
int store_tenant_delete(struct store_pool *p, const char *name, bool cascade, struct store_write *w,
                        json_t **out);

/* ---- environments ---- */
int store_env_get(struct store_pool *p, const char *tenant, const char *name, json_t **out);
int store_env_spec(struct store_pool *p, const char *tenant, const char *name, json_t **spec,
                   long long *generation);
int store_env_list(struct store_pool *p, const char *tenant, const char *state,
                   struct store_page *page, char **items);
/* CAP_ENOTFOUND (no tenant), CAP_ECONFLICT (tenant not ready, name taken, quota reached). */
int store_env_create(struct store_pool *p, const char *tenant, const json_t *spec,
                     struct store_write *w, json_t **out);
int store_env_update(struct store_pool *p, const char *tenant, const char *name,
                     long long generation, const json_t *new_spec, struct store_write *w,
                     json_t **out);
int store_env_delete(struct store_pool *p, const char *tenant, const char *name,
                     struct store_write *w, json_t **out);
/* Moves expiresAt to max(expiresAt, now) + ttl_ms (at most 720h from now). *out = env. */
int store_env_extend(struct store_pool *p, const char *tenant, const char *name, long long ttl_ms,
                     struct store_write *w, json_t **out);
/* Names of the live environments of a tenant with their specs: [{"name",..spec}] */
int store_env_specs(struct store_pool *p, const char *tenant, json_t **out);

/* ---- jobs (API side) ---- */
int store_job_get(struct store_pool *p, const char *id, json_t **out);
int store_job_list(struct store_pool *p, const char *tenant, const char *state, const char *kind,
                   struct store_page *page, char **items);
/* queued: cancelled at once; running: flagged, the worker stops at the next step boundary. */
int store_job_cancel(struct store_pool *p, const char *id, struct store_write *w, json_t **out);
/* failed jobs only: queued again, resuming at the failed step. */
int store_job_retry(struct store_pool *p, const char *id, struct store_write *w, json_t **out);
/* Events with seq > after, at most limit: [{"seq","type","data","time"}]; *state gets the
 * job's state (caller frees). */
int store_job_events(struct store_conn *c, const char *id, long long after, int limit,
                     json_t **events, char **state);

/* ---- written by job steps ---- */
int store_tenant_set_platform_repo(struct store_pool *p, long long tenant_id, const char *url);
/* Records the environment's Cluster phase (NULL: none yet); a no-op when unchanged. */
int store_env_set_phase(struct store_pool *p, long long env_id, const char *phase);
/* The environment's state and generation now (to see if a job was superseded). */
int store_env_status(struct store_pool *p, long long env_id, char state[16], long long *generation);

#endif
