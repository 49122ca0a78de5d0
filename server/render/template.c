/* capstan: typed `${VARIABLE}` substitution for cluster templates (see template.h).
 *
 * The expander looks at the line around each variable with a small YAML-aware scan (quotes,
 * comments, flow brackets) to make sure the variable stands where a whole value stands; the
 * value itself is then written quoted (strings) or as digits (integers). */
#include "render/template.h"

#include "render/yaml.h"
#include "util/buf.h"
#include "util/error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sets the out-of-memory error; returns CAP_ERROR (a constant, so analysers see the failure). */
static int oom(void)
{
    cap_error_set(CAP_ERROR, "out of memory");
    return CAP_ERROR;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > RENDER_VAR_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static struct render_var *find(const struct render_vars *vars, const char *name, size_t n)
{
    for (size_t i = 0; i < vars->n; i++) {
        if (strlen(vars->items[i].name) == n && memcmp(vars->items[i].name, name, n) == 0)
            return &vars->items[i];
    }
    return NULL;
}

/* Finds or adds the entry for name, clearing its old value. */
static int slot(struct render_var **out, struct render_vars *vars, const char *name)
{
    struct render_var *v;
    size_t n = name ? strlen(name) : 0;

    *out = NULL;
    if (!name || !valid_name(name, n)) {
        cap_error_set(CAP_EINVALID, "invalid template variable name");
        return CAP_EINVALID;
    }
    v = find(vars, name, n);
    if (!v) {
        if (vars->n == vars->cap) {
            size_t cap = vars->cap ? vars->cap * 2 : 16;
            struct render_var *items = realloc(vars->items, cap * sizeof(*items));
            if (!items)
                return oom();
            vars->items = items;
            vars->cap = cap;
        }
        v = &vars->items[vars->n];
        memset(v, 0, sizeof(*v));
        if (!(v->name = strdup(name)))
            return oom();
        vars->n++;
    }
    free(v->str);
    free(v->hint);
    v->str = v->hint = NULL;
    v->num = 0;
    *out = v;
    return 0;
}

int render_vars_set_str(struct render_vars *vars, const char *name, const char *value)
{
    struct render_var *v;
    size_t len;
    int rc;

    if (!value)
        return render_vars_set_missing(vars, name, NULL);
    len = strlen(value);
    if (len > RENDER_VAR_VALUE_MAX)
        return cap_error_set(CAP_EINVALID, "value of template variable %s is longer than %d bytes",
                             name, RENDER_VAR_VALUE_MAX);
    if (render_yaml_check_text(value, len) != 0)
        return cap_error_wrap("value of template variable %s", name);
    if ((rc = slot(&v, vars, name)) != 0)
        return rc;
    v->type = RENDER_VAR_STRING;
    if (!(v->str = strdup(value)))
        return oom();
    return 0;
}

int render_vars_set_missing(struct render_vars *vars, const char *name, const char *hint)
{
    struct render_var *v;
    int rc;

    if ((rc = slot(&v, vars, name)) != 0)
        return rc;
    v->type = RENDER_VAR_STRING;
    if (hint && !(v->hint = strdup(hint)))
        return oom();
    return 0;
}

int render_vars_set_int(struct render_vars *vars, const char *name, long long value)
{
    struct render_var *v;
    int rc;

    if (value < 0)
        return cap_error_set(CAP_EINVALID, "template variable %s must not be negative", name);
    if ((rc = slot(&v, vars, name)) != 0)
        return rc;
    v->type = RENDER_VAR_INT;
    v->num = value;
    return 0;
}

const struct render_var *render_vars_get(const struct render_vars *vars, const char *name)
{
    return name ? find(vars, name, strlen(name)) : NULL;
}

void render_vars_free(struct render_vars *vars)
{
    if (!vars)
        return;
    for (size_t i = 0; i < vars->n; i++) {
        free(vars->items[i].name);
        free(vars->items[i].str);
        free(vars->items[i].hint);
    }
    free(vars->items);
    memset(vars, 0, sizeof(*vars));
}

/* --- placement ---------------------------------------------------------------------------- */

enum placement { PLACE_OK, PLACE_KEY, PLACE_QUOTED, PLACE_COMMENT, PLACE_NOT_ALONE };

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* True when a scalar or collection may start at p[i]: at the line start, after blanks, or right
 * after a flow indicator. */
static bool at_token_start(const char *p, size_t i)
{
    return i == 0 || is_space(p[i - 1]) || strchr("[{,", p[i - 1]) != NULL;
}

/* Classifies the place of a variable: p[0..n) is the text of its line before "${", after is
 * the text from the closing '}' + 1 to the end of the text (alen bytes). */
static enum placement classify(const char *p, size_t n, const char *after, size_t alen)
{
    bool sq = false, dq = false;
    int flow = 0;
    size_t last = n; /* index of the last non-blank character before the variable */
    size_t j;

    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (sq) {
            if (c == '\'') {
                if (i + 1 < n && p[i + 1] == '\'')
                    i++;
                else
                    sq = false;
            }
            continue;
        }
        if (dq) {
            if (c == '\\')
                i++;
            else if (c == '"')
                dq = false;
            continue;
        }
        if (c == '$' && i + 1 < n && p[i + 1] == '$') {
            i++; /* "$$" of an escaped "$${" */
            continue;
        }
        if (c == '$' && i + 1 < n && p[i + 1] == '{') {
            /* an earlier variable of this line: one value, skip to its '}' */
            const char *close = memchr(p + i, '}', n - i);
            i = close ? (size_t)(close - p) : n;
            continue;
        }
        if (c == '#' && (i == 0 || is_space(p[i - 1])))
            return PLACE_COMMENT;
        if (c == '\'' && at_token_start(p, i))
            sq = true;
        else if (c == '"' && at_token_start(p, i))
            dq = true;
        else if ((c == '[' || c == '{') && at_token_start(p, i))
            flow++;
        else if ((c == ']' || c == '}') && flow > 0)
            flow--;
    }
    if (sq || dq)
        return PLACE_QUOTED;
    for (j = n; j > 0; j--) {
        if (!is_space(p[j - 1])) {
            last = j - 1;
            break;
        }
    }

    /* What comes before. */
    if (last == n) {
        /* alone at the start of the line */
    } else if (p[last] == ':' && last + 1 < n) {
        /* "key: ${X}" */
    } else if (flow > 0 && strchr("[{,", p[last])) {
        /* "[${X}", "[a, ${X}", "{${X}" (the key check below catches "{${X}: v}") */
    } else if (p[last] == '-' && last + 1 < n) {
        /* "- ${X}" and "- - ${X}": only dashes followed by blanks before the variable */
        for (j = 0; j < last; j++) {
            if (is_space(p[j]))
                continue;
            if (p[j] == '-' && is_space(p[j + 1]))
                continue;
            return PLACE_NOT_ALONE;
        }
    } else if (p[last] == '?') {
        return PLACE_KEY;
    } else {
        return p[last] == '"' || p[last] == '\'' ? PLACE_QUOTED : PLACE_NOT_ALONE;
    }

    /* What comes after. */
    j = 0;
    while (j < alen && is_space(after[j]))
        j++;
    if (j == alen || after[j] == '\n' || after[j] == '\r')
        return PLACE_OK;
    if (after[j] == '#' && j > 0)
        return PLACE_OK;
    if (after[j] == ':')
        return PLACE_KEY;
    if (flow > 0 && strchr(",]}", after[j]))
        return PLACE_OK;
    if (after[j] == '"' || after[j] == '\'')
        return PLACE_QUOTED;
    return PLACE_NOT_ALONE;
}

/* --- expansion ---------------------------------------------------------------------------- */

/* Writes file quoted for messages into buf. */
static void quote_name(char *buf, size_t size, const char *file)
{
    struct cap_buf b = CAP_BUF_INIT(size > 1 ? size - 1 : 0);
    render_yaml_quote_for_message(&b, file ? file : "template", 200);
    snprintf(buf, size, "%s", cap_buf_str(&b));
    cap_buf_free(&b);
}

/* Which values expand() writes for string variables: their own, or the same stand-in for all
 * (see render_template_expand). */
enum values { VALUES_OWN, VALUES_PLAIN, VALUES_PROBE };

/* A value that cannot stay inside a plain, single- or double-quoted scalar that it was pasted
 * into without changing what the YAML parser sees: a ": " and " #" for plain scalars, both
 * quote characters for quoted ones. */
#define PROBE_VALUE "a: b' # c\" - [d], {e: f}"

static int expand(char **out, size_t *out_len, const char *file, const char *text, size_t len,
                  const struct render_vars *vars, enum values values)
{
    struct cap_buf b = CAP_BUF_INIT(RENDER_EXPANDED_MAX);
    char fname[256];
    size_t i = 0, line = 1, line_start = 0, bad = 0;
    int rc = 0;

    *out = NULL;
    if (out_len)
        *out_len = 0;
    quote_name(fname, sizeof(fname), file);
    if (len > RENDER_TEMPLATE_MAX)
        return cap_error_set(CAP_ETOOBIG, "template %s is larger than %d bytes", fname,
                             RENDER_TEMPLATE_MAX);
    if (!render_yaml_is_utf8(text, len, &bad)) {
        for (size_t k = 0; k < bad; k++)
            line += text[k] == '\n';
        return cap_error_set(CAP_EINVALID, "template %s is not valid UTF-8 text (line %zu)", fname,
                             line);
    }
    while (i < len) {
        const char *dollar = memchr(text + i, '$', len - i);
        const char *nl;
        size_t upto = dollar ? (size_t)(dollar - text) : len;

        /* Copy the plain text before the next '$', counting lines. */
        if ((rc = cap_buf_append(&b, text + i, upto - i)) != 0)
            goto cleanup;
        for (size_t k = i; k < upto; k++) {
            if (text[k] == '\n') {
                line++;
                line_start = k + 1;
            }
        }
        i = upto;
        if (i >= len)
            break;
        /* text[i] == '$' */
        if (i + 2 < len && text[i + 1] == '$' && text[i + 2] == '{') {
            if ((rc = cap_buf_puts(&b, "${")) != 0)
                goto cleanup;
            i += 3;
            continue;
        }
        if (i + 1 >= len || text[i + 1] != '{') {
            if ((rc = cap_buf_putc(&b, '$')) != 0)
                goto cleanup;
            i++;
            continue;
        }
        /* A variable reference "${NAME}". */
        {
            const char *name = text + i + 2;
            size_t rest = len - (i + 2), nlen;
            const char *close = memchr(name, '}', rest);
            const struct render_var *v;
            enum placement pl;

            nl = memchr(name, '\n', rest);
            if (!close || (nl && nl < close)) {
                rc = cap_error_set(CAP_EINVALID,
                                   "unterminated \"${\" in template %s (line %zu): a variable "
                                   "is written ${NAME}",
                                   fname, line);
                goto cleanup;
            }
            nlen = (size_t)(close - name);
            if (!valid_name(name, nlen)) {
                struct cap_buf q = CAP_BUF_INIT(256);
                char shown[160], tmp[80];
                size_t m = nlen < sizeof(tmp) - 1 ? nlen : sizeof(tmp) - 1;
                memcpy(tmp, name, m);
                tmp[m] = '\0';
                render_yaml_quote_for_message(&q, tmp, 60);
                snprintf(shown, sizeof(shown), "%s", cap_buf_str(&q));
                cap_buf_free(&q);
                rc = cap_error_set(CAP_EINVALID,
                                   "invalid variable name %s in template %s (line %zu): names "
                                   "are upper-case letters, digits and \"_\" (write $${ for a "
                                   "literal ${)",
                                   shown, fname, line);
                goto cleanup;
            }
            v = find(vars, name, nlen);
            if (!v) {
                rc = cap_error_set(CAP_EINVALID,
                                   "unknown variable ${%.*s} in template %s (line "
                                   "%zu)",
                                   (int)nlen, name, fname, line);
                goto cleanup;
            }
            pl = classify(text + line_start, i - line_start, close + 1,
                          len - (size_t)(close + 1 - text));
            if (pl == PLACE_KEY) {
                rc = cap_error_set(CAP_EINVALID,
                                   "variable ${%s} is used as a mapping key in template %s "
                                   "(line %zu); variables may only be values",
                                   v->name, fname, line);
                goto cleanup;
            }
            if (pl != PLACE_OK) {
                rc = cap_error_set(
                    CAP_EINVALID,
                    "variable ${%s} in template %s (line %zu) must stand alone as a YAML "
                    "value (%s); its value is quoted by capstan",
                    v->name, fname, line,
                    pl == PLACE_QUOTED    ? "not inside or next to quotes"
                    : pl == PLACE_COMMENT ? "not inside a comment; write $${ there"
                                          : "no other text around it");
                goto cleanup;
            }
            if (v->type == RENDER_VAR_INT && values != VALUES_OWN) {
                rc = cap_buf_puts(&b, values == VALUES_PLAIN ? "1" : "2");
            } else if (v->type == RENDER_VAR_INT) {
                rc = cap_buf_printf(&b, "%lld", v->num);
            } else if (!v->str) {
                rc = cap_error_set(CAP_EINVALID,
                                   "variable ${%s} in template %s (line %zu) has no value%s%s%s",
                                   v->name, fname, line, v->hint ? " (" : "",
                                   v->hint ? v->hint : "", v->hint ? ")" : "");
            } else if (values == VALUES_PLAIN) {
                rc = render_yaml_quote(&b, "x", 1);
            } else if (values == VALUES_PROBE) {
                rc = render_yaml_quote(&b, PROBE_VALUE, strlen(PROBE_VALUE));
            } else {
                rc = render_yaml_quote(&b, v->str, strlen(v->str));
            }
            if (rc)
                goto cleanup;
            i = (size_t)(close + 1 - text);
        }
    }
    if (out_len)
        *out_len = b.len;
    *out = cap_buf_detach(&b);
    if (!*out)
        rc = oom();
cleanup:
    if (rc == CAP_ETOOBIG)
        cap_error_set(CAP_ETOOBIG, "template %s expands to more than %d bytes", fname,
                      RENDER_EXPANDED_MAX);
    cap_buf_free(&b);
    return rc;
}

/* True if a and b have the same mappings with the same keys and the same sequence lengths in
 * the same places (scalar values may differ). */
static bool same_shape(const json_t *a, const json_t *b)
{
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_object(a) != json_is_object(b) || json_is_array(a) != json_is_array(b))
        return false;
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach((json_t *)a, key, v)
        {
            if (!json_object_get(b, key) || !same_shape(v, json_object_get(b, key)))
                return false;
        }
    } else if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        json_array_foreach(a, i, v)
        {
            if (!same_shape(v, json_array_get(b, i)))
                return false;
        }
    }
    return true;
}

/* The line-by-line placement check (classify) cannot see every place where a value would not
 * stand alone: a line that continues a multi-line plain or quoted scalar of the lines before
 * (the quoted value becomes part of that scalar's text), or an entry of a flow mapping, which
 * is a key ("{ ${X} }"). So the template is also expanded with two sets of stand-in values, a
 * plain one and a probe full of YAML syntax (and another number): when the plain expansion is
 * YAML, the probe's must be YAML of exactly the same shape, whatever the real values are.
 * (Found by tests/fuzz/fuzz_template.c.) */
int render_template_expand(char **out, size_t *out_len, const char *file, const char *text,
                           size_t len, const struct render_vars *vars)
{
    char *plain = NULL, *probe = NULL, fname[256];
    size_t plain_len = 0, probe_len = 0;
    json_t *plain_doc = NULL, *probe_doc = NULL;
    int rc;

    if ((rc = expand(out, out_len, file, text, len, vars, VALUES_OWN)) != 0)
        return rc;
    if (expand(&plain, &plain_len, file, text, len, vars, VALUES_PLAIN) != 0 ||
        render_yaml_parse(&plain_doc, plain, plain_len, "template") != 0)
        goto cleanup; /* not YAML whatever the values: nothing a value could change */
    if ((rc = expand(&probe, &probe_len, file, text, len, vars, VALUES_PROBE)) == 0 &&
        (render_yaml_parse(&probe_doc, probe, probe_len, "template") != 0 ||
         !same_shape(plain_doc, probe_doc))) {
        quote_name(fname, sizeof(fname), file);
        rc = cap_error_set(CAP_EINVALID,
                           "a variable in template %s does not stand where a whole YAML value "
                           "stands (it is inside a scalar that spans lines, or a key of a flow "
                           "mapping), so its value could change the document",
                           fname);
    }
cleanup:
    if (rc) {
        free(*out);
        *out = NULL;
        if (out_len)
            *out_len = 0;
    }
    free(plain);
    free(probe);
    json_decref(plain_doc);
    json_decref(probe_doc);
    return rc;
}
