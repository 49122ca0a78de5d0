/* capstan: small jansson helpers. */
#ifndef CAPSTAN_UTIL_JSON_H
#define CAPSTAN_UTIL_JSON_H

#include <jansson.h>
#include <stddef.h>

/* A JSON string from s that is always made: invalid UTF-8 bytes become U+FFFD.
 * New reference; json_null() when s is NULL. */
json_t *cap_json_str(const char *s);

/* Dumps compactly with sorted keys; caller frees. NULL only when out of memory. */
char *cap_json_dump(const json_t *v);

/* Borrowed string member of o, or NULL when absent or not a string. */
const char *cap_json_get_str(const json_t *o, const char *key);

#endif
