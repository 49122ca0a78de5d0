/* capstan: API tokens in PostgreSQL, and the lookups that authorization needs.
 *
 * Invariants: a token is stored only as the SHA-256 of its text (64 lower-case hex characters);
 * nothing here ever sees or returns the plain token. A tenant role is bound to the tenant's row,
 * so a tenant deleted and later made again under the same name does not inherit old tokens.
 * Every check of a token reads the database, so revocation and expiry take effect at once in
 * every process. Thread-safe; each call takes and returns its own pooled connection. */
#ifndef CAPSTAN_STORE_TOKENS_H
#define CAPSTAN_STORE_TOKENS_H

#include "store/resources.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>

#define STORE_TOKEN_NAME_MAX 64

/* What a token grants, as the authenticator needs it. */
struct store_token_auth {
    char id[40];
    char name[STORE_TOKEN_NAME_MAX * 4 + 1];
    char role[16];   /* "admin", "tenant-admin" or "tenant-viewer" */
    char tenant[64]; /* the bound tenant's current name; "" for admin */
    char hash[65];   /* the stored hash (for the caller's constant-time comparison) */
};

/* Looks up the live token whose SHA-256 is hash (64 hex characters) and notes its use
 * (lastUsedAt, at most once a minute). CAP_EUNAUTHORIZED when there is no such token or it is
 * expired or revoked (the message does not say which); CAP_EUNAVAILABLE when the database is
 * unreachable. */
int store_token_auth(struct store_pool *p, const char *hash, struct store_token_auth *out);

/* Stores a new token with id (a UUID), name, role, tenant (NULL for admin), hash,
 * expires_ms (ms since the epoch, 0: never) and created_by. *out is the token as the API lists
 * it (new reference). CAP_EINVALID (field "tenant") when the tenant does not exist or is
 * deleted. */
int store_token_create(struct store_pool *p, const char *id, const char *name, const char *role,
                       const char *tenant, const char *hash, long long expires_ms,
                       const char *created_by, json_t **out);

/* A page of tokens, newest first (revoked and expired ones too), as the API lists them. */
int store_token_list(struct store_pool *p, struct store_page *page, char **items);

/* Revokes token id (a UUID) at once; revoking a revoked token changes nothing. CAP_ENOTFOUND
 * when there is no such token. */
int store_token_revoke(struct store_pool *p, const char *id);

/* The tenant of job id (a UUID) into out (size n). CAP_ENOTFOUND when there is no such job. */
int store_job_tenant(struct store_pool *p, const char *id, char *out, size_t n);

#endif
