/* capstan: the github provider of tenant platform repositories, on the GitHub REST API v3
 * (libcurl + jansson).
 *
 * One call: GET /repos/{owner}/{name}; 200 -> reuse it if it came from the blueprint
 * (template_repository, or parent/source for forks), else CAP_ECONFLICT; 404 -> create it:
 * POST /repos/{template}/generate (201) or POST /repos/{fork}/forks (202, then poll the GET with
 * backoff until the fork is visible). A 422 "name already exists" (a race, or an earlier attempt
 * whose answer was lost) goes back to the GET. Every step is bounded by one deadline.
 *
 * Invariants:
 *   - the token lives only in the Authorization header list of the call's curl handle, whose
 *     strings are wiped before they are freed; messages quoted from GitHub are cleaned and have
 *     the token replaced;
 *   - only https is spoken, no redirect is followed (a moved repository is reported), TLS
 *     verification is always on, and every answer is checked (status, content type, JSON shape,
 *     size, clone_url) before it is used;
 *   - rate limits follow GitHub's rules (retry-after, else x-ratelimit-reset when
 *     x-ratelimit-remaining is 0, else a minute): waited out when the budget allows, else
 *     CAP_ERATELIMIT saying when to try again. */
#include "cloud/internal.h"

#include "log/log.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GH_BODY_MAX       (1u << 20) /* a repository object is a few KiB */
#define GH_API_VERSION    "2022-11-28"
#define GH_MAX_ROUNDS     64 /* GETs of one call (polls of a fork included) */
#define GH_MAX_TAKEN      3  /* 422 "already exists" answers followed by a GET that finds nothing */
#define GH_MAX_RATE_WAITS 5  /* rate-limit waits of one call */
#define GH_POLL_FIRST_MS  200 /* first pause while a fork is being made */
#define GH_POLL_MAX_MS    2000
#define GH_RETRY_FIRST_MS 500 /* first pause after a retryable failure */
#define GH_RETRY_MAX_MS   4000
#define GH_RESET_MARGIN   1000 /* ms added to x-ratelimit-reset against clock skew */
#define GH_WAIT_MAX_MS    (24LL * 3600 * 1000)

struct gh {
    const struct platform_options *opt;
    const char *tenant;
    char api[PLATFORM_URL_MAX]; /* without a trailing '/' */
    char owner[PLATFORM_GH_OWNER_MAX + 1];
    char name[PLATFORM_GH_NAME_MAX + 1];
    char full[PLATFORM_GH_FULL_MAX]; /* owner/name of the tenant repository */
    const char *blueprint;           /* template_repo or fork_repo */
    bool fork;
    int64_t deadline; /* cap_mono_ms() at which the call gives up */
    long long timeout_ms;
    int rate_waits;
    CURL *h;
    struct curl_slist *get_headers, *post_headers; /* hold the token: wiped before freeing */
    char errbuf[CURL_ERROR_SIZE];
};

struct gh_answer {
    long status;
    json_t *body;                          /* the JSON object answered, or NULL */
    char message[PLATFORM_GH_MESSAGE_MAX]; /* body.message, cleaned */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc;

static void curl_init_once(void)
{
    curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- pure helpers (unit-tested) ------------------------------------------------------ */

/* Reads member key of o, which must be absent, null, or an object with a valid full_name. */
static int origin_of(char out[PLATFORM_GH_FULL_MAX], const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    const char *full;
    char owner[PLATFORM_GH_OWNER_MAX + 1], name[PLATFORM_GH_NAME_MAX + 1];

    out[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    full = json_is_object(v) ? cap_json_get_str(v, "full_name") : NULL;
    if (!full || platform_github_split(owner, name, full) != 0)
        return cap_error_set(CAP_EUNAVAILABLE,
                             "github api answered a repository whose %s has no valid full_name",
                             key);
    cap_strlcpy(out, full, PLATFORM_GH_FULL_MAX);
    return 0;
}

int platform_github_repo_parse(struct platform_gh_repo *out, const json_t *repo,
                               const char *want_full)
{
    char owner[PLATFORM_GH_OWNER_MAX + 1], name[PLATFORM_GH_NAME_MAX + 1];
    const char *full, *clone;
    const json_t *priv, *fork;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(repo))
        return cap_error_set(CAP_EUNAVAILABLE, "github api answered something that is not a "
                                               "repository object");
    full = cap_json_get_str(repo, "full_name");
    if (!full || platform_github_split(owner, name, full) != 0)
        return cap_error_set(CAP_EUNAVAILABLE,
                             "github api answered a repository without a valid full_name");
    if (want_full && strcasecmp(full, want_full) != 0)
        return cap_error_set(CAP_ECONFLICT,
                             "github api answered repository \"%s\" where \"%s\" was asked for",
                             full, want_full);
    clone = cap_json_get_str(repo, "clone_url");
    if (!clone || platform_location_kind(clone, NULL) != PLATFORM_LOC_HTTPS)
        return cap_error_set(CAP_EUNAVAILABLE,
                             "github api answered repository \"%s\" without an https clone_url",
                             full);
    priv = json_object_get(repo, "private");
    fork = json_object_get(repo, "fork");
    if (!json_is_boolean(priv) || (fork && !json_is_boolean(fork)))
        return cap_error_set(CAP_EUNAVAILABLE,
                             "github api answered repository \"%s\" without its private or fork "
                             "flag",
                             full);
    if ((rc = origin_of(out->template_full, repo, "template_repository")) ||
        (rc = origin_of(out->parent_full, repo, "parent")) ||
        (rc = origin_of(out->source_full, repo, "source"))) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    cap_strlcpy(out->full_name, full, sizeof(out->full_name));
    cap_strlcpy(out->clone_url, clone, sizeof(out->clone_url));
    out->private_repo = json_is_true(priv);
    out->fork = json_is_true(fork);
    return 0;
}

bool platform_github_from_blueprint(const struct platform_gh_repo *r, const char *template_repo,
                                    const char *fork_repo)
{
    if (template_repo && *template_repo)
        return r->template_full[0] && strcasecmp(r->template_full, template_repo) == 0;
    if (fork_repo && *fork_repo)
        return (r->parent_full[0] && strcasecmp(r->parent_full, fork_repo) == 0) ||
               (r->source_full[0] && strcasecmp(r->source_full, fork_repo) == 0);
    return false;
}

bool platform_github_name_taken(const json_t *body)
{
    const json_t *errors = json_object_get(body, "errors");
    const char *msg = cap_json_get_str(body, "message");
    size_t i;
    const json_t *e;

    json_array_foreach(errors, i, e)
    {
        const char *m = json_is_object(e) ? cap_json_get_str(e, "message") : NULL;
        if (m && strcasestr(m, "already exists"))
            return true;
    }
    return msg && strcasestr(msg, "already exists") != NULL;
}

static bool parse_count(long long *out, const char *s, long long max)
{
    return s && *s && cap_parse_long(out, s, 0, max) == 0;
}

void platform_github_rate(struct platform_gh_rate *out, long status, const char *remaining,
                          const char *reset, const char *retry_after, const char *message,
                          int64_t now_ms)
{
    long long rem = -1, reset_s = 0, ra = 0;
    bool exhausted, has_ra, says;

    memset(out, 0, sizeof(*out));
    if (status != 403 && status != 429)
        return;
    exhausted = parse_count(&rem, remaining, 1LL << 40) && rem == 0;
    has_ra = parse_count(&ra, retry_after, GH_WAIT_MAX_MS / 1000);
    says = message && strcasestr(message, "rate limit");
    if (status == 403 && !exhausted && !has_ra && !says)
        return; /* a permission problem, not a limit */
    out->limited = true;
    out->secondary = !exhausted || (message && strcasestr(message, "secondary"));
    if (has_ra)
        out->wait_ms = ra * 1000;
    else if (exhausted && parse_count(&reset_s, reset, 1LL << 40))
        out->wait_ms = reset_s * 1000 - now_ms + GH_RESET_MARGIN;
    else
        out->wait_ms = 60000;
    if (out->wait_ms < 0)
        out->wait_ms = 0;
    if (out->wait_ms > GH_WAIT_MAX_MS)
        out->wait_ms = GH_WAIT_MAX_MS;
    out->resume_ms = now_ms + out->wait_ms;
}

/* ---- transport ----------------------------------------------------------------------- */

static long long left_ms(const struct gh *g)
{
    int64_t r = g->deadline - cap_mono_ms();
    return r > 0 ? (long long)r : 0;
}

static void wipe_headers(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p; p = p->next)
        if (p->data)
            explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

/* The headers of every request (and Content-Type for a body); auth is the Authorization line. */
static int headers_make(struct curl_slist **out, const char *auth, bool body)
{
    static const char version[] = "X-GitHub-Api-Version: " GH_API_VERSION;
    const char *lines[] = {"Accept: application/vnd.github+json", version, "Expect:", auth,
                           body ? "Content-Type: application/json" : NULL};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]) && lines[i]; i++) {
        struct curl_slist *l = curl_slist_append(*out, lines[i]);
        if (!l)
            return cap_error_set(CAP_ERROR, "out of memory");
        *out = l;
    }
    return 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct cap_buf *b = ud;
    size_t n = size * nmemb;
    return cap_buf_append(b, data, n) == 0 ? n : 0;
}

static bool is_json_type(const char *ctype)
{
    size_t n = strlen("application/json");
    return ctype && strncasecmp(ctype, "application/json", n) == 0 &&
           (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

static const char *header_value(CURL *h, const char *name)
{
    struct curl_header *hd = NULL;
    if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hd) != CURLHE_OK || !hd)
        return NULL;
    return hd->value;
}

static void answer_clear(struct gh_answer *a)
{
    json_decref(a->body);
    memset(a, 0, sizeof(*a));
}

static int curl_failure(struct gh *g, CURLcode res, bool too_big)
{
    char detail[CURL_ERROR_SIZE];
    platform_clean_message(detail, sizeof(detail),
                           g->errbuf[0] ? g->errbuf : curl_easy_strerror(res), g->opt->token);
    if (too_big)
        return cap_error_set(CAP_EUNAVAILABLE, "github api at %.200s answered more than %u bytes",
                             g->api, GH_BODY_MAX);
    switch (res) {
    case CURLE_OPERATION_TIMEDOUT:
        return cap_error_set(CAP_ETIMEOUT, "github api at %.200s did not answer within %lld ms",
                             g->api, g->timeout_ms);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
        return cap_error_set(CAP_ERROR, "github api at %.200s is not trusted: %.200s", g->api,
                             detail);
    default:
        return cap_error_set(CAP_EUNAVAILABLE, "github api at %.200s is unreachable: %.200s",
                             g->api, detail);
    }
}

/* One request, waiting out rate limits within the budget. On 0, *a holds the status and the
 * JSON object answered (NULL when the body was empty); a 2xx answer always holds an object. */
static int gh_request(struct gh *g, const char *method, const char *path, const json_t *req,
                      struct gh_answer *a)
{
    struct cap_buf body = CAP_BUF_INIT(GH_BODY_MAX);
    char url[PLATFORM_URL_MAX + 256];
    char *payload = NULL;
    int rc = 0;

    memset(a, 0, sizeof(*a));
    if (req && !(payload = cap_json_dump(req)))
        return cap_error_set(CAP_ERROR, "out of memory");
    if ((size_t)snprintf(url, sizeof(url), "%s%s", g->api, path) >= sizeof(url)) {
        rc = cap_error_set(CAP_EINVALID, "the github api URL is too long");
        goto cleanup;
    }
    for (;;) {
        long long left = left_ms(g);
        const char *ctype = NULL;
        struct platform_gh_rate rate;
        bool too_big;
        CURLcode res, bad;
        int64_t start;

        if (left <= 0) {
            rc = cap_error_set(CAP_ETIMEOUT,
                               "github api: the time budget of %lld ms ran out before %s %s",
                               g->timeout_ms, method, path);
            goto cleanup;
        }
        cap_buf_reset(&body);
        g->errbuf[0] = '\0';
        curl_easy_reset(g->h);
        bad = curl_easy_setopt(g->h, CURLOPT_URL, url);
        if (!bad)
            bad = curl_easy_setopt(g->h, CURLOPT_PROTOCOLS_STR, "https");
        if (!bad && g->opt->ca_file && *g->opt->ca_file)
            bad = curl_easy_setopt(g->h, CURLOPT_CAINFO, g->opt->ca_file);
        if (bad) {
            rc = cap_error_set(CAP_ERROR, "libcurl cannot be set up for the github api: %s",
                               curl_easy_strerror(bad));
            goto cleanup;
        }
        curl_easy_setopt(g->h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(g->h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(g->h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(g->h, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(g->h, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(g->h, CURLOPT_TIMEOUT_MS,
                         (long)(left < g->timeout_ms ? left : g->timeout_ms));
        curl_easy_setopt(g->h, CURLOPT_CONNECTTIMEOUT_MS, (long)(left < 10000 ? left : 10000));
        curl_easy_setopt(g->h, CURLOPT_ERRORBUFFER, g->errbuf);
        curl_easy_setopt(g->h, CURLOPT_USERAGENT, "capstan/" CAPSTAN_VERSION);
        curl_easy_setopt(g->h, CURLOPT_HTTPHEADER,
                         strcmp(method, "GET") == 0 ? g->get_headers : g->post_headers);
        curl_easy_setopt(g->h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(g->h, CURLOPT_WRITEDATA, &body);
        if (strcmp(method, "GET") != 0) {
            curl_easy_setopt(g->h, CURLOPT_CUSTOMREQUEST, method);
            curl_easy_setopt(g->h, CURLOPT_POSTFIELDS, payload ? payload : "");
            curl_easy_setopt(g->h, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)(payload ? strlen(payload) : 0));
        }
        start = cap_mono_ms();
        res = curl_easy_perform(g->h);
        too_big = body.len >= GH_BODY_MAX || (res == CURLE_WRITE_ERROR);
        if (res != CURLE_OK) {
            rc = curl_failure(g, res, too_big);
            goto cleanup;
        }
        curl_easy_getinfo(g->h, CURLINFO_RESPONSE_CODE, &a->status);
        curl_easy_getinfo(g->h, CURLINFO_CONTENT_TYPE, &ctype);
        log_debug("github: %s %s -> %ld (%lld ms)", method, path, a->status,
                  (long long)(cap_mono_ms() - start));
        if (body.len > 0 && is_json_type(ctype)) {
            a->body = json_loadb(body.data, body.len, JSON_REJECT_DUPLICATES, NULL);
            if (!json_is_object(a->body)) {
                json_decref(a->body);
                a->body = NULL;
            }
        }
        if (a->status >= 200 && a->status < 300 && !a->body) {
            rc = cap_error_set(CAP_EUNAVAILABLE,
                               "github api answered %s %s with %ld and no JSON object (content "
                               "type \"%.60s\")",
                               method, path, a->status, ctype ? ctype : "");
            goto cleanup;
        }
        platform_clean_message(a->message, sizeof(a->message), cap_json_get_str(a->body, "message"),
                               g->opt->token);
        platform_github_rate(&rate, a->status, header_value(g->h, "x-ratelimit-remaining"),
                             header_value(g->h, "x-ratelimit-reset"),
                             header_value(g->h, "retry-after"), a->message, cap_now_ms());
        if (!rate.limited)
            break;
        if (rate.wait_ms < left_ms(g) && g->rate_waits < GH_MAX_RATE_WAITS) {
            g->rate_waits++;
            log_warn("github: %s limit reached; waiting %lld ms as the api asks",
                     rate.secondary ? "secondary rate" : "rate", rate.wait_ms);
            answer_clear(a);
            cap_sleep_ms(rate.wait_ms);
            continue;
        }
        {
            char when[32];
            cap_format_rfc3339(when, rate.resume_ms);
            rc = cap_error_set(CAP_ERATELIMIT,
                               "github api %s limit exceeded: retry after %s (in %lld s), which "
                               "is beyond this call's time budget of %lld ms",
                               rate.secondary ? "secondary rate" : "rate", when,
                               (rate.wait_ms + 999) / 1000, g->timeout_ms);
        }
        goto cleanup;
    }
cleanup:
    if (rc)
        answer_clear(a);
    cap_buf_free(&body);
    free(payload);
    return rc;
}

/* Turns an unexpected answer into a CAP_* code with a message quoting GitHub's. */
static int gh_fail(const struct gh *g, const struct gh_answer *a, const char *doing)
{
    char detail[PLATFORM_GH_MESSAGE_MAX * 2 + 8] = "";
    const json_t *errors = json_object_get(a->body, "errors");
    const json_t *e0 = json_is_array(errors) ? json_array_get(errors, 0) : NULL;
    const char *more = json_is_object(e0) ? cap_json_get_str(e0, "message") : NULL;

    if (a->message[0] || more) {
        char m2[PLATFORM_GH_MESSAGE_MAX];
        platform_clean_message(m2, sizeof(m2), more, g->opt->token);
        snprintf(detail, sizeof(detail), ": %s%s%s", a->message, a->message[0] && more ? " " : "",
                 m2);
    }
    switch (a->status) {
    case 401:
        return cap_error_set(CAP_EUNAUTHORIZED,
                             "github api rejected the token while %s (401%s); check the "
                             "configured token",
                             doing, detail);
    case 403:
        return cap_error_set(CAP_EFORBIDDEN,
                             "github api refused %s (403%s); the token needs permission to "
                             "create repositories in \"%s\"",
                             doing, detail, g->owner);
    case 301:
    case 302:
    case 307:
    case 308:
        return cap_error_set(CAP_ECONFLICT,
                             "github repository \"%s\" has moved (renamed or transferred); "
                             "capstan does not follow it",
                             g->full);
    case 409:
        return cap_error_set(CAP_ECONFLICT, "github api refused %s (409%s)", doing, detail);
    case 400:
    case 422:
        return cap_error_set(CAP_EINVALID, "github api refused %s (%ld%s)", doing, a->status,
                             detail);
    default:
        if (a->status >= 500)
            return cap_error_set(CAP_EUNAVAILABLE, "github api failed while %s (%ld%s)", doing,
                                 a->status, detail);
        return cap_error_set(CAP_ERROR, "github api answered %ld while %s%s", a->status, doing,
                             detail);
    }
}

/* ---- the provider -------------------------------------------------------------------- */

static bool retryable(int rc)
{
    return rc == CAP_EUNAVAILABLE || rc == CAP_ETIMEOUT || rc == CAP_ERETRY;
}

/* GET the tenant repository: *found false on 404. */
static int gh_get(struct gh *g, struct platform_gh_repo *out, bool *found)
{
    char path[PLATFORM_GH_FULL_MAX + 16];
    struct gh_answer a;
    int rc;

    *found = false;
    snprintf(path, sizeof(path), "/repos/%s", g->full);
    if ((rc = gh_request(g, "GET", path, NULL, &a)) != 0)
        return rc;
    if (a.status == 200) {
        rc = platform_github_repo_parse(out, a.body, g->full);
        *found = rc == 0;
    } else if (a.status != 404) {
        rc = gh_fail(g, &a, "reading the tenant repository");
    }
    answer_clear(&a);
    return rc;
}

enum gh_created { GH_CREATED, GH_ACCEPTED, GH_TAKEN };

static int gh_create(struct gh *g, struct platform_gh_repo *out, enum gh_created *how)
{
    char path[PLATFORM_GH_FULL_MAX + 32];
    json_t *req = NULL;
    struct gh_answer a = {0};
    const char *doing = g->fork ? "forking the blueprint" : "generating from the template";
    int rc;

    if (g->fork) {
        snprintf(path, sizeof(path), "/repos/%s/forks", g->blueprint);
        req = json_pack("{s:s, s:s, s:b}", "organization", g->owner, "name", g->name,
                        "default_branch_only", 1);
    } else {
        snprintf(path, sizeof(path), "/repos/%s/generate", g->blueprint);
        req = json_pack("{s:s, s:s, s:b, s:b, s:s+}", "owner", g->owner, "name", g->name, "private",
                        !g->opt->public_repos, "include_all_branches", 0, "description",
                        "Platform repository of capstan tenant ", g->tenant);
    }
    if (!req)
        return cap_error_set(CAP_ERROR, "out of memory");
    if ((rc = gh_request(g, "POST", path, req, &a)) != 0)
        goto cleanup;
    if ((a.status == 201 && !g->fork) || (a.status == 202 && g->fork) ||
        (a.status == 201 && g->fork)) {
        rc = platform_github_repo_parse(out, a.body, NULL);
        if (rc == 0 && strcasecmp(out->full_name, g->full) != 0)
            rc = g->fork ? cap_error_set(CAP_ECONFLICT,
                                         "github answered the fork request with the existing fork "
                                         "\"%s\" instead of creating \"%s\": the account already "
                                         "holds a fork of \"%s\" (use a template repository as "
                                         "the blueprint to have one repository per tenant)",
                                         out->full_name, g->full, g->blueprint)
                         : cap_error_set(CAP_EUNAVAILABLE,
                                         "github api created \"%s\" where \"%s\" was asked for",
                                         out->full_name, g->full);
        *how = a.status == 202 ? GH_ACCEPTED : GH_CREATED;
    } else if (a.status == 422 && platform_github_name_taken(a.body)) {
        *how = GH_TAKEN;
    } else if (a.status == 404) {
        rc = cap_error_set(CAP_EINVALID,
                           "github api: the blueprint repository \"%s\" does not exist or the "
                           "token cannot read it",
                           g->blueprint);
    } else {
        rc = gh_fail(g, &a, doing);
    }
cleanup:
    json_decref(req);
    answer_clear(&a);
    return rc;
}

/* Accepts a found repository if it came from the blueprint. */
static int gh_finish(const struct gh *g, const struct platform_gh_repo *r, bool created, char *url,
                     size_t url_size)
{
    if (!platform_github_from_blueprint(r, g->fork ? NULL : g->blueprint,
                                        g->fork ? g->blueprint : NULL)) {
        char what[PLATFORM_GH_FULL_MAX + 64];
        if (r->template_full[0])
            snprintf(what, sizeof(what), "it was generated from \"%s\"", r->template_full);
        else if (r->parent_full[0])
            snprintf(what, sizeof(what), "it is a fork of \"%s\"", r->parent_full);
        else
            snprintf(what, sizeof(what), "it is neither a fork nor generated from a template");
        return cap_error_set(CAP_ECONFLICT,
                             "github repository \"%s\" exists but was not made from the blueprint "
                             "\"%s\" (%s); capstan will not use it: rename or remove it, or "
                             "change the name pattern",
                             r->full_name, g->blueprint, what);
    }
    if (r->private_repo == g->opt->public_repos)
        log_warn("github: platform repository %s is %s although %s repositories are configured",
                 r->full_name, r->private_repo ? "private" : "public",
                 g->opt->public_repos ? "public" : "private");
    if (cap_strlcpy(url, r->clone_url, url_size) >= url_size) {
        url[0] = '\0';
        return cap_error_set(CAP_ETOOBIG, "the repository URL does not fit %zu bytes", url_size);
    }
    log_info("github: platform repository of tenant %s %s: %s", g->tenant,
             created ? "created" : "found", r->clone_url);
    return 0;
}

static long long backoff(long long first, long long max, int n)
{
    long long d = first;
    for (int i = 0; i < n && d < max; i++)
        d *= 2;
    return d < max ? d : max;
}

int platform_github_ensure(const struct platform_options *opt, const char *tenant, const char *name,
                           char *url, size_t url_size)
{
    struct gh g = {0};
    struct platform_gh_repo repo;
    const char *api = (opt->api_url && *opt->api_url) ? opt->api_url : PLATFORM_DEFAULT_API_URL;
    char *auth = NULL;
    size_t alen;
    bool accepted = false, found;
    int taken = 0, failures = 0, polls = 0;
    int rc = 0;

    g.opt = opt;
    g.tenant = tenant;
    g.timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : PLATFORM_DEFAULT_TIMEOUT_MS;
    g.deadline = cap_mono_ms() + g.timeout_ms;
    g.fork = !(opt->template_repo && *opt->template_repo);
    g.blueprint = g.fork ? opt->fork_repo : opt->template_repo;
    cap_strlcpy(g.api, api, sizeof(g.api));
    for (size_t n = strlen(g.api); n > 0 && g.api[n - 1] == '/'; n--)
        g.api[n - 1] = '\0';
    cap_strlcpy(g.owner, opt->owner, sizeof(g.owner));
    cap_strlcpy(g.name, name, sizeof(g.name));
    snprintf(g.full, sizeof(g.full), "%s/%s", g.owner, g.name);
    if (!platform_github_name_ok(g.name))
        return cap_error_set_field(CAP_EINVALID, "name_pattern",
                                   "\"%s\" is not a valid GitHub repository name", name);

    pthread_once(&curl_once, curl_init_once);
    if (curl_rc != CURLE_OK)
        return cap_error_set(CAP_ERROR, "libcurl failed to start: %s", curl_easy_strerror(curl_rc));
    log_add_secret(opt->token);
    alen = strlen(opt->token) + 32;
    if (!(auth = malloc(alen)) || !(g.h = curl_easy_init())) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    snprintf(auth, alen, "Authorization: Bearer %s", opt->token);
    if ((rc = headers_make(&g.get_headers, auth, false)) ||
        (rc = headers_make(&g.post_headers, auth, true)))
        goto cleanup;
    explicit_bzero(auth, alen);

    for (int round = 0; round < GH_MAX_ROUNDS; round++) {
        enum gh_created how = GH_CREATED;

        rc = gh_get(&g, &repo, &found);
        if (rc == 0 && found) {
            rc = gh_finish(&g, &repo, accepted, url, url_size);
            goto cleanup;
        }
        if (rc == 0 && accepted) {
            /* the fork was accepted and is not visible yet */
            long long d = backoff(GH_POLL_FIRST_MS, GH_POLL_MAX_MS, polls++);
            if (d >= left_ms(&g)) {
                rc = cap_error_set(CAP_ETIMEOUT,
                                   "github accepted the fork \"%s\" but it did not appear within "
                                   "%lld ms; a retry will find it",
                                   g.full, g.timeout_ms);
                goto cleanup;
            }
            cap_sleep_ms(d);
            continue;
        }
        if (rc == 0) {
            log_info("github: creating platform repository %s for tenant %s from %s %s", g.full,
                     tenant, g.fork ? "fork of" : "template", g.blueprint);
            rc = gh_create(&g, &repo, &how);
        }
        if (rc == 0 && how == GH_CREATED) {
            rc = gh_finish(&g, &repo, true, url, url_size);
            goto cleanup;
        }
        if (rc == 0 && how == GH_ACCEPTED) {
            accepted = true;
            continue;
        }
        if (rc == 0 && how == GH_TAKEN) {
            /* another attempt made it first: read it again */
            if (++taken > GH_MAX_TAKEN) {
                rc = cap_error_set(CAP_EUNAVAILABLE,
                                   "github says repository \"%s\" already exists but does not "
                                   "show it",
                                   g.full);
                goto cleanup;
            }
            log_info("github: repository %s was created meanwhile; reading it", g.full);
            continue;
        }
        if (retryable(rc) && rc != CAP_ETIMEOUT) {
            long long d = backoff(GH_RETRY_FIRST_MS, GH_RETRY_MAX_MS, failures++);
            if (d < left_ms(&g) && failures <= 4) {
                log_warn("github: %s; trying again in %lld ms", cap_error_message(), d);
                cap_sleep_ms(d);
                continue;
            }
        }
        goto cleanup;
    }
    rc = cap_error_set(CAP_ETIMEOUT,
                       "github: repository \"%s\" is still not ready after %d "
                       "requests",
                       g.full, GH_MAX_ROUNDS);
cleanup:
    if (auth) {
        explicit_bzero(auth, alen);
        free(auth);
    }
    if (g.h)
        curl_easy_cleanup(g.h);
    wipe_headers(g.get_headers);
    wipe_headers(g.post_headers);
    if (rc)
        url[0] = '\0';
    return rc;
}
