/* capstan: the job queue in PostgreSQL (see jobs.h). */
#include "store/jobs.h"

#include "store/sqljson.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_FENCE "id = $1::uuid AND lease_owner = $2::uuid AND state = 'running'"

static const struct store_stmt st_insert = {
    "jobq_insert",
    /* the job and its first event ("queued", sequence 1) in one statement */
    "WITH j AS (INSERT INTO jobs (id, kind, tenant_id, tenant, environment_id, environment, "
    "params, steps, requested_by, max_attempts, event_seq) VALUES (gen_random_uuid(), $1, $2, $3, "
    "$4, $5, $6::jsonb, $7::jsonb, $8, $9, 1) RETURNING *), "
    "e AS (INSERT INTO job_events (job_id, seq, type, data) "
    "SELECT j.id, 1, 'state', '{\"state\": \"queued\"}'::jsonb FROM j), "
    "n AS (SELECT pg_notify('capstan_jobs', $3)) SELECT j.id, " SQL_JOB_JSON("j") " FROM j, n",
    9};
/* Step $3 ends ($6: succeeded or skipped) and step $7 starts, with both events, in one
 * statement; nothing happens if a cancel was asked or the lease is gone. */
static const struct store_stmt st_advance = {
    "jobq_advance",
    "WITH u AS (UPDATE jobs SET steps = jsonb_set(jsonb_set(steps, ARRAY[$3::text], "
    "(steps -> $3::int) || jsonb_build_object('state', $6::text, 'finishedAt', " SQL_NOW_TS ", "
    "'message', $4::text)), ARRAY[$7::text], (steps -> $7::int) || jsonb_build_object("
    "'state', 'running', 'startedAt', " SQL_NOW_TS ", 'finishedAt', null, 'message', null)), "
    "result = CASE WHEN $5::jsonb IS NULL THEN result "
    "ELSE coalesce(result, '{}'::jsonb) || $5::jsonb END, event_seq = event_seq + 2 "
    "WHERE id = $1::uuid AND lease_owner = $2::uuid AND state = 'running' "
    "AND NOT cancel_requested RETURNING event_seq, steps -> $3::int ->> 'name' AS done, "
    "steps -> $7::int ->> 'name' AS next), "
    "e AS (INSERT INTO job_events (job_id, seq, type, data) "
    "SELECT $1::uuid, u.event_seq - 1, 'step', jsonb_strip_nulls(jsonb_build_object('step', "
    "u.done, 'state', $6::text, 'message', $4::text)) FROM u UNION ALL "
    "SELECT $1::uuid, u.event_seq, 'step', jsonb_build_object('step', u.next, 'state', "
    "'running') FROM u) SELECT pg_notify('capstan_events', $1::text) FROM u",
    7};
/* The last step ends ($6) and the job succeeds, with both events and the wake-up of the
 * tenant's next job, in one statement (the caller applies the outcome in the same
 * transaction). */
static const struct store_stmt st_finish_last = {
    "jobq_finish_last",
    "WITH u AS (UPDATE jobs SET steps = jsonb_set(steps, ARRAY[$3::text], (steps -> $3::int) || "
    "jsonb_build_object('state', $6::text, 'finishedAt', " SQL_NOW_TS ", 'message', $4::text)), "
    "result = coalesce(result, '{}'::jsonb) || coalesce($5::jsonb, '{}'::jsonb), "
    "state = 'succeeded', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL, "
    "event_seq = event_seq + 2 WHERE id = $1::uuid AND lease_owner = $2::uuid "
    "AND state = 'running' RETURNING event_seq, tenant, result ->> 'commit' AS commit, "
    "steps -> $3::int ->> 'name' AS done), "
    "e AS (INSERT INTO job_events (job_id, seq, type, data) "
    "SELECT $1::uuid, u.event_seq - 1, 'step', jsonb_strip_nulls(jsonb_build_object('step', "
    "u.done, 'state', $6::text, 'message', $4::text)) FROM u UNION ALL "
    "SELECT $1::uuid, u.event_seq, 'state', jsonb_strip_nulls(jsonb_build_object('state', "
    "'succeeded', 'commit', u.commit)) FROM u) "
    "SELECT u.commit, pg_notify('capstan_jobs', u.tenant), pg_notify('capstan_events', $1::text) "
    "FROM u",
    6};
static const struct store_stmt st_event = {
    "jobq_event",
    "WITH s AS (UPDATE jobs SET event_seq = event_seq + 1 WHERE id = $1::uuid "
    "RETURNING event_seq), i AS (INSERT INTO job_events (job_id, seq, type, data) "
    "SELECT $1::uuid, s.event_seq, $2, $3::jsonb FROM s RETURNING seq) "
    "SELECT pg_notify('capstan_events', $1::text) FROM i",
    3};
static const struct store_stmt st_claim = {
    "jobq_claim",
    /* jobs_active for the walk, jobs_active_tenant for the per-tenant order: the tenant's
     * first active job, as a scalar subquery that PostgreSQL runs per candidate with its
     * tenant as the index key. (A NOT EXISTS became an anti-join that stale statistics
     * planned as a full walk of the active jobs per candidate: seconds under a burst.) */
    "WITH c AS (SELECT j.id, j.waiting FROM jobs j WHERE j.state IN ('queued', 'running') "
    "AND ((j.state = 'queued' AND j.run_after <= now()) "
    "OR (j.state = 'running' AND j.lease_expires_at < now())) "
    "AND coalesce((SELECT min(e.seq) FROM jobs e WHERE e.tenant_id = j.tenant_id "
    "AND e.state IN ('queued', 'running') AND NOT e.waiting), j.seq) >= j.seq "
    "ORDER BY j.seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "UPDATE jobs SET state = 'running', waiting = false, attempt = jobs.attempt + 1, "
    "lease_owner = $1::uuid, "
    "lease_expires_at = now() + $2::bigint * interval '1 millisecond', "
    "started_at = coalesce(jobs.started_at, now()) FROM c WHERE jobs.id = c.id "
    "RETURNING jobs.id, jobs.kind, jobs.tenant_id, jobs.tenant, "
    "coalesce(jobs.environment_id, 0), coalesce(jobs.environment, ''), jobs.attempt, "
    "jobs.max_attempts, jobs.requested_by, jobs.params, jobs.steps, jobs.rendered, "
    "jobs.result, c.waiting",
    2};
static const struct store_stmt st_claim_plan = {
    "jobq_claim_plan",
    "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)",
    0};
static const struct store_stmt st_renew = {
    "jobq_renew",
    /* jobs_lease */
    "UPDATE jobs SET lease_expires_at = now() + $2::bigint * interval '1 millisecond' "
    "WHERE lease_owner = $1::uuid AND state = 'running' AND id = ANY($3::uuid[])",
    3};
static const struct store_stmt st_step_begin = {
    "jobq_step_begin",
    "WITH old AS (SELECT steps -> $3::int AS s FROM jobs WHERE id = $1::uuid) "
    "UPDATE jobs SET steps = jsonb_set(steps, ARRAY[$3::text], (steps -> $3::int) || "
    "CASE WHEN old.s ->> 'state' = 'running' THEN '{}'::jsonb ELSE "
    "jsonb_build_object('state', 'running', 'startedAt', " SQL_NOW_TS ", "
    "'finishedAt', null, 'message', null) END) FROM old WHERE " LEASE_FENCE
    " AND NOT cancel_requested RETURNING steps -> $3::int ->> 'name', old.s ->> 'state'",
    3};
static const struct store_stmt st_fence = {
    "jobq_fence", "SELECT cancel_requested FROM jobs WHERE " LEASE_FENCE, 2};
static const struct store_stmt st_step_done = {
    "jobq_step_done",
    "UPDATE jobs SET steps = jsonb_set(steps, ARRAY[$3::text], (steps -> $3::int) || "
    "jsonb_build_object('state', $6::text, 'finishedAt', " SQL_NOW_TS ", "
    "'message', $4::text)), result = CASE WHEN $5::jsonb IS NULL THEN result "
    "ELSE coalesce(result, '{}'::jsonb) || $5::jsonb END "
    "WHERE " LEASE_FENCE " RETURNING steps -> $3::int ->> 'name', ''",
    6};
static const struct store_stmt st_wait = {
    "jobq_wait",
    "WITH old AS (SELECT steps -> $3::int ->> 'message' AS m FROM jobs WHERE id = $1::uuid) "
    "UPDATE jobs SET state = 'queued', waiting = true, attempt = greatest(attempt - 1, 0), "
    "lease_owner = NULL, lease_expires_at = NULL, "
    "run_after = now() + $5::bigint * interval '1 millisecond', "
    "steps = jsonb_set(steps, ARRAY[$3::text], (steps -> $3::int) || "
    "jsonb_build_object('message', $4::text)) FROM old WHERE " LEASE_FENCE
    " RETURNING steps -> $3::int ->> 'name', old.m IS DISTINCT FROM $4::text, tenant",
    5};
static const struct store_stmt st_rendered = {
    "jobq_rendered", "UPDATE jobs SET rendered = $3::jsonb WHERE " LEASE_FENCE " RETURNING 1", 3};
static const struct store_stmt st_check = {"jobq_check", "SELECT 1 FROM jobs WHERE " LEASE_FENCE,
                                           2};
static const struct store_stmt st_step_failed = {
    "jobq_step_failed",
    "UPDATE jobs SET steps = jsonb_set(steps, ARRAY[$3::text], (steps -> $3::int) || "
    "jsonb_build_object('state', 'failed', 'finishedAt', " SQL_NOW_TS ", "
    "'message', $4::text)), "
    "state = CASE WHEN attempt < max_attempts AND NOT $6::boolean THEN 'queued' "
    "ELSE 'failed' END, "
    "run_after = now() + $5::bigint * interval '1 millisecond', lease_owner = NULL, "
    "lease_expires_at = NULL, "
    "finished_at = CASE WHEN attempt < max_attempts AND NOT $6::boolean THEN NULL "
    "ELSE now() END, "
    "error = CASE WHEN attempt < max_attempts AND NOT $6::boolean THEN NULL "
    "ELSE jsonb_build_object('step', steps -> $3::int ->> 'name', 'message', $4::text) END "
    "WHERE " LEASE_FENCE " RETURNING state, steps -> $3::int ->> 'name', attempt, "
    "max_attempts, tenant",
    6};
static const struct store_stmt st_release = {
    "jobq_release",
    "UPDATE jobs SET state = 'queued', attempt = greatest(attempt - 1, 0), lease_owner = NULL, "
    "lease_expires_at = NULL, run_after = now(), steps = (SELECT jsonb_agg(CASE WHEN "
    "s ->> 'state' = 'running' THEN s || '{\"state\": \"pending\"}'::jsonb ELSE s END "
    "ORDER BY n) FROM jsonb_array_elements(steps) WITH ORDINALITY AS x(s, n)) "
    "WHERE " LEASE_FENCE " RETURNING tenant",
    2};
static const struct store_stmt st_succeed = {
    "jobq_succeed",
    "UPDATE jobs SET state = 'succeeded', finished_at = now(), "
    "result = coalesce(result, '{}'::jsonb) || coalesce($3::jsonb, '{}'::jsonb), "
    "lease_owner = NULL, lease_expires_at = NULL WHERE " LEASE_FENCE
    " RETURNING tenant, result ->> 'commit'",
    3};
static const struct store_stmt st_cancelled = {
    "jobq_cancelled",
    "UPDATE jobs SET state = 'cancelled', finished_at = now(), lease_owner = NULL, "
    "lease_expires_at = NULL, steps = (SELECT jsonb_agg(CASE WHEN s ->> 'state' IN "
    "('pending', 'failed') THEN s || '{\"state\": \"cancelled\"}'::jsonb ELSE s END ORDER BY n) "
    "FROM jsonb_array_elements(steps) WITH ORDINALITY AS x(s, n)) WHERE " LEASE_FENCE
    " RETURNING tenant, NULL::text",
    2};
static const struct store_stmt st_wake = {"jobq_wake", "SELECT pg_notify('capstan_jobs', $1)", 1};
static const struct store_stmt st_outcome_job = {
    "jobq_outcome_job",
    "SELECT kind, tenant_id, coalesce(environment_id, 0), params FROM jobs WHERE id = $1::uuid", 1};
static const struct store_stmt st_tenant_outcome = {
    "jobq_tenant_outcome",
    "UPDATE tenants SET state = coalesce($2, state), "
    "observed_generation = greatest(observed_generation, coalesce($3::bigint, 0)), "
    "deleted_at = CASE WHEN $2 = 'deleted' THEN now() ELSE deleted_at END, updated_at = now() "
    "WHERE id = $1 AND ($4::text IS NULL OR state = ANY (string_to_array($4, ',')))",
    4};
static const struct store_stmt st_env_outcome = {
    "jobq_env_outcome",
    "UPDATE environments SET state = coalesce($2, state), "
    "observed_generation = greatest(observed_generation, coalesce($3::bigint, 0)), "
    "git_commit = coalesce($5, git_commit), "
    "deleted_at = CASE WHEN $2 IN ('deleted', 'expired') THEN now() ELSE deleted_at END, "
    "updated_at = now() "
    "WHERE id = $1 AND ($4::text IS NULL OR state = ANY (string_to_array($4, ',')))",
    5};
static const struct store_stmt st_envs_outcome = {
    "jobq_envs_outcome",
    /* environments_tenant */
    "UPDATE environments SET state = $2, "
    "deleted_at = CASE WHEN $2 = 'deleted' THEN now() ELSE deleted_at END, updated_at = now() "
    "WHERE tenant_id = $1 AND deleted_at IS NULL",
    2};
static const struct store_stmt st_expire = {
    "jobq_expire",
    /* environments_expiry */
    "WITH due AS (SELECT e.id, e.state FROM environments e WHERE e.expires_at <= now() "
    "AND e.deleted_at IS NULL AND e.state NOT IN ('deleting', 'deleted', 'expired') "
    "ORDER BY e.expires_at LIMIT $2 FOR UPDATE SKIP LOCKED), "
    "upd AS (UPDATE environments e SET state = 'deleting', updated_at = now() FROM due "
    "WHERE e.id = due.id RETURNING e.*, due.state AS previous_state) "
    "INSERT INTO jobs (id, kind, tenant_id, tenant, environment_id, environment, params, steps, "
    "requested_by) SELECT gen_random_uuid(), 'environment.expire', upd.tenant_id, upd.tenant, "
    "upd.id, upd.name, jsonb_build_object('generation', upd.generation, 'spec', upd.spec, "
    "'previousState', upd.previous_state), $1::jsonb, 'capstan (expiry)' FROM upd "
    "ON CONFLICT DO NOTHING RETURNING id, tenant",
    2};
static const struct store_stmt st_heartbeat = {
    "instance_heartbeat",
    "INSERT INTO instances (id, hostname, pid, version) VALUES ($1::uuid, $2, $3, $4) "
    "ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
    4};
static const struct store_stmt st_instance_gc = {
    "instance_gc", "DELETE FROM instances WHERE heartbeat_at < now() - interval '1 hour'", 0};
static const struct store_stmt st_instance_remove = {
    "instance_remove", "DELETE FROM instances WHERE id = $1::uuid", 1};
static const struct store_stmt st_queue_stats = {
    "jobq_stats",
    /* jobs_state */
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM jobs "
    "WHERE state = 'queued'",
    0};

static atomic_int max_attempts = 5;

void store_jobs_set_max_attempts(int n)
{
    atomic_store(&max_attempts, n);
}

void store_job_clear(struct store_job *j)
{
    if (!j)
        return;
    json_decref(j->params);
    json_decref(j->steps);
    json_decref(j->rendered);
    json_decref(j->result);
    memset(j, 0, sizeof(*j));
}

static char *dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

int store_job_event(struct store_conn *c, const char *job_id, const char *type, const json_t *data)
{
    char *text = dump(data);
    const char *params[3] = {job_id, type, text};
    int rc = store_exec(c, &st_event, params, NULL);
    free(text);
    return rc;
}

/* store_job_event that takes the data (new reference, stolen). */
static int emit(struct store_conn *c, const char *job_id, const char *type, json_t *data)
{
    int rc = store_job_event(c, job_id, type, data);
    json_decref(data);
    return rc;
}

/* Wakes the workers: the next job of tenant may run now. */
static int wake_tenant(struct store_conn *c, const char *tenant)
{
    const char *params[1] = {tenant};
    return store_exec(c, &st_wake, params, NULL);
}

int store_job_insert(struct store_conn *c, enum job_kind kind, long long tenant_id,
                     const char *tenant, long long env_id, const char *env, const json_t *params,
                     const char *actor, json_t **out)
{
    char tid[24], eid[24], maxa[16];
    json_t *steps = jobs_initial_steps(kind);
    char *steps_text = dump(steps), *params_text = dump(params);
    PGresult *res = NULL;
    int rc;

    snprintf(tid, sizeof(tid), "%lld", tenant_id);
    snprintf(eid, sizeof(eid), "%lld", env_id);
    snprintf(maxa, sizeof(maxa), "%d", atomic_load(&max_attempts));
    const char *p[9] = {jobs_kind_name(kind), tid,   tenant, env_id ? eid : NULL, env, params_text,
                        steps_text,           actor, maxa};
    rc = store_exec(c, &st_insert, p, &res);
    if (rc == 0 && out)
        *out = store_json(res, 0, 1);
    PQclear(res);
    free(steps_text);
    free(params_text);
    json_decref(steps);
    return rc;
}

/* Runs fn-like sequences in one transaction on a pooled connection. */
struct tx {
    struct store_conn *c;
};

static int tx_open(struct store_pool *p, struct tx *t)
{
    int rc = store_acquire(p, &t->c);
    if (rc)
        return rc;
    rc = store_begin(t->c);
    if (rc) {
        store_release(t->c);
        t->c = NULL;
    }
    return rc;
}

static int tx_close(struct tx *t, int rc)
{
    if (!t->c)
        return rc;
    if (rc == 0)
        rc = store_commit(t->c);
    else
        store_rollback(t->c);
    store_release(t->c);
    t->c = NULL;
    return rc;
}

static int lease_lost(const char *id)
{
    return cap_error_set(CAP_ECONFLICT, "job %s: lease lost (another process took it over)", id);
}

static int effects_started(struct store_conn *c, const struct store_job *j);
static int begin_step(struct store_conn *c, const struct store_job *j, const char *instance,
                      int idx, bool *cancel);
static int apply_outcome(struct store_conn *c, const char *job_id, int kind, long long tenant_id,
                         long long env_id, const json_t *jp, const char *outcome,
                         const char *commit);

int store_job_claim(struct store_pool *p, const char *instance, long long lease_ms,
                    struct store_job *out)
{
    struct tx t = {0};
    char lease[24];
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    snprintf(lease, sizeof(lease), "%lld", lease_ms);
    const char *params[2] = {instance, lease};
    if ((rc = tx_open(p, &t)) != 0)
        return rc;
    /* The claim must walk jobs_active in seq order and stop at the first runnable job; right
     * after a burst the statistics are stale and the planner would rather collect and sort
     * every queued job (measured: 32 ms a claim with 3,000 queued, instead of well under 1). */
    if ((rc = store_exec(t.c, &st_claim_plan, NULL, NULL)) != 0 ||
        (rc = store_exec(t.c, &st_claim, params, &res)) != 0)
        return tx_close(&t, rc);
    if (PQntuples(res) == 0) {
        PQclear(res);
        tx_close(&t, 0);
        return cap_error_set(CAP_ENOTFOUND, "no runnable job");
    }
    cap_strlcpy(out->id, store_val(res, 0, 0), sizeof(out->id));
    out->kind = (enum job_kind)jobs_kind_parse(store_val(res, 0, 1));
    out->tenant_id = atoll(store_val(res, 0, 2));
    cap_strlcpy(out->tenant, store_val(res, 0, 3), sizeof(out->tenant));
    out->env_id = atoll(store_val(res, 0, 4));
    cap_strlcpy(out->env, store_val(res, 0, 5), sizeof(out->env));
    out->attempt = (int)strtol(store_val(res, 0, 6), NULL, 10);
    out->max_attempts = (int)strtol(store_val(res, 0, 7), NULL, 10);
    cap_strlcpy(out->requested_by, store_val(res, 0, 8), sizeof(out->requested_by));
    out->params = store_json(res, 0, 9);
    out->steps = store_json(res, 0, 10);
    out->rendered = store_json(res, 0, 11);
    out->result = store_json(res, 0, 12);
    bool was_waiting = strcmp(store_val(res, 0, 13), "t") == 0;
    PQclear(res);
    if ((int)out->kind < 0 || !out->params || !json_is_array(out->steps)) {
        store_job_clear(out);
        return tx_close(&t, cap_error_set(CAP_ERROR, "a stored job cannot be decoded"));
    }
    /* a job that comes back from waiting is still the same run: no new "running" event */
    if (!was_waiting) {
        rc = emit(t.c, out->id, "state",
                  json_pack("{s:s,s:i,s:i}", "state", "running", "attempt", out->attempt,
                            "maxAttempts", out->max_attempts));
    }
    if (rc == 0)
        rc = effects_started(t.c, out);
    /* the first step not done yet starts in the same transaction */
    out->step = -1;
    for (size_t i = 0; rc == 0 && i < json_array_size(out->steps); i++) {
        const char *s = cap_json_get_str(json_array_get(out->steps, i), "state");
        if (s && (strcmp(s, "succeeded") == 0 || strcmp(s, "skipped") == 0))
            continue;
        rc = begin_step(t.c, out, instance, (int)i, &out->cancel);
        if (rc == 0 && !out->cancel)
            out->step = (int)i;
        break;
    }
    rc = tx_close(&t, rc);
    if (rc)
        store_job_clear(out);
    return rc;
}

int store_job_renew(struct store_pool *p, const char *instance, long long lease_ms, const char *ids,
                    int *n)
{
    struct store_conn *c;
    char lease[24];
    PGresult *res = NULL;
    int rc;

    snprintf(lease, sizeof(lease), "%lld", lease_ms);
    const char *params[3] = {instance, lease, ids};
    *n = 0;
    if ((rc = store_acquire(p, &c)) != 0)
        return rc;
    rc = store_exec(c, &st_renew, params, &res);
    if (rc == 0)
        *n = (int)strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    store_release(c);
    return rc;
}

static json_t *step_event(const char *name, const char *state, const char *message)
{
    json_t *ev = json_pack("{s:s,s:s}", "step", name, "state", state);
    if (message)
        json_object_set_new(ev, "message", cap_json_str(message));
    return ev;
}

/* Runs a step statement (st_step_begin or st_step_done) on c, in the caller's transaction,
 * with its event. When it changes nothing: *cancel if a cancel was asked, else the lease is
 * gone. */
static int step_update_on(struct store_conn *c, const struct store_job *j,
                          const struct store_stmt *st, const char *const *params, const char *state,
                          const char *message, bool *cancel)
{
    PGresult *res = NULL;
    int rc;

    if (cancel)
        *cancel = false;
    if ((rc = store_exec(c, st, params, &res)) != 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        res = NULL;
        rc = store_exec(c, &st_fence, params, &res);
        if (rc == 0 && PQntuples(res) == 1 && cancel && strcmp(store_val(res, 0, 0), "t") == 0)
            *cancel = true;
        else if (rc == 0)
            rc = lease_lost(j->id);
        PQclear(res);
        return rc;
    }
    /* a step that was already running (it waited) starts again silently */
    if (strcmp(store_val(res, 0, 1), "running") != 0)
        rc = emit(c, j->id, "step", step_event(store_val(res, 0, 0), state, message));
    PQclear(res);
    return rc;
}

static int step_update(struct store_pool *p, const struct store_job *j, const struct store_stmt *st,
                       const char *const *params, const char *state, const char *message,
                       bool *cancel)
{
    struct tx t = {0};
    int rc = tx_open(p, &t);
    if (rc)
        return rc;
    return tx_close(&t, step_update_on(t.c, j, st, params, state, message, cancel));
}

static int begin_step(struct store_conn *c, const struct store_job *j, const char *instance,
                      int idx, bool *cancel)
{
    char i[16];
    snprintf(i, sizeof(i), "%d", idx);
    const char *params[3] = {j->id, instance, i};
    return step_update_on(c, j, &st_step_begin, params, "running", NULL, cancel);
}

int store_job_step_begin(struct store_pool *p, const struct store_job *j, const char *instance,
                         int idx, bool *cancel)
{
    char i[16];
    snprintf(i, sizeof(i), "%d", idx);
    const char *params[3] = {j->id, instance, i};
    return step_update(p, j, &st_step_begin, params, "running", NULL, cancel);
}

int store_job_step_done(struct store_pool *p, const struct store_job *j, const char *instance,
                        int idx, const char *message, const json_t *result, bool skipped)
{
    char i[16];
    char *res = result ? dump(result) : NULL;
    const char *state = skipped ? "skipped" : "succeeded";
    snprintf(i, sizeof(i), "%d", idx);
    const char *params[6] = {j->id, instance, i, message, res, state};
    int rc = step_update(p, j, &st_step_done, params, state, message, NULL);
    free(res);
    return rc;
}

int store_job_wait(struct store_pool *p, const struct store_job *j, const char *instance, int idx,
                   const char *message, long long wait_ms)
{
    struct tx t = {0};
    char i[16], w[24];
    PGresult *res = NULL;
    int rc;

    snprintf(i, sizeof(i), "%d", idx);
    snprintf(w, sizeof(w), "%lld", wait_ms);
    const char *params[5] = {j->id, instance, i, message, w};
    if ((rc = tx_open(p, &t)) != 0)
        return rc;
    if ((rc = store_exec(t.c, &st_wait, params, &res)) != 0)
        return tx_close(&t, rc);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return tx_close(&t, lease_lost(j->id));
    }
    if (strcmp(store_val(res, 0, 1), "t") == 0) {
        rc = emit(t.c, j->id, "step",
                  json_pack("{s:s,s:s,s:o}", "step", store_val(res, 0, 0), "state", "waiting",
                            "message", cap_json_str(message)));
    }
    /* the next job of the tenant may go ahead meanwhile */
    if (rc == 0)
        rc = wake_tenant(t.c, store_val(res, 0, 2));
    PQclear(res);
    return tx_close(&t, rc);
}

int store_job_step_advance(struct store_pool *p, const struct store_job *j, const char *instance,
                           int idx, const char *message, const json_t *result, bool skipped,
                           int next, bool *cancel)
{
    char i[16], n[16];
    char *res_text = result ? dump(result) : NULL;
    const char *state = skipped ? "skipped" : "succeeded";
    PGresult *res = NULL;
    int rc;

    *cancel = false;
    snprintf(i, sizeof(i), "%d", idx);
    snprintf(n, sizeof(n), "%d", next);
    const char *params[7] = {j->id, instance, i, message, res_text, state, n};
    rc = store_run(p, &st_advance, params, &res);
    if (rc == 0 && PQntuples(res) == 0) {
        /* a cancel was asked (or the lease is gone): end this step, then let the usual start
         * of the next one say which */
        rc = store_job_step_done(p, j, instance, idx, message, result, skipped);
        if (rc == 0)
            rc = store_job_step_begin(p, j, instance, next, cancel);
    }
    PQclear(res);
    free(res_text);
    return rc;
}

int store_job_finish_last(struct store_pool *p, const struct store_job *j, const char *instance,
                          int idx, const char *message, const json_t *result, bool skipped)
{
    struct tx t = {0};
    char i[16];
    char *res_text = result ? dump(result) : NULL;
    PGresult *res = NULL;
    int rc;

    snprintf(i, sizeof(i), "%d", idx);
    const char *params[6] = {j->id,   instance, i,
                             message, res_text, skipped ? "skipped" : "succeeded"};
    if ((rc = tx_open(p, &t)) == 0) {
        rc = store_exec(t.c, &st_finish_last, params, &res);
        if (rc == 0 && PQntuples(res) == 0)
            rc = lease_lost(j->id);
        else if (rc == 0)
            rc = apply_outcome(t.c, j->id, (int)j->kind, j->tenant_id, j->env_id, j->params,
                               "succeeded", store_val(res, 0, 0));
        rc = tx_close(&t, rc);
    }
    PQclear(res);
    free(res_text);
    return rc;
}

int store_job_set_rendered(struct store_pool *p, const struct store_job *j, const char *instance,
                           const json_t *rendered)
{
    struct store_conn *c;
    char *text = dump(rendered);
    PGresult *res = NULL;
    const char *params[3] = {j->id, instance, text};
    int rc = store_acquire(p, &c);
    if (rc == 0) {
        rc = store_exec(c, &st_rendered, params, &res);
        if (rc == 0 && PQntuples(res) == 0)
            rc = lease_lost(j->id);
        PQclear(res);
        store_release(c);
    }
    free(text);
    return rc;
}

int store_job_log(struct store_pool *p, const struct store_job *j, const char *instance,
                  const char *level, const char *message)
{
    struct tx t = {0};
    PGresult *res = NULL;
    const char *params[2] = {j->id, instance};
    int rc;

    if ((rc = tx_open(p, &t)) != 0)
        return rc;
    if ((rc = store_exec(t.c, &st_check, params, &res)) == 0) {
        if (PQntuples(res) == 0) {
            rc = lease_lost(j->id);
        } else {
            rc = emit(t.c, j->id, "log",
                      json_pack("{s:s,s:o}", "level", level, "message", cap_json_str(message)));
        }
    }
    PQclear(res);
    return tx_close(&t, rc);
}

int store_job_step_failed(struct store_pool *p, const struct store_job *j, const char *instance,
                          int idx, const char *message, long long backoff_ms, bool permanent,
                          bool *final)
{
    struct tx t = {0};
    char i[16], b[24];
    PGresult *res = NULL;
    int rc;

    *final = false;
    snprintf(i, sizeof(i), "%d", idx);
    snprintf(b, sizeof(b), "%lld", backoff_ms);
    const char *params[6] = {j->id, instance, i, message, b, permanent ? "true" : "false"};
    if ((rc = tx_open(p, &t)) != 0)
        return rc;
    if ((rc = store_exec(t.c, &st_step_failed, params, &res)) != 0)
        return tx_close(&t, rc);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return tx_close(&t, lease_lost(j->id));
    }
    *final = strcmp(store_val(res, 0, 0), "failed") == 0;
    rc = emit(t.c, j->id, "step", step_event(store_val(res, 0, 1), "failed", message));
    if (rc == 0 && *final) {
        rc = emit(t.c, j->id, "state",
                  json_pack("{s:s,s:s,s:o}", "state", "failed", "step", store_val(res, 0, 1),
                            "message", cap_json_str(message)));
        if (rc == 0)
            rc = store_job_apply_outcome(t.c, j->id, "failed", NULL);
    } else if (rc == 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "attempt %s of %s failed; trying again in %.1f s",
                 store_val(res, 0, 2), store_val(res, 0, 3), (double)backoff_ms / 1000.0);
        rc = emit(t.c, j->id, "state",
                  json_pack("{s:s,s:s,s:s}", "state", "queued", "reason", "retry", "message", msg));
    }
    PQclear(res);
    return tx_close(&t, rc);
}

/* Ends the job (succeed/cancelled statements) and applies the outcome. */
static int finish(struct store_pool *p, const struct store_job *j, const struct store_stmt *st,
                  const char *const *params, const char *outcome)
{
    struct tx t = {0};
    PGresult *res = NULL;
    int rc;

    if ((rc = tx_open(p, &t)) != 0)
        return rc;
    if ((rc = store_exec(t.c, st, params, &res)) != 0)
        return tx_close(&t, rc);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return tx_close(&t, lease_lost(j->id));
    }
    const char *commit = store_val(res, 0, 1);
    json_t *ev = json_pack("{s:s}", "state", outcome);
    if (commit)
        json_object_set_new(ev, "commit", json_string(commit));
    rc = emit(t.c, j->id, "state", ev);
    if (rc == 0)
        rc = store_job_apply_outcome(t.c, j->id, outcome, commit);
    /* the next job of this tenant may run now */
    if (rc == 0)
        rc = wake_tenant(t.c, store_val(res, 0, 0));
    PQclear(res);
    return tx_close(&t, rc);
}

int store_job_succeed(struct store_pool *p, const struct store_job *j, const char *instance,
                      const json_t *result)
{
    char *text = result ? dump(result) : NULL;
    const char *params[3] = {j->id, instance, text};
    int rc = finish(p, j, &st_succeed, params, "succeeded");
    free(text);
    return rc;
}

int store_job_release(struct store_pool *p, const struct store_job *j, const char *instance)
{
    struct tx t = {0};
    PGresult *res = NULL;
    const char *params[2] = {j->id, instance};
    int rc;

    if ((rc = tx_open(p, &t)) != 0)
        return rc;
    if ((rc = store_exec(t.c, &st_release, params, &res)) == 0 && PQntuples(res) == 1) {
        rc = emit(t.c, j->id, "state",
                  json_pack("{s:s,s:s}", "state", "queued", "reason",
                            "the process running it is stopping; another takes it up"));
        if (rc == 0)
            rc = wake_tenant(t.c, store_val(res, 0, 0));
    }
    PQclear(res);
    return tx_close(&t, rc);
}

int store_job_cancelled(struct store_pool *p, const struct store_job *j, const char *instance)
{
    const char *params[2] = {j->id, instance};
    return finish(p, j, &st_cancelled, params, "cancelled");
}

/* ---- outcome effects on tenants and environments ---- */

static int tenant_effect(struct store_conn *c, long long id, const char *state,
                         long long generation, const char *only_from)
{
    char idt[24], gen[24];
    snprintf(idt, sizeof(idt), "%lld", id);
    snprintf(gen, sizeof(gen), "%lld", generation);
    const char *params[4] = {idt, state, generation > 0 ? gen : NULL, only_from};
    return store_exec(c, &st_tenant_outcome, params, NULL);
}

static int env_effect(struct store_conn *c, long long id, const char *state, long long generation,
                      const char *only_from, const char *commit)
{
    char idt[24], gen[24];
    snprintf(idt, sizeof(idt), "%lld", id);
    snprintf(gen, sizeof(gen), "%lld", generation);
    const char *params[5] = {idt, state, generation > 0 ? gen : NULL, only_from, commit};
    return store_exec(c, &st_env_outcome, params, NULL);
}

static int envs_effect(struct store_conn *c, long long tenant_id, const char *state)
{
    char idt[24];
    snprintf(idt, sizeof(idt), "%lld", tenant_id);
    const char *params[2] = {idt, state};
    return store_exec(c, &st_envs_outcome, params, NULL);
}

static int effects_started(struct store_conn *c, const struct store_job *j)
{
    switch (j->kind) {
    case JOB_TENANT_CREATE:
        return tenant_effect(c, j->tenant_id, "provisioning", 0, "pending,failed");
    case JOB_TENANT_UPDATE:
        return tenant_effect(c, j->tenant_id, "provisioning", 0, "failed");
    case JOB_ENV_CREATE:
    case JOB_ENV_UPDATE:
        return env_effect(c, j->env_id, "provisioning", 0, "pending,ready,failed", NULL);
    default:
        return 0;
    }
}

int store_job_apply_outcome(struct store_conn *c, const char *job_id, const char *outcome,
                            const char *commit)
{
    const char *params[1] = {job_id};
    PGresult *res = NULL;
    int rc = store_exec(c, &st_outcome_job, params, &res);
    if (rc)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return cap_error_set(CAP_ENOTFOUND, "job %s does not exist", job_id);
    }
    int kind = jobs_kind_parse(store_val(res, 0, 0));
    long long tenant_id = atoll(store_val(res, 0, 1));
    long long env_id = atoll(store_val(res, 0, 2));
    json_t *jp = store_json(res, 0, 3);
    PQclear(res);
    rc = apply_outcome(c, job_id, kind, tenant_id, env_id, jp, outcome, commit);
    json_decref(jp);
    return rc;
}

/* The outcome's effects on the tenant or environment of a job whose kind, ids and params are
 * known. */
static int apply_outcome(struct store_conn *c, const char *job_id, int kind, long long tenant_id,
                         long long env_id, const json_t *jp, const char *outcome,
                         const char *commit)
{
    int rc = 0;
    long long gen = json_integer_value(json_object_get(jp, "generation"));
    const char *prev = cap_json_get_str(jp, "previousState");
    bool cascade = json_is_true(json_object_get(jp, "cascade"));
    bool ok = strcmp(outcome, "succeeded") == 0;
    bool failed = strcmp(outcome, "failed") == 0;
    bool cancelled = strcmp(outcome, "cancelled") == 0;

    switch (kind) {
    case JOB_TENANT_CREATE:
        rc = tenant_effect(c, tenant_id, ok ? "ready" : "failed", ok ? gen : 0, NULL);
        break;
    case JOB_TENANT_UPDATE:
        if (ok)
            rc = tenant_effect(c, tenant_id, "ready", gen, "ready,provisioning,failed");
        else if (failed)
            rc = tenant_effect(c, tenant_id, "failed", 0, "ready,provisioning,failed");
        break;
    case JOB_TENANT_DELETE:
        if (ok) {
            rc = envs_effect(c, tenant_id, "deleted");
            if (rc == 0)
                rc = tenant_effect(c, tenant_id, "deleted", 0, NULL);
        } else if (failed) {
            rc = tenant_effect(c, tenant_id, "failed", 0, NULL);
        } else if (cancelled) {
            if (cascade)
                rc = envs_effect(c, tenant_id, "ready");
            if (rc == 0)
                rc = tenant_effect(c, tenant_id, prev ? prev : "ready", 0, NULL);
        }
        break;
    case JOB_ENV_CREATE:
    case JOB_ENV_UPDATE:
        if (ok)
            rc = env_effect(c, env_id, "ready", gen, "pending,provisioning,ready,failed", commit);
        else if (failed || kind == JOB_ENV_CREATE)
            rc = env_effect(c, env_id, "failed", 0, "pending,provisioning,ready,failed", NULL);
        break;
    case JOB_ENV_DELETE:
    case JOB_ENV_EXPIRE:
        if (ok)
            rc = env_effect(c, env_id, kind == JOB_ENV_DELETE ? "deleted" : "expired", 0, NULL,
                            commit);
        else if (failed)
            rc = env_effect(c, env_id, "failed", 0, NULL, NULL);
        else if (cancelled)
            rc = env_effect(c, env_id, prev ? prev : "ready", 0, NULL, NULL);
        break;
    default:
        rc = cap_error_set(CAP_ERROR, "job %s has an unknown kind", job_id);
    }
    return rc;
}

int store_expire_due(struct store_pool *p, int max, int *n)
{
    struct tx t = {0};
    json_t *steps = jobs_initial_steps(JOB_ENV_EXPIRE);
    char *steps_text = dump(steps);
    char m[16];
    PGresult *res = NULL;
    int rc;

    *n = 0;
    snprintf(m, sizeof(m), "%d", max);
    const char *params[2] = {steps_text, m};
    if ((rc = tx_open(p, &t)) == 0) {
        rc = store_exec(t.c, &st_expire, params, &res);
        for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
            rc = emit(t.c, store_val(res, i, 0), "state",
                      json_pack("{s:s,s:s}", "state", "queued", "reason",
                                "the environment's expiresAt has passed"));
            if (rc == 0)
                rc = wake_tenant(t.c, store_val(res, i, 1));
        }
        if (rc == 0)
            *n = PQntuples(res);
        PQclear(res);
        rc = tx_close(&t, rc);
    }
    free(steps_text);
    json_decref(steps);
    return rc;
}

int store_instance_heartbeat(struct store_pool *p, const char *instance, const char *hostname,
                             int pid, const char *version)
{
    struct store_conn *c;
    char pidt[16];
    int rc;

    snprintf(pidt, sizeof(pidt), "%d", pid);
    const char *params[4] = {instance, hostname, pidt, version};
    if ((rc = store_acquire(p, &c)) != 0)
        return rc;
    rc = store_exec(c, &st_heartbeat, params, NULL);
    if (rc == 0)
        rc = store_exec(c, &st_instance_gc, NULL, NULL);
    store_release(c);
    return rc;
}

int store_instance_remove(struct store_pool *p, const char *instance)
{
    struct store_conn *c;
    const char *params[1] = {instance};
    int rc = store_acquire(p, &c);
    if (rc)
        return rc;
    rc = store_exec(c, &st_instance_remove, params, NULL);
    store_release(c);
    return rc;
}

int store_job_queue_stats(struct store_pool *p, long long *queued, double *oldest_s)
{
    struct store_conn *c;
    PGresult *res = NULL;
    int rc = store_acquire(p, &c);
    if (rc)
        return rc;
    rc = store_exec(c, &st_queue_stats, NULL, &res);
    if (rc == 0) {
        *queued = atoll(store_val(res, 0, 0));
        *oldest_s = strtod(store_val(res, 0, 1), NULL);
    }
    PQclear(res);
    store_release(c);
    return rc;
}
