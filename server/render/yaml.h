/* capstan: the one place where YAML text is made or read by the render module.
 *
 * Invariants: every string that reaches YAML output goes through render_yaml_quote, which emits
 * a double-quoted scalar on one line, so no value can start a new key, document or flow
 * collection; mapping keys are written plain only when they cannot be read as anything but the
 * same string. Output is deterministic: objects are written in the order of their keys in the
 * jansson object (callers insert in the order they want), arrays in order. */
#ifndef CAPSTAN_RENDER_YAML_H
#define CAPSTAN_RENDER_YAML_H

#include "util/buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The deepest nesting render_yaml_parse accepts. */
#define RENDER_YAML_MAX_DEPTH 64

/* Returns 0 when s (len bytes) is text that can go into the fleet repository: valid UTF-8
 * without DEL, C1 controls (U+0080..U+009F) and the non-characters U+FFFE/U+FFFF, which
 * kustomize cannot write back even when escaped. CAP_EINVALID with a message otherwise. */
int render_yaml_check_text(const char *s, size_t len);

/* Appends s (len bytes, may hold NUL bytes) as a YAML double-quoted scalar: backslash, quote,
 * C0 control characters, U+2028/U+2029 and U+FEFF are escaped; other UTF-8 is copied. Returns
 * 0, CAP_EINVALID when render_yaml_check_text refuses s (nothing appended), or CAP_ETOOBIG from
 * the buffer. Thread-safe. */
int render_yaml_quote(struct cap_buf *out, const char *s, size_t len);

/* True when s (len bytes) is valid UTF-8 without NUL bytes; else false and, when bad_at is not
 * NULL, the offset of the first bad byte in *bad_at. */
bool render_yaml_is_utf8(const char *s, size_t len, size_t *bad_at);

/* Appends v for use in a message shown to users: quoted like render_yaml_quote, cut after
 * max bytes of input (then "..." follows), invalid UTF-8 shown as \xNN. Never fails visibly:
 * a full buffer just ends the text. */
void render_yaml_quote_for_message(struct cap_buf *out, const char *s, size_t max);

/* Appends one YAML document (block style, two-space indentation, sequences not indented under
 * their key) for doc, which must be a JSON object whose values are objects, arrays, strings,
 * integers, booleans or null. Strings are quoted with render_yaml_quote. Returns 0,
 * CAP_EINVALID for reals or invalid strings, or CAP_ETOOBIG. */
int render_yaml_emit(struct cap_buf *out, const json_t *doc);

/* Appends every object of docs (a JSON array) as a YAML stream, documents separated by "---".
 * Errors as render_yaml_emit. */
int render_yaml_emit_stream(struct cap_buf *out, const json_t *docs);

/* Parses a YAML stream into *out, a new JSON array with one value per document. Mappings become
 * objects (keys must be scalars, no duplicates), sequences arrays; quoted and block scalars are
 * strings; plain scalars are null ("", "~", "null"), booleans ("true", "false"), integers
 * (decimal, fitting 64 bits) or otherwise strings. Anchors, aliases and nesting deeper than
 * RENDER_YAML_MAX_DEPTH are refused. Returns 0 or CAP_EINVALID with a message naming the line
 * ("what" names the text in messages, e.g. a file name). Thread-safe. */
int render_yaml_parse(json_t **out, const char *text, size_t len, const char *what);

#endif
