/* kube_driver: a command-line driver of the Kubernetes client (server/kube) for the
 * integration tests (tests/integration/test_kube.py).
 *
 *   kube_driver (--kubeconfig FILE [--context NAME] [--allow-insecure] [--allow-http]
 *                | --in-cluster [--sa-dir DIR] [--host H] [--port P])
 *               [--timeout-ms N] [--retry-after-max-ms N] [--max-retries N]
 *               [--token-reread-ms N]
 *
 * It makes one client, then reads one JSON command per line on standard input and writes
 * one JSON line per result on standard output (flushed), so that one client lives across
 * several calls (token rotation, connection reuse):
 *   {"op":"get","path":P}
 *   {"op":"list","path":P,"labelSelector":S,"fieldSelector":S,"limit":N,"continue":T}
 *   {"op":"apply","path":P,"object":{...}|"yaml":"...","force":false}
 *   {"op":"patch","path":P,"patch":{...}}
 *   {"op":"delete","path":P,"propagation":"Background"}
 *   {"op":"path","apiVersion":A,"resource":R,"namespace":N,"name":M}
 *   {"op":"watch","path":P,"labelSelector":S,"resourceVersion":RV,"timeoutMs":N,
 *    "until":{"name":X,"field":"status.phase","equals":V} | {"name":X,"deleted":true}
 *            | {"events":N}, "stopAfterMs":N}   (one line per event, then the result
 *    with stats; stopAfterMs sets the watch's stop flag from another thread)
 *   {"op":"parallel","path":P,"threads":N,"count":M}   (N threads, M GETs each)
 * A result is {"op","ok":true,"ms","result"} or {"op","ok":false,"ms","code","error",
 * "message","field"}. The first line says how the client was configured (never a secret). */
#include "kube/kube.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct kube_client *client;

static void emit(json_t *o)
{
    char *s = cap_json_dump(o);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(s);
    json_decref(o);
}

static json_t *result(const char *op, int rc, int64_t start, json_t *value)
{
    json_t *o = json_object();
    json_object_set_new(o, "op", json_string(op));
    json_object_set_new(o, "ok", json_boolean(rc == 0));
    json_object_set_new(o, "ms", json_integer(cap_mono_ms() - start));
    if (rc == 0) {
        json_object_set_new(o, "result", value ? value : json_null());
    } else {
        json_decref(value);
        json_object_set_new(o, "code", json_integer(rc));
        json_object_set_new(o, "error", json_string(cap_error_name(rc)));
        json_object_set_new(o, "message", cap_json_str(cap_error_message()));
        json_object_set_new(o, "field", cap_json_str(cap_error_field()));
        json_object_set_new(o, "retryable", json_boolean(kube_error_retryable(rc)));
    }
    return o;
}

/* ---- watch ---------------------------------------------------------------------------- */

struct until {
    const char *name;
    const char *field; /* dotted path */
    const char *equals;
    bool deleted;
    long events;
    long seen;
};

static const json_t *dotted(const json_t *o, const char *path)
{
    char part[128];
    const char *p = path;
    while (o && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        o = json_object_get(o, part);
        p += n + (p[n] == '.');
    }
    return o;
}

static bool object_matches(const struct until *u, const json_t *obj)
{
    const char *name = cap_json_get_str(json_object_get(obj, "metadata"), "name");
    const json_t *v;
    if (!u->name || !name || strcmp(u->name, name) != 0 || !u->field)
        return false;
    v = dotted(obj, u->field);
    return json_is_string(v) && u->equals && strcmp(json_string_value(v), u->equals) == 0;
}

static int on_event(void *ud, enum kube_event_type type, const json_t *obj)
{
    static const char *names[] = {"LIST", "ADDED", "MODIFIED", "DELETED", "BOOKMARK"};
    struct until *u = ud;
    json_t *line = json_object();
    const json_t *meta = json_object_get(obj, "metadata");
    bool stop = false;

    json_object_set_new(line, "event", json_string(names[type]));
    json_object_set_new(line, "rv", cap_json_str(cap_json_get_str(meta, "resourceVersion")));
    if (type == KUBE_EVENT_LIST) {
        json_t *items = json_array();
        size_t i;
        json_t *it;
        bool present = false;
        json_array_foreach(json_object_get(obj, "items"), i, it)
        {
            const char *n = cap_json_get_str(json_object_get(it, "metadata"), "name");
            json_array_append_new(items, cap_json_str(n));
            if (object_matches(u, it))
                stop = true;
            if (u->name && n && strcmp(n, u->name) == 0)
                present = true;
        }
        if (u->deleted && u->name && !present)
            stop = true;
        json_object_set_new(line, "items", items);
    } else if (type != KUBE_EVENT_BOOKMARK) {
        const char *n = cap_json_get_str(meta, "name");
        json_object_set_new(line, "name", cap_json_str(n));
        if (u->field) {
            const json_t *v = dotted(obj, u->field);
            json_object_set(line, "value", v ? (json_t *)v : json_null());
        }
        if (object_matches(u, obj) && type != KUBE_EVENT_DELETED)
            stop = true;
        if (u->deleted && type == KUBE_EVENT_DELETED && u->name && n && strcmp(n, u->name) == 0)
            stop = true;
    }
    emit(line);
    if (type != KUBE_EVENT_BOOKMARK && u->events > 0 && ++u->seen >= u->events)
        stop = true;
    return stop ? KUBE_WATCH_STOP : 0;
}

struct stopper {
    atomic_int flag;
    long after_ms;
};

static void *stop_later(void *arg)
{
    struct stopper *s = arg;
    cap_sleep_ms(s->after_ms);
    atomic_store(&s->flag, 1);
    return NULL;
}

static json_t *do_watch(const json_t *cmd, int *rc)
{
    struct kube_watch_options wo = {0};
    struct stopper stopper;
    pthread_t stop_thread;
    bool stopping = false;
    struct kube_watch_stats st;
    struct until u = {0};
    const json_t *until = json_object_get(cmd, "until");
    json_t *out;

    wo.label_selector = cap_json_get_str(cmd, "labelSelector");
    wo.field_selector = cap_json_get_str(cmd, "fieldSelector");
    wo.resource_version = cap_json_get_str(cmd, "resourceVersion");
    wo.timeout_ms = (long)json_integer_value(json_object_get(cmd, "timeoutMs"));
    wo.reconnect_min_ms = 50;
    wo.reconnect_max_ms = 500;
    u.name = cap_json_get_str(until, "name");
    u.field = cap_json_get_str(until, "field");
    u.equals = cap_json_get_str(until, "equals");
    u.deleted = json_is_true(json_object_get(until, "deleted"));
    u.events = (long)json_integer_value(json_object_get(until, "events"));
    atomic_init(&stopper.flag, 0);
    stopper.after_ms = (long)json_integer_value(json_object_get(cmd, "stopAfterMs"));
    if (stopper.after_ms > 0) {
        /* Another thread asks the watch to end, as a shutting-down worker would. */
        wo.stop = &stopper.flag;
        stopping = pthread_create(&stop_thread, NULL, stop_later, &stopper) == 0;
    }
    *rc = kube_watch(client, cap_json_get_str(cmd, "path"), &wo, on_event, &u, &st);
    if (stopping)
        pthread_join(stop_thread, NULL);
    out = json_object();
    json_object_set_new(out, "connects", json_integer(st.connects));
    json_object_set_new(out, "relists", json_integer(st.relists));
    json_object_set_new(out, "bookmarks", json_integer(st.bookmarks));
    json_object_set_new(out, "resourceVersion", json_string(st.resource_version));
    return out;
}

/* ---- parallel ------------------------------------------------------------------------- */

struct worker {
    pthread_t thread;
    const char *path;
    long count;
    long ok;
    long failed;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (long i = 0; i < w->count; i++) {
        json_t *obj = NULL;
        if (kube_get(&obj, client, w->path, 0) == 0)
            w->ok++;
        else
            w->failed++;
        json_decref(obj);
    }
    return NULL;
}

static json_t *do_parallel(const json_t *cmd, int *rc)
{
    long n = (long)json_integer_value(json_object_get(cmd, "threads"));
    long count = (long)json_integer_value(json_object_get(cmd, "count"));
    struct worker ws[32];
    long ok = 0, failed = 0;
    json_t *out;

    if (n < 1 || n > 32)
        n = 4;
    for (long i = 0; i < n; i++) {
        ws[i] = (struct worker){0};
        ws[i].path = cap_json_get_str(cmd, "path");
        ws[i].count = count;
        pthread_create(&ws[i].thread, NULL, work, &ws[i]);
    }
    for (long i = 0; i < n; i++) {
        pthread_join(ws[i].thread, NULL);
        ok += ws[i].ok;
        failed += ws[i].failed;
    }
    out = json_object();
    json_object_set_new(out, "ok", json_integer(ok));
    json_object_set_new(out, "failed", json_integer(failed));
    *rc = 0;
    return out;
}

/* ---- commands ------------------------------------------------------------------------- */

static void run(const json_t *cmd)
{
    const char *op = cap_json_get_str(cmd, "op");
    const char *path = cap_json_get_str(cmd, "path");
    long timeout = (long)json_integer_value(json_object_get(cmd, "timeoutMs"));
    int64_t start = cap_mono_ms();
    json_t *value = NULL;
    int rc;

    cap_error_clear();
    if (!op) {
        rc = cap_error_set(CAP_EINVALID, "no op");
    } else if (strcmp(op, "get") == 0) {
        rc = kube_get(&value, client, path, timeout);
    } else if (strcmp(op, "list") == 0) {
        struct kube_list_options lo = {0};
        lo.label_selector = cap_json_get_str(cmd, "labelSelector");
        lo.field_selector = cap_json_get_str(cmd, "fieldSelector");
        lo.limit = (long)json_integer_value(json_object_get(cmd, "limit"));
        lo.continue_token = cap_json_get_str(cmd, "continue");
        lo.timeout_ms = timeout;
        rc = kube_list(&value, client, path, &lo);
    } else if (strcmp(op, "apply") == 0) {
        bool force = json_is_true(json_object_get(cmd, "force"));
        const char *yaml = cap_json_get_str(cmd, "yaml");
        if (yaml)
            rc = kube_apply_yaml(&value, client, path, yaml, strlen(yaml), force, timeout);
        else
            rc = kube_apply(&value, client, path, json_object_get(cmd, "object"), force, timeout);
    } else if (strcmp(op, "patch") == 0) {
        rc = kube_merge_patch(&value, client, path, json_object_get(cmd, "patch"), timeout);
    } else if (strcmp(op, "delete") == 0) {
        rc = kube_delete(&value, client, path, cap_json_get_str(cmd, "propagation"), timeout);
    } else if (strcmp(op, "path") == 0) {
        char buf[KUBE_PATH_MAX];
        rc = kube_path(buf, sizeof(buf), cap_json_get_str(cmd, "apiVersion"),
                       cap_json_get_str(cmd, "resource"), cap_json_get_str(cmd, "namespace"),
                       cap_json_get_str(cmd, "name"));
        if (rc == 0)
            value = json_string(buf);
    } else if (strcmp(op, "watch") == 0) {
        value = do_watch(cmd, &rc);
        if (rc != 0) {
            /* Keep the stats with the error. */
            json_t *o = result(op, rc, start, NULL);
            json_object_set_new(o, "stats", value);
            emit(o);
            return;
        }
    } else if (strcmp(op, "parallel") == 0) {
        value = do_parallel(cmd, &rc);
    } else {
        rc = cap_error_set(CAP_EINVALID, "unknown op \"%s\"", op);
    }
    emit(result(op ? op : "", rc, start, value));
}

static int usage(void)
{
    fputs("usage: kube_driver (--kubeconfig FILE [--context C] | --in-cluster [--sa-dir D] "
          "[--host H] [--port P]) [--allow-insecure] [--allow-http] [--timeout-ms N] "
          "[--retry-after-max-ms N] [--max-retries N] [--token-reread-ms N]\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    struct kube_config_options co = {0};
    struct kube_incluster_options io = {0};
    struct kube_options ko = {0};
    struct kube_config *cfg = NULL;
    const char *kubeconfig = NULL;
    bool in_cluster = false;
    static char line[1 << 20];
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n = 0;
        if (strcmp(a, "--allow-insecure") == 0) {
            co.allow_insecure = true;
        } else if (strcmp(a, "--allow-http") == 0) {
            co.allow_http = true;
        } else if (strcmp(a, "--in-cluster") == 0) {
            in_cluster = true;
        } else if (!v) {
            return usage();
        } else if (strcmp(a, "--kubeconfig") == 0) {
            kubeconfig = v, i++;
        } else if (strcmp(a, "--context") == 0) {
            co.context = v, i++;
        } else if (strcmp(a, "--sa-dir") == 0) {
            io.sa_dir = v, i++;
        } else if (strcmp(a, "--host") == 0) {
            io.host = v, i++;
        } else if (strcmp(a, "--port") == 0) {
            io.port = v, i++;
        } else if (cap_parse_long(&n, v, -1, 86400000) == 0 && strcmp(a, "--timeout-ms") == 0) {
            ko.timeout_ms = (long)n, i++;
        } else if (cap_parse_long(&n, v, -1, 86400000) == 0 &&
                   strcmp(a, "--retry-after-max-ms") == 0) {
            ko.retry_after_max_ms = (long)n, i++;
        } else if (cap_parse_long(&n, v, -1, 1000) == 0 && strcmp(a, "--max-retries") == 0) {
            ko.max_retries = (int)n, i++;
        } else if (cap_parse_long(&n, v, -1, 86400000) == 0 &&
                   strcmp(a, "--token-reread-ms") == 0) {
            ko.token_reread_ms = (long)n, i++;
        } else {
            return usage();
        }
    }
    if (!kubeconfig && !in_cluster)
        return usage();
    rc = in_cluster ? kube_config_in_cluster(&cfg, &io)
                    : kube_config_load_file(&cfg, kubeconfig, &co);
    if (rc == 0)
        rc = kube_client_new(&client, cfg, &ko);
    {
        json_t *o = result("config", rc, cap_mono_ms(), NULL);
        if (rc == 0) {
            json_t *info = json_object();
            json_object_set_new(info, "server", json_string(cfg->server));
            json_object_set_new(info, "namespace", json_string(kube_client_namespace(client)));
            json_object_set_new(info, "ca", json_boolean(cfg->ca != NULL));
            json_object_set_new(info, "cert", json_boolean(cfg->cert != NULL));
            json_object_set_new(info, "token", json_boolean(cfg->token != NULL));
            json_object_set_new(info, "tokenFile", json_boolean(cfg->token_file != NULL));
            json_object_set_new(info, "insecure", json_boolean(cfg->insecure));
            json_object_set_new(o, "result", info);
        }
        emit(o);
    }
    kube_config_free(cfg);
    if (rc != 0)
        return 1;
    while (fgets(line, sizeof(line), stdin)) {
        json_error_t err;
        json_t *cmd = json_loads(line, 0, &err);
        if (!cmd) {
            cap_error_set(CAP_EMALFORMED, "bad command: %s", err.text);
            emit(result("", CAP_EMALFORMED, cap_mono_ms(), NULL));
            continue;
        }
        run(cmd);
        json_decref(cmd);
    }
    kube_client_free(client);
    return 0;
}
