/* capstan: a strict reader of one YAML document into jansson values (libyaml event API).
 *
 * Meant for outside input (kubeconfigs, manifests), so it accepts a safe subset of YAML:
 *   - mappings become objects, sequences arrays;
 *   - plain scalars are resolved with the YAML 1.2 core schema: null (~, null, empty),
 *     true/false, integers (decimal, 0o octal, 0x hex) and floats; everything else, and every
 *     quoted or block scalar, is a string; tags !!str, !!int, !!float, !!bool, !!null, !!map
 *     and !!seq are honoured, others refused;
 *   - refused: anchors and aliases (no billion laughs), duplicate keys, keys that are not
 *     scalars, NUL characters, .inf/.nan (JSON has none), integers outside 64 bits, nesting
 *     deeper than max_depth, more than one document, text over CAP_YAML_MAX_BYTES.
 * Never crashes on any input (fuzzed); memory use is bounded by a small multiple of len. */
#ifndef CAPSTAN_UTIL_YAML_H
#define CAPSTAN_UTIL_YAML_H

#include <jansson.h>
#include <stddef.h>

/* The largest text cap_yaml_to_json reads. */
#define CAP_YAML_MAX_BYTES (8u * 1024u * 1024u)

/* Parses the single YAML document in text[0..len) (UTF-8, or UTF-16 with a BOM) into *out, a
 * new reference (JSON null for an empty document). max_depth bounds the nesting of mappings
 * and sequences (1 allows a flat mapping of scalars; 0 allows only a scalar).
 * Errors: CAP_EMALFORMED (the message says what and where: "line 3, column 5"),
 * CAP_ETOOBIG (len over CAP_YAML_MAX_BYTES), CAP_ERROR (out of memory). *out is NULL then.
 * Thread-safe. */
int cap_yaml_to_json(json_t **out, const char *text, size_t len, size_t max_depth);

#endif
