/* capstan: the resource model: validation and normalization of tenants and environments.
 *
 * The model is JSON (jansson), shaped as the API shows it. These functions take what a client
 * sent, check every field (collecting every problem, not only the first) and return the
 * normalized spec with defaults filled in. They are pure: no I/O, thread-safe.
 *
 * Errors are appended to `errors`, an array of {"field": "owners[0]", "message": "..."}; the
 * functions return CAP_EINVALID when at least one was added. */
#ifndef CAPSTAN_MODEL_MODEL_H
#define CAPSTAN_MODEL_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define MODEL_TENANT_NAME_MAX 30
#define MODEL_ENV_NAME_MAX    20
#define MODEL_MAX_OWNERS      20
#define MODEL_MAX_LABELS      64
#define MODEL_TTL_MIN_MS      (3600LL * 1000)
#define MODEL_TTL_MAX_MS      (720LL * 3600 * 1000)

struct model_defaults {
    const char *kubernetes_version; /* used when an environment does not say */
};

/* Tenant create body -> spec {"name", "displayName", "owners", "isolation", "provider",
 * ["region"], "quota": {"cpu", "memory", "environments"}, "labels"}. *out: new reference. */
int model_tenant_create(json_t **out, const json_t *in, json_t *errors);

/* Applies a merge patch to a tenant spec (as model_tenant_create made it) and validates the
 * result; name, isolation, provider and region are immutable. *out: new reference. */
int model_tenant_patch(json_t **out, const json_t *spec, const json_t *patch, json_t *errors);

/* Environment create body -> spec {"name", "type", ["ttl"], "kubernetesVersion",
 * ["controlPlane", "workers"]} for the given tenant spec. *out: new reference. */
int model_env_create(json_t **out, const json_t *in, const json_t *tenant_spec,
                     const struct model_defaults *defaults, json_t *errors);

/* Applies a merge patch to an environment spec; only workers and kubernetesVersion (upgrade
 * only) may change. *out: new reference. */
int model_env_patch(json_t **out, const json_t *spec, const json_t *patch,
                    const json_t *tenant_spec, json_t *errors);

/* Validates an extend body {"ttl": "24h"}; *ttl_ms gets the duration. */
int model_env_extend(long long *ttl_ms, const json_t *in, json_t *errors);

/* RFC 7396 merge patch: *out = target patched (new reference). */
json_t *model_merge_patch(const json_t *target, const json_t *patch);

/* Appends {"field", "message"} to errors; returns CAP_EINVALID. */
int model_error(json_t *errors, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Compares two "vMAJOR.MINOR.PATCH" versions: <0, 0, >0. Both must be valid. */
int model_version_cmp(const char *a, const char *b);

/* True if s is a Kubernetes label key / value (qualified name rules). */
bool model_is_label_key(const char *s);
bool model_is_label_value(const char *s);
/* True if the first n bytes of s are a DNS-1123 subdomain: 1..253 bytes of dot-separated
 * DNS-1123 labels (1..63 of [a-z0-9-], no '-' at either end). */
bool model_is_dns_subdomain(const char *s, size_t n);

#endif
