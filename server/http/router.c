/* capstan: the route table and path matching (see router.h). */
#include "http/router.h"

#include "util/str.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct segs {
    int n;
    const char *p[ROUTER_MAX_SEGMENTS];
    size_t len[ROUTER_MAX_SEGMENTS];
};

/* Splits "/a/b/c" into segments; false if too many, empty segments ("//") or no leading "/".
 * A single trailing slash is not allowed either (routes are exact). */
static bool split(const char *path, struct segs *s)
{
    const char *p = path;
    s->n = 0;
    if (*p != '/')
        return false;
    if (strcmp(path, "/") == 0)
        return true;
    while (*p == '/') {
        const char *start = ++p;
        while (*p && *p != '/')
            p++;
        if (p == start || s->n == ROUTER_MAX_SEGMENTS)
            return false;
        s->p[s->n] = start;
        s->len[s->n] = (size_t)(p - start);
        s->n++;
    }
    return *p == '\0';
}

static bool is_param(const char *seg, size_t len)
{
    return len >= 3 && seg[0] == '{' && seg[len - 1] == '}';
}

/* Scores a match: -1 if no match, else a number that is higher for more literal segments at
 * earlier positions. */
static long score(const struct segs *pat, const struct segs *path)
{
    long sc = 0;
    if (pat->n != path->n)
        return -1;
    for (int i = 0; i < pat->n; i++) {
        sc <<= 1;
        if (is_param(pat->p[i], pat->len[i]))
            continue;
        if (pat->len[i] != path->len[i] || memcmp(pat->p[i], path->p[i], pat->len[i]) != 0)
            return -1;
        sc |= 1;
    }
    return sc;
}

static void add_allow(char *allow, size_t size, const char *method)
{
    size_t mlen = strlen(method);
    /* skip duplicates */
    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += mlen)
        if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
            return;
    if (allow[0])
        strncat(allow, ", ", size - strlen(allow) - 1);
    strncat(allow, method, size - strlen(allow) - 1);
}

int router_match(const struct route *routes, size_t n, const char *method, const char *path,
                 struct route_match *out)
{
    struct segs want, pat;
    long best = -1, best_any = -1;
    const struct route *found = NULL;
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;

    memset(out, 0, sizeof(*out));
    if (strlen(path) >= ROUTER_MAX_PATH || !split(path, &want))
        return ROUTER_NO_PATH;
    /* The best-scoring pattern decides the resource; among its routes the method decides. */
    for (size_t i = 0; i < n; i++) {
        long sc;
        if (!split(routes[i].pattern, &pat))
            continue;
        sc = score(&pat, &want);
        if (sc > best_any)
            best_any = sc;
    }
    if (best_any < 0)
        return ROUTER_NO_PATH;
    for (size_t i = 0; i < n; i++) {
        if (!split(routes[i].pattern, &pat) || score(&pat, &want) != best_any)
            continue;
        if (strcmp(routes[i].method, m) == 0 && best < best_any) {
            best = best_any;
            found = &routes[i];
        }
        add_allow(out->allow, sizeof(out->allow), routes[i].method);
        if (strcmp(routes[i].method, "GET") == 0)
            add_allow(out->allow, sizeof(out->allow), "HEAD");
    }
    if (!found)
        return ROUTER_NO_METHOD;
    split(found->pattern, &pat);
    for (int i = 0; i < pat.n && i < want.n; i++) {
        if (!is_param(pat.p[i], pat.len[i]))
            continue;
        if (out->nparams == ROUTER_MAX_PARAMS || want.len[i] >= sizeof(out->values[0]) ||
            pat.len[i] - 2 >= sizeof(out->names[0]))
            return ROUTER_NO_PATH;
        memcpy(out->names[out->nparams], pat.p[i] + 1, pat.len[i] - 2);
        out->names[out->nparams][pat.len[i] - 2] = '\0';
        memcpy(out->values[out->nparams], want.p[i], want.len[i]);
        out->values[out->nparams][want.len[i]] = '\0';
        out->nparams++;
    }
    out->route = found;
    return ROUTER_FOUND;
}

const char *router_param(const struct route_match *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->names[i], name) == 0)
            return m->values[i];
    return NULL;
}
