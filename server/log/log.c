/* capstan: logging (see log.h). */
#include "log/log.h"

#include "util/json.h"
#include "util/str.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SECRETS 32
#define REDACTED    "[redacted]"

int log_min_level = LOG_INFO;
static int log_format = LOG_FORMAT_JSON;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t secrets_lock = PTHREAD_RWLOCK_INITIALIZER;
static char *secrets[MAX_SECRETS];
static int nsecrets;

static _Thread_local char ctx_request[80];
static _Thread_local char ctx_job[40];
static _Thread_local char ctx_tenant[64];

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

int log_level_parse(const char *s)
{
    for (int i = 0; i <= LOG_OFF; i++)
        if (s && strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void log_init(int level, int format)
{
    log_min_level = level;
    if (format == LOG_FORMAT_AUTO)
        format = isatty(STDERR_FILENO) ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
    log_format = format;
}

void log_context_set(const char *request_id, const char *job_id, const char *tenant)
{
    cap_strlcpy(ctx_request, request_id ? request_id : "", sizeof(ctx_request));
    cap_strlcpy(ctx_job, job_id ? job_id : "", sizeof(ctx_job));
    cap_strlcpy(ctx_tenant, tenant ? tenant : "", sizeof(ctx_tenant));
}

void log_context_clear(void)
{
    log_context_set(NULL, NULL, NULL);
}

void log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < 6)
        return;
    pthread_rwlock_wrlock(&secrets_lock);
    for (int i = 0; i < nsecrets; i++) {
        if (strcmp(secrets[i], secret) == 0) {
            pthread_rwlock_unlock(&secrets_lock);
            return;
        }
    }
    if (nsecrets < MAX_SECRETS) {
        char *copy = strdup(secret);
        if (copy)
            secrets[nsecrets++] = copy;
    }
    pthread_rwlock_unlock(&secrets_lock);
}

void log_clear_secrets(void)
{
    pthread_rwlock_wrlock(&secrets_lock);
    for (int i = 0; i < nsecrets; i++)
        free(secrets[i]);
    nsecrets = 0;
    pthread_rwlock_unlock(&secrets_lock);
}

void log_redact(char *s)
{
    pthread_rwlock_rdlock(&secrets_lock);
    for (int i = 0; i < nsecrets; i++) {
        size_t slen = strlen(secrets[i]), rlen = strlen(REDACTED);
        char *p;
        while ((p = strstr(s, secrets[i])) != NULL) {
            size_t put = rlen < slen ? rlen : slen;
            memcpy(p, REDACTED, put);
            memmove(p + put, p + slen, strlen(p + slen) + 1);
        }
    }
    pthread_rwlock_unlock(&secrets_lock);
}

static void emit(const char *line)
{
    pthread_mutex_lock(&out_lock);
    fputs(line, stderr);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&out_lock);
}

static void emit_text(int level, const char *ts, const char *msg, json_t *fields)
{
    char *extra =
        fields ? json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10)) : NULL;
    char *line = NULL;
    if (asprintf(&line, "%s %-5s %s%s%s%s%s%s%s%s%s", ts, level_names[level], msg,
                 ctx_request[0] ? " request=" : "", ctx_request, ctx_job[0] ? " job=" : "", ctx_job,
                 ctx_tenant[0] ? " tenant=" : "", ctx_tenant, extra ? " " : "",
                 extra ? extra : "") >= 0) {
        log_redact(line);
        emit(line);
        free(line);
    }
    free(extra);
}

void log_write(int level, json_t *fields, const char *fmt, ...)
{
    char msg[2048];
    char ts[32];
    va_list ap;

    if (level < log_min_level || level < LOG_DEBUG || level > LOG_ERROR) {
        json_decref(fields);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cap_format_rfc3339(ts, cap_now_ms());

    if (log_format == LOG_FORMAT_TEXT) {
        emit_text(level, ts, msg, fields);
        json_decref(fields);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "msg", cap_json_str(msg));
    if (ctx_request[0])
        json_object_set_new(o, "requestId", json_string(ctx_request));
    if (ctx_job[0])
        json_object_set_new(o, "jobId", json_string(ctx_job));
    if (ctx_tenant[0])
        json_object_set_new(o, "tenant", json_string(ctx_tenant));
    if (fields)
        json_object_update(o, fields);
    /* 10 significant digits: durations read 0.483, not 0.48299999999999998 */
    char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
    if (line) {
        log_redact(line);
        emit(line);
        free(line);
    }
    json_decref(o);
    json_decref(fields);
}
