/* capstan: Kubernetes WATCH with resourceVersion, bookmarks, reconnects and relists.
 *
 * The protocol (see README.md): LIST to learn the state and its resourceVersion, then
 * GET ...?watch=1&resourceVersion=RV&allowWatchBookmarks=true, which answers a stream of
 * JSON objects, one per line: {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}.
 * Every event moves RV forward. A dropped stream is resumed from RV; a 410 Gone (the server
 * no longer has RV: as an HTTP status or as an ERROR event holding a Status with code 410)
 * means events were lost, so the collection is listed again and handed to the callback whole.
 *
 * Invariants: a line is at most max_response bytes; events are handed to the callback in
 * order, on the thread that called kube_watch; RV is only taken from events the server sent
 * and is at most 63 characters. */
#include "kube/internal.h"

#include "log/log.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RV_MAX             64
#define LINE_MAX_BYTES     (16u * 1024u * 1024u)
#define WATCH_MAX_SERVER_S 300

struct watch {
    struct kube_client *c;
    kube_watch_fn cb;
    void *ud;
    struct kube_watch_stats *stats;
    struct cap_buf line;
    char rv[RV_MAX];
    int cb_rc;     /* what the callback returned, when it ended the watch */
    bool cb_ended; /* the callback ended the watch */
    bool gone;     /* a 410 ERROR event arrived */
    int error_rc;  /* another ERROR event or a bad line ended the stream */
    int events;    /* events in this stream */
};

static int set_rv(struct watch *w, const json_t *obj)
{
    const char *rv = cap_json_get_str(json_object_get(obj, "metadata"), "resourceVersion");
    if (!rv || !*rv || strlen(rv) >= RV_MAX)
        return cap_error_set(CAP_EUNAVAILABLE,
                             "kubernetes api sent an object without a valid resourceVersion");
    cap_strlcpy(w->rv, rv, sizeof(w->rv));
    cap_strlcpy(w->stats->resource_version, rv, sizeof(w->stats->resource_version));
    return 0;
}

static void call(struct watch *w, enum kube_event_type type, const json_t *obj)
{
    int rc = w->cb(w->ud, type, obj);
    if (rc != 0) {
        w->cb_ended = true;
        w->cb_rc = rc == KUBE_WATCH_STOP ? 0 : rc;
        if (rc > 0 && rc != KUBE_WATCH_STOP)
            w->cb_rc = cap_error_set(CAP_ERROR, "the watch callback returned %d", rc);
    }
}

/* Handles one line of the stream; returns false to end the stream. */
static bool on_line(struct watch *w, const char *s, size_t n)
{
    json_t *ev, *obj;
    const char *type;
    json_error_t jerr;
    bool go_on = true;

    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' '))
        n--;
    if (n == 0)
        return true;
    ev = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
    type = cap_json_get_str(ev, "type");
    obj = json_object_get(ev, "object");
    if (!json_is_object(ev) || !type || !json_is_object(obj)) {
        w->error_rc = cap_error_set(CAP_EUNAVAILABLE, "kubernetes api sent a watch event that is "
                                                      "not {type, object}");
        json_decref(ev);
        return false;
    }
    if (strcmp(type, "ERROR") == 0) {
        struct kube_status st;
        json_t *code = json_object_get(obj, "code");
        char *body = cap_json_dump(obj);
        int rc =
            kube_status_error(&st, json_is_integer(code) ? 0 : 500, body, body ? strlen(body) : 0);
        free(body);
        if (st.code == 410)
            w->gone = true;
        else
            w->error_rc = rc;
        go_on = false;
    } else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 ||
               strcmp(type, "DELETED") == 0 || strcmp(type, "BOOKMARK") == 0) {
        enum kube_event_type t = type[0] == 'A'   ? KUBE_EVENT_ADDED
                                 : type[0] == 'M' ? KUBE_EVENT_MODIFIED
                                 : type[0] == 'D' ? KUBE_EVENT_DELETED
                                                  : KUBE_EVENT_BOOKMARK;
        int rc = set_rv(w, obj);
        if (rc) {
            w->error_rc = rc;
            go_on = false;
        } else {
            w->events++;
            if (t == KUBE_EVENT_BOOKMARK)
                w->stats->bookmarks++;
            call(w, t, obj);
            go_on = !w->cb_ended;
        }
    } else {
        w->error_rc = cap_error_set(
            CAP_EUNAVAILABLE, "kubernetes api sent a watch event of unknown type \"%.20s\"", type);
        go_on = false;
    }
    json_decref(ev);
    return go_on;
}

static bool on_data(void *ud, const char *data, size_t len)
{
    struct watch *w = ud;
    size_t start = 0;

    if (cap_buf_append(&w->line, data, len) != 0) {
        w->error_rc =
            cap_error_set(CAP_EUNAVAILABLE, "a watch event is larger than %zu bytes", w->line.max);
        return false;
    }
    for (size_t i = w->line.len - len; i < w->line.len; i++) {
        if (w->line.data[i] != '\n')
            continue;
        if (!on_line(w, w->line.data + start, i - start)) {
            cap_buf_reset(&w->line);
            return false;
        }
        start = i + 1;
    }
    if (start > 0) {
        memmove(w->line.data, w->line.data + start, w->line.len - start);
        w->line.len -= start;
        w->line.data[w->line.len] = '\0';
    }
    return true;
}

static void pause_ms(long ms, const struct kube_watch_options *opt, int64_t deadline)
{
    int64_t until = cap_mono_ms() + ms;
    if (until > deadline)
        until = deadline;
    while (cap_mono_ms() < until && !(opt->stop && atomic_load(opt->stop))) {
        int64_t left = until - cap_mono_ms();
        cap_sleep_ms(left > 100 ? 100 : (left > 0 ? left : 0));
    }
}

static int do_list(struct watch *w, const char *path, const struct kube_watch_options *opt,
                   int64_t deadline)
{
    struct kube_list_options lo = {0};
    json_t *list = NULL;
    int rc;

    lo.label_selector = opt->label_selector;
    lo.field_selector = opt->field_selector;
    lo.timeout_ms = (long)(deadline - cap_mono_ms());
    if (lo.timeout_ms <= 0)
        return cap_error_set(CAP_ETIMEOUT, "the watch deadline passed");
    rc = kube_list(&list, w->c, path, &lo);
    if (rc)
        return rc;
    rc = set_rv(w, list);
    if (rc == 0)
        call(w, KUBE_EVENT_LIST, list);
    json_decref(list);
    return rc;
}

int kube_watch(struct kube_client *c, const char *path, const struct kube_watch_options *opt,
               kube_watch_fn cb, void *ud, struct kube_watch_stats *stats)
{
    static const struct kube_watch_options none = {0};
    struct kube_watch_stats local_stats;
    struct watch w = {0};
    long timeout, backoff, backoff_min, backoff_max;
    int64_t deadline;
    bool need_list;
    char url[KUBE_PATH_MAX + 2048];
    int rc = 0;

    if (!opt)
        opt = &none;
    if (!stats)
        stats = &local_stats;
    memset(stats, 0, sizeof(*stats));
    if (!path || path[0] != '/' || strchr(path, '?') || strlen(path) >= KUBE_PATH_MAX)
        return cap_error_set(CAP_EINVALID, "\"%.80s\" is not a kubernetes api path",
                             path ? path : "");
    timeout = opt->timeout_ms > 0 ? opt->timeout_ms : kube_client_timeout(c);
    deadline = cap_mono_ms() + timeout;
    backoff_min = opt->reconnect_min_ms > 0 ? opt->reconnect_min_ms : 100;
    backoff_max = opt->reconnect_max_ms > 0 ? opt->reconnect_max_ms : 5000;
    backoff = backoff_min;
    w.c = c;
    w.cb = cb;
    w.ud = ud;
    w.stats = stats;
    cap_buf_init(&w.line, LINE_MAX_BYTES);
    need_list = !opt->resource_version || !*opt->resource_version;
    if (!need_list) {
        if (strlen(opt->resource_version) >= RV_MAX)
            return cap_error_set(CAP_EINVALID, "the resourceVersion is too long");
        cap_strlcpy(w.rv, opt->resource_version, sizeof(w.rv));
        cap_strlcpy(stats->resource_version, w.rv, sizeof(stats->resource_version));
    }

    for (;;) {
        struct kube_stream s = {on_data, &w, opt->stop, deadline};
        long http = 0, left_s;

        if (opt->stop && atomic_load(opt->stop)) {
            rc = cap_error_set(CAP_ERETRY, "the watch was stopped");
            break;
        }
        if (cap_mono_ms() >= deadline) {
            rc = cap_error_set(CAP_ETIMEOUT, "the watch ended at its deadline (%ld ms)", timeout);
            break;
        }
        if (need_list) {
            rc = do_list(&w, path, opt, deadline);
            if (w.cb_ended) {
                rc = w.cb_rc;
                break;
            }
            if (rc) {
                if (rc == CAP_ETIMEOUT || !kube_error_retryable(rc))
                    break;
                log_info("kubernetes: listing %s failed, retrying: %s", path, cap_error_message());
                pause_ms(backoff, opt, deadline);
                backoff = backoff * 2 > backoff_max ? backoff_max : backoff * 2;
                continue;
            }
            need_list = false;
        }

        cap_strlcpy(url, path, sizeof(url));
        left_s = (long)((deadline - cap_mono_ms()) / 1000) + 1;
        if (left_s > WATCH_MAX_SERVER_S)
            left_s = WATCH_MAX_SERVER_S;
        {
            char num[24];
            snprintf(num, sizeof(num), "%ld", left_s);
            if ((rc = kube_query_add(url, sizeof(url), "watch", "1")) ||
                (rc = kube_query_add(url, sizeof(url), "resourceVersion", w.rv)) ||
                (rc = kube_query_add(url, sizeof(url), "allowWatchBookmarks", "true")) ||
                (rc = kube_query_add(url, sizeof(url), "timeoutSeconds", num)) ||
                (opt->label_selector && *opt->label_selector &&
                 (rc = kube_query_add(url, sizeof(url), "labelSelector", opt->label_selector))) ||
                (opt->field_selector && *opt->field_selector &&
                 (rc = kube_query_add(url, sizeof(url), "fieldSelector", opt->field_selector))))
                break;
        }
        w.gone = false;
        w.error_rc = 0;
        w.events = 0;
        cap_buf_reset(&w.line);
        stats->connects++;
        rc = kube_stream_get(c, url, &s, &http);
        if (w.cb_ended) {
            rc = w.cb_rc;
            break;
        }
        if (w.gone || rc == CAP_EPRECONDITION || http == 410) {
            log_info("kubernetes: watch of %s expired at resourceVersion %s; listing again", path,
                     w.rv);
            stats->relists++;
            need_list = true;
            continue;
        }
        if (w.error_rc)
            rc = w.error_rc;
        if (rc == CAP_ETIMEOUT || rc == CAP_ERETRY) {
            if (rc == CAP_ETIMEOUT)
                cap_error_set(CAP_ETIMEOUT, "the watch ended at its deadline (%ld ms)", timeout);
            break;
        }
        if (rc != 0 && !kube_error_retryable(rc))
            break;
        if (w.events > 0)
            backoff = backoff_min;
        if (rc != 0) {
            log_info("kubernetes: watch of %s broke, resuming from %s: %s", path, w.rv,
                     cap_error_message());
            pause_ms(backoff, opt, deadline);
            backoff = backoff * 2 > backoff_max ? backoff_max : backoff * 2;
        } else if (w.events == 0) {
            /* The server ended an empty stream: resume, but never in a tight loop. */
            pause_ms(backoff_min, opt, deadline);
        }
    }
    cap_buf_free(&w.line);
    return rc;
}
