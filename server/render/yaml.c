/* capstan: YAML quoting, a small block-style emitter for jansson trees, and a libyaml-based
 * reader used to check expanded templates (see yaml.h for the invariants). */
#include "render/yaml.h"

#include "util/error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* Decodes one UTF-8 sequence at s (n bytes left). Returns its length and the code point in *cp,
 * or 0 when the bytes are not valid UTF-8 (overlong forms, surrogates, > U+10FFFF refused). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t c, min;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, c = s[0] & 0x1fu, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, c = s[0] & 0x0fu, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, c = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3fu);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* True when code point c must be written as an escape inside a double-quoted scalar: outside
 * the YAML printable set, or a character YAML 1.1 readers treat as a line break or BOM. */
static bool needs_escape(uint32_t c)
{
    if (c < 0x20 || c == 0x7f)
        return true;
    if (c >= 0x80 && c <= 0x9f) /* C1 controls, NEL (U+0085) among them */
        return true;
    if (c == 0x2028 || c == 0x2029 || c == 0xfeff)
        return true;
    if (c == 0xfffe || c == 0xffff)
        return true;
    return false;
}

static int put_escape(struct cap_buf *out, uint32_t c)
{
    switch (c) {
    case '\0':
        return cap_buf_puts(out, "\\0");
    case '\t':
        return cap_buf_puts(out, "\\t");
    case '\n':
        return cap_buf_puts(out, "\\n");
    case '\r':
        return cap_buf_puts(out, "\\r");
    default:
        if (c <= 0xff)
            return cap_buf_printf(out, "\\x%02X", (unsigned)c);
        return cap_buf_printf(out, "\\u%04X", (unsigned)c);
    }
}

bool render_yaml_is_utf8(const char *s, size_t len, size_t *bad_at)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t c;
        size_t n = p[i] ? utf8_decode(p + i, len - i, &c) : 0;
        if (n == 0) {
            if (bad_at)
                *bad_at = i;
            return false;
        }
        i += n;
    }
    return true;
}

/* DEL, the C1 controls and the non-characters U+FFFE/U+FFFF: kustomize (go-yaml) cannot write
 * them back, so Flux could not apply a file that holds them, escaped or not. */
static bool unportable(uint32_t c)
{
    return (c >= 0x7f && c <= 0x9f) || c == 0xfffe || c == 0xffff;
}

int render_yaml_check_text(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t c;
        size_t n = utf8_decode(p + i, len - i, &c);
        if (n == 0)
            return cap_error_set(CAP_EINVALID, "text is not valid UTF-8 (byte %zu)", i);
        if (unportable(c))
            return cap_error_set(CAP_EINVALID,
                                 "text holds the character U+%04X, which the tools that apply "
                                 "the fleet repository cannot carry",
                                 (unsigned)c);
        i += n;
    }
    return 0;
}

int render_yaml_quote(struct cap_buf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t start = out->len, i = 0;
    int rc;

    if ((rc = cap_buf_putc(out, '"')) != 0)
        return rc;
    while (i < len) {
        uint32_t c;
        size_t n = utf8_decode(p + i, len - i, &c);
        if (n == 0 || unportable(c)) {
            rc = render_yaml_check_text(s + i, len - i);
            goto fail;
        }
        if (c == '"')
            rc = cap_buf_puts(out, "\\\"");
        else if (c == '\\')
            rc = cap_buf_puts(out, "\\\\");
        else if (needs_escape(c))
            rc = put_escape(out, c);
        else
            rc = cap_buf_append(out, p + i, n);
        if (rc)
            goto fail;
        i += n;
    }
    if ((rc = cap_buf_putc(out, '"')) != 0)
        goto fail;
    return 0;
fail:
    out->len = start;
    if (out->data)
        out->data[start] = '\0';
    return rc;
}

void render_yaml_quote_for_message(struct cap_buf *out, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = strlen((const char *)p), i = 0;

    cap_buf_putc(out, '"');
    while (i < len && i < max) {
        uint32_t c;
        size_t n = utf8_decode(p + i, len - i, &c);
        if (n == 0) {
            cap_buf_printf(out, "\\x%02X", (unsigned)p[i]);
            i++;
            continue;
        }
        if (c == '"')
            cap_buf_puts(out, "\\\"");
        else if (c == '\\')
            cap_buf_puts(out, "\\\\");
        else if (needs_escape(c))
            put_escape(out, c);
        else
            cap_buf_append(out, p + i, n);
        i += n;
    }
    cap_buf_putc(out, '"');
    if (i < len)
        cap_buf_puts(out, "...");
}

/* --- emitter ----------------------------------------------------------------------------- */

/* A key may be written plain when it is an identifier-like string that every YAML 1.1 and 1.2
 * reader takes as that same string (not a boolean, null or number, no indicator characters). */
static bool key_is_plain(const char *k)
{
    static const char *const special[] = {"y",   "n",    "yes",   "no",   "on",
                                          "off", "true", "false", "null", NULL};
    size_t n = strlen(k);

    if (n == 0 || n > 253)
        return false;
    if (!((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= 'A' && k[0] <= 'Z')))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_' || c == '/';
        if (!ok)
            return false;
    }
    for (size_t i = 0; special[i]; i++) {
        if (strcasecmp(k, special[i]) == 0)
            return false;
    }
    return true;
}

static int put_indent(struct cap_buf *out, int indent)
{
    for (int i = 0; i < indent; i++) {
        int rc = cap_buf_putc(out, ' ');
        if (rc)
            return rc;
    }
    return 0;
}

static int put_key(struct cap_buf *out, const char *k)
{
    if (key_is_plain(k))
        return cap_buf_puts(out, k);
    return render_yaml_quote(out, k, strlen(k));
}

/* Appends a scalar or an empty collection (in flow form) after a key or dash. */
static int put_inline(struct cap_buf *out, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return render_yaml_quote(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return cap_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_TRUE:
        return cap_buf_puts(out, "true");
    case JSON_FALSE:
        return cap_buf_puts(out, "false");
    case JSON_NULL:
        return cap_buf_puts(out, "null");
    case JSON_OBJECT:
        return cap_buf_puts(out, "{}");
    case JSON_ARRAY:
        return cap_buf_puts(out, "[]");
    default:
        return cap_error_set(CAP_EINVALID, "numbers with a fraction are not written to YAML");
    }
}

static bool is_block(const json_t *v)
{
    return (json_is_object(v) && json_object_size(v) > 0) ||
           (json_is_array(v) && json_array_size(v) > 0);
}

static int emit_mapping(struct cap_buf *out, const json_t *obj, int indent, bool first_inline,
                        int depth);
static int emit_sequence(struct cap_buf *out, const json_t *arr, int indent, int depth);

/* Appends the value of a mapping entry whose "key:" is already written. */
static int emit_value(struct cap_buf *out, const json_t *v, int indent, int depth)
{
    int rc;
    if (depth > RENDER_YAML_MAX_DEPTH)
        return cap_error_set(CAP_EINVALID, "document nests too deep");
    if (!is_block(v)) {
        if ((rc = cap_buf_putc(out, ' ')) || (rc = put_inline(out, v)))
            return rc;
        return cap_buf_putc(out, '\n');
    }
    if ((rc = cap_buf_putc(out, '\n')) != 0)
        return rc;
    if (json_is_object(v))
        return emit_mapping(out, v, indent + 2, false, depth + 1);
    return emit_sequence(out, v, indent, depth + 1);
}

static int emit_mapping(struct cap_buf *out, const json_t *obj, int indent, bool first_inline,
                        int depth)
{
    const char *k;
    json_t *v;
    bool first = true;
    int rc;

    json_object_foreach((json_t *)obj, k, v)
    {
        if (!(first && first_inline) && (rc = put_indent(out, indent)) != 0)
            return rc;
        first = false;
        if ((rc = put_key(out, k)) || (rc = cap_buf_putc(out, ':')))
            return rc;
        if ((rc = emit_value(out, v, indent, depth)) != 0)
            return rc;
    }
    return 0;
}

static int emit_sequence(struct cap_buf *out, const json_t *arr, int indent, int depth)
{
    size_t i;
    json_t *v;
    int rc;

    if (depth > RENDER_YAML_MAX_DEPTH)
        return cap_error_set(CAP_EINVALID, "document nests too deep");
    json_array_foreach(arr, i, v)
    {
        if ((rc = put_indent(out, indent)) || (rc = cap_buf_putc(out, '-')))
            return rc;
        if (json_is_object(v) && json_object_size(v) > 0) {
            if ((rc = cap_buf_putc(out, ' ')) != 0)
                return rc;
            rc = emit_mapping(out, v, indent + 2, true, depth + 1);
        } else if (json_is_array(v) && json_array_size(v) > 0) {
            if ((rc = cap_buf_putc(out, '\n')) != 0)
                return rc;
            rc = emit_sequence(out, v, indent + 2, depth + 1);
        } else {
            if ((rc = cap_buf_putc(out, ' ')) || (rc = put_inline(out, v)))
                return rc;
            rc = cap_buf_putc(out, '\n');
        }
        if (rc)
            return rc;
    }
    return 0;
}

int render_yaml_emit(struct cap_buf *out, const json_t *doc)
{
    if (!json_is_object(doc))
        return cap_error_set(CAP_EINVALID, "a YAML document must be a mapping");
    if (json_object_size(doc) == 0)
        return cap_buf_puts(out, "{}\n");
    return emit_mapping(out, doc, 0, false, 0);
}

int render_yaml_emit_stream(struct cap_buf *out, const json_t *docs)
{
    size_t i;
    json_t *d;
    int rc;

    json_array_foreach(docs, i, d)
    {
        if (i > 0 && (rc = cap_buf_puts(out, "---\n")) != 0)
            return rc;
        if ((rc = render_yaml_emit(out, d)) != 0)
            return rc;
    }
    return 0;
}

/* --- reader ------------------------------------------------------------------------------ */

static bool plain_is_int(const char *s, long long *out)
{
    const char *p = s;
    char *end = NULL;
    long long v;

    if (*p == '-' || *p == '+')
        p++;
    if (!*p || (p[0] == '0' && p[1]))
        return false;
    for (const char *q = p; *q; q++) {
        if (*q < '0' || *q > '9')
            return false;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static json_t *scalar_value(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    long long iv;

    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev->data.scalar.tag) {
        if (n == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
            strcmp(s, "NULL") == 0)
            return json_null();
        if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
            return json_true();
        if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
            return json_false();
        if (strlen(s) == n && plain_is_int(s, &iv))
            return json_integer(iv);
    }
    return json_stringn(s, n);
}

struct frame {
    json_t *node; /* object or array being filled (borrowed from its parent or the root) */
    json_t *key;  /* pending key of a mapping, or NULL */
};

int render_yaml_parse(json_t **out, const char *text, size_t len, const char *what)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    json_t *docs = NULL, *doc = NULL;
    struct frame stack[RENDER_YAML_MAX_DEPTH + 1];
    int depth = 0, rc = 0;
    bool done = false, have_event = false;

    *out = NULL;
    memset(stack, 0, sizeof(stack));
    if (!yaml_parser_initialize(&parser))
        return cap_error_set(CAP_ERROR, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!(docs = json_array())) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    while (!done) {
        json_t *v = NULL;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = cap_error_set(CAP_EINVALID, "%s is not valid YAML: %s (line %zu)", what,
                               parser.problem ? parser.problem : "syntax error",
                               (size_t)parser.problem_mark.line + 1);
            goto cleanup;
        }
        have_event = true;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            json_decref(doc);
            doc = NULL;
            break;
        case YAML_DOCUMENT_END_EVENT:
            if (json_array_append_new(docs, doc ? doc : json_null())) {
                doc = NULL;
                rc = cap_error_set(CAP_ERROR, "out of memory");
                goto cleanup;
            }
            doc = NULL;
            break;
        case YAML_ALIAS_EVENT:
            rc = cap_error_set(CAP_EINVALID,
                               "%s uses a YAML alias (line %zu); aliases are not "
                               "supported",
                               what, (size_t)ev.start_mark.line + 1);
            goto cleanup;
        case YAML_SCALAR_EVENT:
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if ((ev.type == YAML_SCALAR_EVENT && ev.data.scalar.anchor) ||
                (ev.type == YAML_MAPPING_START_EVENT && ev.data.mapping_start.anchor) ||
                (ev.type == YAML_SEQUENCE_START_EVENT && ev.data.sequence_start.anchor)) {
                rc = cap_error_set(CAP_EINVALID,
                                   "%s uses a YAML anchor (line %zu); anchors "
                                   "are not supported",
                                   what, (size_t)ev.start_mark.line + 1);
                goto cleanup;
            }
            {
                struct frame *f = depth > 0 ? &stack[depth - 1] : NULL;
                bool is_key = f && json_is_object(f->node) && !f->key;
                if (ev.type == YAML_SCALAR_EVENT)
                    v = is_key ? json_stringn((const char *)ev.data.scalar.value,
                                              ev.data.scalar.length)
                               : scalar_value(&ev);
                else if (ev.type == YAML_MAPPING_START_EVENT)
                    v = json_object();
                else
                    v = json_array();
                if (!v) {
                    rc = cap_error_set(CAP_EINVALID,
                                       "%s holds text that is not valid UTF-8 "
                                       "(line %zu)",
                                       what, (size_t)ev.start_mark.line + 1);
                    goto cleanup;
                }
                if (!f) {
                    json_decref(doc);
                    doc = json_incref(v);
                } else if (json_is_array(f->node)) {
                    json_array_append(f->node, v);
                } else if (is_key) {
                    if (!json_is_string(v)) {
                        rc = cap_error_set(CAP_EINVALID,
                                           "%s has a mapping key that is not a scalar (line %zu)",
                                           what, (size_t)ev.start_mark.line + 1);
                        json_decref(v);
                        goto cleanup;
                    }
                    f->key = json_incref(v);
                } else {
                    const char *k = json_string_value(f->key);
                    if (json_object_get(f->node, k)) {
                        rc = cap_error_set(CAP_EINVALID, "%s has a duplicate key (line %zu)", what,
                                           (size_t)ev.start_mark.line + 1);
                        json_decref(v);
                        goto cleanup;
                    }
                    json_object_set(f->node, k, v);
                    json_decref(f->key);
                    f->key = NULL;
                }
            }
            if (ev.type != YAML_SCALAR_EVENT) {
                if (depth >= RENDER_YAML_MAX_DEPTH) {
                    rc = cap_error_set(CAP_EINVALID, "%s nests too deep (line %zu)", what,
                                       (size_t)ev.start_mark.line + 1);
                    json_decref(v);
                    goto cleanup;
                }
                stack[depth].node = v; /* borrowed: the parent or doc holds a reference */
                stack[depth].key = NULL;
                depth++;
            }
            json_decref(v);
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (depth > 0) {
                depth--;
                json_decref(stack[depth].key);
                stack[depth].key = NULL;
            }
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        have_event = false;
    }
    *out = docs;
    docs = NULL;
cleanup:
    if (have_event)
        yaml_event_delete(&ev);
    for (int i = 0; i < depth; i++)
        json_decref(stack[i].key);
    json_decref(doc);
    json_decref(docs);
    yaml_parser_delete(&parser);
    return rc;
}
