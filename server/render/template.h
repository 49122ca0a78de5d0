/* capstan: `${VARIABLE}` substitution in cluster templates with a typed variable table.
 *
 * Invariants: a string variable is always written as one YAML double-quoted scalar
 * (render_yaml_quote), an integer variable as bare decimal digits; a variable may only stand
 * where a whole YAML value stands (after "key: ", after "- ", inside a flow collection, or alone
 * on a line), never as a mapping key, inside quotes, inside a comment or next to other text.
 * So whatever a variable holds, it cannot add, remove or rename a key. `$${` writes a literal
 * `${`; any other `$` is copied. */
#ifndef CAPSTAN_RENDER_TEMPLATE_H
#define CAPSTAN_RENDER_TEMPLATE_H

#include <stddef.h>

#define RENDER_VAR_NAME_MAX  64          /* longest variable name */
#define RENDER_VAR_VALUE_MAX 4096        /* longest string value in bytes */
#define RENDER_TEMPLATE_MAX  (256 << 10) /* largest template file */
#define RENDER_EXPANDED_MAX  (1 << 20)   /* largest expanded text */

enum render_var_type { RENDER_VAR_STRING = 1, RENDER_VAR_INT = 2 };

struct render_var {
    char *name;
    enum render_var_type type;
    char *str;     /* RENDER_VAR_STRING: the value; NULL when the variable has no value */
    char *hint;    /* when str is NULL: how to give it one, for the error message, or NULL */
    long long num; /* RENDER_VAR_INT: the value (never negative) */
};

/* A table of variables; zero-initialise, free with render_vars_free. Setting a name again
 * replaces its value. */
struct render_vars {
    struct render_var *items;
    size_t n, cap;
};

/* Sets a string variable (value copied; must be valid UTF-8 of at most RENDER_VAR_VALUE_MAX
 * bytes). name must be [A-Z_][A-Z0-9_]* of at most RENDER_VAR_NAME_MAX characters.
 * Returns 0, CAP_EINVALID, or CAP_ERROR when out of memory. */
int render_vars_set_str(struct render_vars *vars, const char *name, const char *value);

/* Declares a string variable that has no value: a template that uses it fails with a message
 * that names it and adds hint (e.g. "set CAPSTAN_GCP_PROJECT"; may be NULL). */
int render_vars_set_missing(struct render_vars *vars, const char *name, const char *hint);

/* Sets an integer variable; value must be >= 0 (CAP_EINVALID otherwise). */
int render_vars_set_int(struct render_vars *vars, const char *name, long long value);

/* Borrowed entry for name, or NULL. */
const struct render_var *render_vars_get(const struct render_vars *vars, const char *name);

void render_vars_free(struct render_vars *vars);

/* Expands text (len bytes) into *out (NUL-terminated, caller frees; length in *out_len when
 * out_len is not NULL). file names the template in messages. Errors (CAP_EINVALID, message
 * naming the variable, the template file and the line): unknown variable, variable without a
 * value, unterminated or malformed `${`, a variable in a key position or not standing alone as
 * a value, a template that is not valid UTF-8 or holds a NUL byte; CAP_ETOOBIG when the result
 * exceeds RENDER_EXPANDED_MAX. Thread-safe; does no I/O. */
int render_template_expand(char **out, size_t *out_len, const char *file, const char *text,
                           size_t len, const struct render_vars *vars);

#endif
