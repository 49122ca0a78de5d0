/* capstan: helpers shared by the API handlers: writes (Idempotency-Key, If-Match, answers),
 * pagination, query flags, names. */
#ifndef CAPSTAN_API_COMMON_H
#define CAPSTAN_API_COMMON_H

#include "http/http.h"
#include "store/resources.h"

#include <jansson.h>
#include <stdbool.h>

#define API_LIMIT_DEFAULT 50
#define API_LIMIT_MAX     500

/* Fills w from the request: actor, Idempotency-Key (checked: 1..255 printable ASCII; 400
 * otherwise), the request hash, If-Match (a quoted generation or *; 412-worthy garbage is
 * CAP_EPRECONDITION). */
int api_write_init(struct http_request *req, struct store_write *w);

/* Answers a finished write: w->status, Location, the body (stolen); for a replayed
 * Idempotency-Key also "Idempotent-Replayed: true". */
int api_write_reply(struct http_request *req, const struct store_write *w, json_t *body);

/* Reads ?limit= and ?cursor= (kind: one letter naming the collection). 400 when bad. */
int api_page(struct http_request *req, char kind, struct store_page *page);
/* Answers {"items": items, "nextCursor": ...}; items is the JSON text of an array (borrowed). */
int api_list_reply(struct http_request *req, char kind, const struct store_page *page,
                   const char *items);

/* ?name=true|false (absent: false); 400 otherwise. */
int api_flag(struct http_request *req, const char *name, bool *out);

/* An enum query parameter: NULL when absent; 400 when not one of choices (NULL-ended). */
int api_enum_query(struct http_request *req, const char *name, const char *const *choices,
                   const char **out);

/* Sets ETag from the object's "generation". */
void api_etag(struct http_request *req, const json_t *obj);

/* A 422 answer from a model errors array (stolen). */
int api_invalid(struct http_request *req, json_t *errors);

/* The parts of a merge-patch request that differ between resources (see api_patch). */
struct api_patch_ops {
    const char *what; /* "tenant", "environment": for messages */
    /* the stored spec and its generation */
    int (*load)(void *ctx, json_t **spec, long long *generation);
    /* spec patched and validated (model_*_patch); errors collects field errors */
    int (*apply)(void *ctx, const json_t *spec, const json_t *patch, json_t **new_spec,
                 json_t *errors);
    /* answers a dry run of new_spec */
    int (*dry_run)(void *ctx, struct http_request *req, json_t *new_spec);
    /* stores new_spec if the resource is still at generation (CAP_ERETRY otherwise) */
    int (*store)(void *ctx, long long generation, const json_t *new_spec, struct store_write *w,
                 json_t **body);
};

/* PATCH: reads the resource, checks If-Match, applies the merge patch of the request body,
 * answers a dry run or stores the result with its job; a concurrent change (CAP_ERETRY) makes
 * it read, merge and store again (a few times). */
int api_patch(struct http_request *req, const struct api_patch_ops *ops, void *ctx, bool dry);

/* Path parameters that must be names: a bad one cannot exist, so it is a 404. */
int api_tenant_param(struct http_request *req, const char **out);
int api_env_param(struct http_request *req, const char **out);

#endif
