/* capstan: what the files of server/cloud share, and the pure helpers the unit tests call.
 *
 * platform.c  options, names and URL patterns, dispatch to a provider
 * github.c    the GitHub REST API provider (libcurl + jansson)
 * git.c       the git provider (libgit2) */
#ifndef CAPSTAN_CLOUD_INTERNAL_H
#define CAPSTAN_CLOUD_INTERNAL_H

#include "cloud/platform.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLATFORM_TENANT_MAX     63  /* a tenant name is a DNS label */
#define PLATFORM_GH_OWNER_MAX   39  /* GitHub account names */
#define PLATFORM_GH_NAME_MAX    100 /* GitHub repository names */
#define PLATFORM_GH_FULL_MAX    (PLATFORM_GH_OWNER_MAX + 1 + PLATFORM_GH_NAME_MAX + 1)
#define PLATFORM_BRANCH_MAX     200
#define PLATFORM_GH_MESSAGE_MAX 200 /* bytes of a GitHub error message quoted to users */

/* ---- platform.c ---------------------------------------------------------------------- */

/* Writes pattern into out with every "{tenant}" replaced by tenant. The pattern must hold
 * "{tenant}" at least once and no other '{' or '}'. CAP_EINVALID (field "pattern"), or
 * CAP_ETOOBIG when the result does not fit size. */
int platform_expand(char *out, size_t size, const char *pattern, const char *tenant);

/* GitHub account names: 1..39 ASCII letters, digits and inner single hyphens. */
bool platform_github_owner_ok(const char *s);
/* GitHub repository names: 1..100 of ASCII letters, digits, '.', '-', '_'; not "." or "..". */
bool platform_github_name_ok(const char *s);
/* Splits "owner/name" (both checked as above) into owner and name. CAP_EINVALID otherwise. */
int platform_github_split(char owner[PLATFORM_GH_OWNER_MAX + 1],
                          char name[PLATFORM_GH_NAME_MAX + 1], const char *full);

/* The kinds of location the git provider accepts. */
enum platform_location { PLATFORM_LOC_BAD = 0, PLATFORM_LOC_HTTPS, PLATFORM_LOC_LOCAL };

/* Classifies a repository location: "https://host[:port]/path" without user information,
 * query, fragment, white space or control characters -> PLATFORM_LOC_HTTPS; an absolute path
 * (or "file:///abs") without "." or ".." segments -> PLATFORM_LOC_LOCAL, with *path_out (may be
 * NULL) pointing at the path inside s. Anything else (http, ssh, relative) -> PLATFORM_LOC_BAD. */
enum platform_location platform_location_kind(const char *s, const char **path_out);

/* True if s is a usable branch name: 1..PLATFORM_BRANCH_MAX characters, a valid Git ref name
 * below refs/heads/ (no "..", "@{", control characters, space, ~^:?*[\, no leading '-' or
 * '/', no trailing '/' or ".lock"). */
bool platform_branch_ok(const char *s);

/* Copies a message from outside into dst: control characters become spaces, at most size-1
 * bytes, never cutting a UTF-8 sequence, and every occurrence of secret (may be NULL) replaced
 * by "[redacted]". */
void platform_clean_message(char *dst, size_t size, const char *src, const char *secret);

/* ---- github.c ------------------------------------------------------------------------ */

/* What capstan reads from a GitHub repository object. */
struct platform_gh_repo {
    char full_name[PLATFORM_GH_FULL_MAX];
    char clone_url[PLATFORM_URL_MAX];
    char template_full[PLATFORM_GH_FULL_MAX]; /* template_repository.full_name or "" */
    char parent_full[PLATFORM_GH_FULL_MAX];   /* parent.full_name or "" */
    char source_full[PLATFORM_GH_FULL_MAX];   /* source.full_name or "" */
    bool fork;
    bool private_repo;
};

/* Validates a repository object from the API and reads it into *out: an object whose
 * full_name is a valid "owner/name" equal (ignoring case, as GitHub does) to want_full (when
 * not NULL), whose clone_url is an https URL (PLATFORM_LOC_HTTPS) and whose optional
 * template_repository/parent/source are null or objects with a valid full_name.
 * CAP_EUNAVAILABLE ("github api answered ...") when the shape is wrong; CAP_ECONFLICT when
 * full_name is another repository. */
int platform_github_repo_parse(struct platform_gh_repo *out, const json_t *repo,
                               const char *want_full);

/* True if the repository was made from the blueprint: generated from template_repo (its
 * template_repository), or a fork of fork_repo (its parent or source). Case-insensitive. */
bool platform_github_from_blueprint(const struct platform_gh_repo *r, const char *template_repo,
                                    const char *fork_repo);

/* True if a 422 error body says the repository name is taken ("name already exists on this
 * account" in errors[].message, or the same in message). */
bool platform_github_name_taken(const json_t *body);

/* A rate-limit verdict on one answer, following GitHub's documented rules. */
struct platform_gh_rate {
    bool limited;      /* the answer is a rate-limit refusal */
    long long wait_ms; /* how long to wait before trying again */
    int64_t resume_ms; /* wall-clock time (ms since the epoch) when it may be tried again */
    bool secondary;    /* a secondary (abuse) limit rather than the hourly one */
};

/* Judges an answer: status, the raw values of the x-ratelimit-remaining, x-ratelimit-reset
 * and retry-after headers (NULL when absent), the error body's message (may be NULL) and the
 * current wall clock. A 403 or 429 is a rate limit when retry-after is present, or remaining
 * is "0", or the message speaks of a rate limit; 429 always is. Then: retry-after seconds if
 * present; else, with remaining 0, until the reset time; else at least one minute. Other
 * answers are not limited. */
void platform_github_rate(struct platform_gh_rate *out, long status, const char *remaining,
                          const char *reset, const char *retry_after, const char *message,
                          int64_t now_ms);

/* The provider (github.c): opt is checked; name is the expanded repository name. */
int platform_github_ensure(const struct platform_options *opt, const char *tenant, const char *name,
                           char *url, size_t url_size);

/* ---- git.c --------------------------------------------------------------------------- */

/* The provider (git.c): opt is checked; target is the expanded url_pattern. */
int platform_git_ensure(const struct platform_options *opt, const char *tenant, const char *target,
                        char *url, size_t url_size);

#endif
