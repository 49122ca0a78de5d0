/* capstan: a strict reader of one YAML document into jansson values (see yaml.h).
 *
 * Built on libyaml's event parser with an explicit stack of open containers (no recursion), so
 * nesting is bounded by max_depth and not by the C stack. Every container is attached to its
 * parent as soon as it starts, so freeing the root frees everything on any error path.
 * Messages never quote scalar values (a kubeconfig holds tokens and keys), only positions and,
 * shortened, mapping keys. */
#include "util/yaml.h"

#include "util/error.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"

struct frame {
    json_t *container; /* borrowed: owned by its parent or by the root */
    char *key;         /* for a mapping: the key waiting for its value, owned */
    bool is_map;
};

struct reader {
    struct frame *stack;
    size_t depth;
    size_t max_depth;
    json_t *root; /* owned */
    bool have_root;
};

static int fail_at(const yaml_mark_t *m, const char *what)
{
    return cap_error_set(CAP_EMALFORMED, "%s at line %zu, column %zu", what, m->line + 1,
                         m->column + 1);
}

static bool is_digits(const char *s, size_t n, int base)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= '0' && c <= '9' && (base != 8 || c <= '7')) ||
                  (base == 16 && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
        if (!ok)
            return false;
    }
    return true;
}

static bool is_null_text(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '~') ||
           (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/* 1 true, 0 false, -1 not a boolean. */
static int bool_text(const char *s, size_t n)
{
    if (n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4)))
        return 1;
    if (n == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5)))
        return 0;
    return -1;
}

/* [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ */
static bool is_int_text(const char *s, size_t n)
{
    if (n > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x'))
        return is_digits(s + 2, n - 2, s[1] == 'o' ? 8 : 16);
    if (n > 0 && (s[0] == '-' || s[0] == '+'))
        return is_digits(s + 1, n - 1, 10);
    return is_digits(s, n, 10);
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_float_text(const char *s, size_t n)
{
    size_t i = 0, d1 = 0, d2 = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, d1++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, d2++;
    } else if (d1 == 0) {
        return false;
    }
    if (d1 == 0 && d2 == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t d3 = 0;
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, d3++;
        if (d3 == 0)
            return false;
    }
    return i == n;
}

/* [-+]? \. (inf|Inf|INF) | \. (nan|NaN|NAN) */
static bool is_special_float_text(const char *s, size_t n)
{
    if (n > 0 && (s[0] == '-' || s[0] == '+'))
        s++, n--;
    return n == 4 && (!memcmp(s, ".inf", 4) || !memcmp(s, ".Inf", 4) || !memcmp(s, ".INF", 4) ||
                      !memcmp(s, ".nan", 4) || !memcmp(s, ".NaN", 4) || !memcmp(s, ".NAN", 4));
}

static int make_int(json_t **out, const char *s, const yaml_mark_t *m)
{
    char *end = NULL;
    long long v;

    errno = 0;
    if (s[0] == '0' && s[1] == 'o') {
        v = strtoll(s + 2, &end, 8);
    } else if (s[0] == '0' && s[1] == 'x') {
        v = strtoll(s + 2, &end, 16);
    } else {
        v = strtoll(s, &end, 10);
    }
    if (errno || !end || *end)
        return fail_at(m, "integer out of range");
    *out = json_integer((json_int_t)v);
    return *out ? 0 : cap_error_set(CAP_ERROR, "out of memory");
}

static int make_float(json_t **out, const char *s, const yaml_mark_t *m)
{
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (!end || *end || !isfinite(v))
        return fail_at(m, "number out of range");
    *out = json_real(v);
    return *out ? 0 : cap_error_set(CAP_ERROR, "out of memory");
}

enum want { WANT_ANY, WANT_NULL, WANT_BOOL, WANT_INT, WANT_FLOAT };

/* Resolves a plain (or explicitly tagged) scalar; s is NUL-terminated with length n. */
static int resolve(json_t **out, const char *s, size_t n, enum want want, const yaml_mark_t *m)
{
    int b;

    if ((want == WANT_ANY || want == WANT_NULL) && is_null_text(s, n)) {
        *out = json_null();
        return 0;
    }
    if ((want == WANT_ANY || want == WANT_BOOL) && (b = bool_text(s, n)) >= 0) {
        *out = json_boolean(b);
        return 0;
    }
    if ((want == WANT_ANY || want == WANT_INT) && is_int_text(s, n))
        return make_int(out, s, m);
    if ((want == WANT_ANY || want == WANT_FLOAT) && (is_float_text(s, n) || is_int_text(s, n)) &&
        !(s[0] == '0' && n > 1 && (s[1] == 'o' || s[1] == 'x')))
        return make_float(out, s, m);
    if (is_special_float_text(s, n))
        return fail_at(m, "infinite and NaN numbers are not supported");
    if (want == WANT_NULL)
        return fail_at(m, "value tagged !!null is not null");
    if (want == WANT_BOOL)
        return fail_at(m, "value tagged !!bool is not a boolean");
    if (want == WANT_INT)
        return fail_at(m, "value tagged !!int is not an integer");
    if (want == WANT_FLOAT)
        return fail_at(m, "value tagged !!float is not a number");
    *out = json_stringn(s, n);
    return *out ? 0 : fail_at(m, "invalid UTF-8");
}

static int scalar_value(json_t **out, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    const yaml_mark_t *m = &ev->start_mark;

    if (!tag) {
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            return resolve(out, s, n, WANT_ANY, m);
    } else if (strcmp(tag, "!") != 0 && strcmp(tag, TAG_PREFIX "str") != 0) {
        if (strcmp(tag, TAG_PREFIX "null") == 0)
            return resolve(out, s, n, WANT_NULL, m);
        if (strcmp(tag, TAG_PREFIX "bool") == 0)
            return resolve(out, s, n, WANT_BOOL, m);
        if (strcmp(tag, TAG_PREFIX "int") == 0)
            return resolve(out, s, n, WANT_INT, m);
        if (strcmp(tag, TAG_PREFIX "float") == 0)
            return resolve(out, s, n, WANT_FLOAT, m);
        return fail_at(m, "unsupported tag");
    }
    *out = json_stringn(s, n);
    return *out ? 0 : fail_at(m, "invalid UTF-8");
}

/* Attaches v (reference stolen) to the innermost open container, or makes it the root. */
static int attach(struct reader *r, json_t *v, const yaml_mark_t *m)
{
    struct frame *f;

    if (r->depth == 0) {
        if (r->have_root) {
            json_decref(v);
            return fail_at(m, "more than one value in the document");
        }
        r->root = v;
        r->have_root = true;
        return 0;
    }
    f = &r->stack[r->depth - 1];
    if (!f->is_map) {
        if (json_array_append_new(f->container, v))
            return cap_error_set(CAP_ERROR, "out of memory");
        return 0;
    }
    if (!f->key) {
        json_decref(v);
        return fail_at(m, "a mapping key must be a scalar");
    }
    if (json_object_get(f->container, f->key)) {
        int rc = cap_error_set(CAP_EMALFORMED, "duplicate key \"%.64s\" at line %zu, column %zu",
                               f->key, m->line + 1, m->column + 1);
        json_decref(v);
        return rc;
    }
    if (json_object_set_new(f->container, f->key, v))
        return cap_error_set(CAP_ERROR, "out of memory");
    free(f->key);
    f->key = NULL;
    return 0;
}

static int on_scalar(struct reader *r, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    json_t *v = NULL;
    int rc;

    if (ev->data.scalar.anchor)
        return fail_at(&ev->start_mark, "anchors are not allowed");
    if (memchr(s, '\0', n))
        return fail_at(&ev->start_mark, "NUL characters are not allowed");
    if (r->depth > 0 && r->stack[r->depth - 1].is_map && !r->stack[r->depth - 1].key) {
        const char *tag = (const char *)ev->data.scalar.tag;
        struct frame *f = &r->stack[r->depth - 1];
        if (tag && strcmp(tag, "!") != 0 && strcmp(tag, TAG_PREFIX "str") != 0)
            return fail_at(&ev->start_mark, "a mapping key must be a string");
        /* Validate the key as UTF-8 through jansson before keeping it. */
        v = json_stringn(s, n);
        if (!v)
            return fail_at(&ev->start_mark, "invalid UTF-8");
        json_decref(v);
        f->key = strndup(s, n);
        return f->key ? 0 : cap_error_set(CAP_ERROR, "out of memory");
    }
    rc = scalar_value(&v, ev);
    if (rc)
        return rc;
    return attach(r, v, &ev->start_mark);
}

static int on_start(struct reader *r, const yaml_event_t *ev, bool is_map)
{
    const char *anchor =
        (const char *)(is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
    const char *tag =
        (const char *)(is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    json_t *c;
    int rc;

    if (anchor)
        return fail_at(&ev->start_mark, "anchors are not allowed");
    if (tag && strcmp(tag, is_map ? TAG_PREFIX "map" : TAG_PREFIX "seq") != 0)
        return fail_at(&ev->start_mark, "unsupported tag");
    if (r->depth > 0 && r->stack[r->depth - 1].is_map && !r->stack[r->depth - 1].key)
        return fail_at(&ev->start_mark, "a mapping key must be a scalar");
    if (r->depth >= r->max_depth)
        return fail_at(&ev->start_mark, "nesting too deep");
    c = is_map ? json_object() : json_array();
    if (!c)
        return cap_error_set(CAP_ERROR, "out of memory");
    rc = attach(r, c, &ev->start_mark);
    if (rc)
        return rc;
    r->stack[r->depth].container = c;
    r->stack[r->depth].key = NULL;
    r->stack[r->depth].is_map = is_map;
    r->depth++;
    return 0;
}

static int parser_error(const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return cap_error_set(CAP_ERROR, "out of memory");
    if (p->error == YAML_READER_ERROR)
        return cap_error_set(CAP_EMALFORMED, "%s at byte %zu", problem, p->problem_offset);
    return fail_at(&p->problem_mark, problem);
}

int cap_yaml_to_json(json_t **out, const char *text, size_t len, size_t max_depth)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct reader r = {0};
    bool parser_ready = false, done = false;
    size_t docs = 0;
    int rc = 0;

    *out = NULL;
    if (len > CAP_YAML_MAX_BYTES)
        return cap_error_set(CAP_ETOOBIG, "YAML text is larger than %u bytes", CAP_YAML_MAX_BYTES);
    r.max_depth = max_depth;
    if (max_depth > 0) {
        r.stack = calloc(max_depth < 4096 ? max_depth : 4096, sizeof(*r.stack));
        if (!r.stack)
            return cap_error_set(CAP_ERROR, "out of memory");
        if (max_depth > 4096)
            r.max_depth = 4096;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    parser_ready = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);

    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&parser);
            goto cleanup;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                rc = fail_at(&ev.start_mark, "more than one YAML document");
            break;
        case YAML_ALIAS_EVENT:
            rc = fail_at(&ev.start_mark, "aliases are not allowed");
            break;
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&r, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = on_start(&r, &ev, false);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = on_start(&r, &ev, true);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (r.depth > 0) {
                r.depth--;
                free(r.stack[r.depth].key);
                r.stack[r.depth].key = NULL;
            }
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rc)
            goto cleanup;
    }
    *out = r.have_root ? r.root : json_null();
    r.root = NULL;

cleanup:
    for (size_t i = 0; i < r.depth; i++)
        free(r.stack[i].key);
    free(r.stack);
    json_decref(r.root);
    if (parser_ready)
        yaml_parser_delete(&parser);
    return rc;
}
