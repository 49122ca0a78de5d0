/* capstan: tenant platform repositories. When a tenant is created, its platform repository is
 * made from the platform blueprint on the Git hosting service, and its clone URL recorded.
 *
 * Providers (see server/cloud/README.md):
 *   github  the GitHub REST API v3 (github.com or GitHub Enterprise Server): generate from a
 *           template repository, or fork; token auth; rate limits honoured; a 202-accepted fork
 *           is polled until it exists;
 *   git     any Git server or a local path: libgit2 fetches the blueprint's branch and pushes it
 *           to the URL built from a pattern.
 *
 * Invariants:
 *   - idempotent: an existing repository that came from the blueprint is reused, never
 *     duplicated; one with the same name that did not is never touched (CAP_ECONFLICT);
 *   - nothing is ever deleted or force-pushed;
 *   - tokens and passwords never appear in logs, errors or URLs; only https (or a local path)
 *     is spoken, with TLS verification always on;
 *   - every network call has a deadline, and the whole call is bounded by timeout_ms. */
#ifndef CAPSTAN_CLOUD_PLATFORM_H
#define CAPSTAN_CLOUD_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>

#define PLATFORM_URL_MAX            2048 /* a clone URL, API URL or path, with the NUL */
#define PLATFORM_DEFAULT_API_URL    "https://api.github.com"
#define PLATFORM_DEFAULT_NAME       "tenant-{tenant}"
#define PLATFORM_DEFAULT_BRANCH     "main"
#define PLATFORM_DEFAULT_TIMEOUT_MS 60000

enum platform_provider { PLATFORM_NONE = 0, PLATFORM_GITHUB, PLATFORM_GIT };

/* What platform_repo_ensure needs. Strings are borrowed for the call only; NULL or "" means
 * the documented default (or "not set"). */
struct platform_options {
    enum platform_provider provider;
    /* github */
    const char *api_url;       /* default https://api.github.com; GHES: https://host/api/v3 */
    const char *token;         /* secret: never logged, never in errors */
    const char *owner;         /* organization (or user, templates only) owning tenant repos */
    const char *template_repo; /* "owner/name" of the blueprint as a template repository
                                  (POST /repos/{template}/generate) */
    const char *fork_repo;     /* or "owner/name" to fork into the organization `owner`
                                  (POST /repos/{fork}/forks); exactly one of the two */
    bool public_repos;         /* false (the default): tenant repositories are private */
    const char *name_pattern;  /* repository name, default "tenant-{tenant}" */
    /* git */
    const char *blueprint_url;    /* https URL, file:// URL or absolute path of the blueprint */
    const char *blueprint_branch; /* default main; also the tenant repository's branch */
    const char *url_pattern;      /* "https://git.example.com/platform/tenant-{tenant}.git" or
                                     "/srv/git/tenant-{tenant}.git"; must hold {tenant} */
    const char *username;         /* HTTPS basic auth user (git) */
    const char *password;         /* its password (git); secret */
    const char *cache_dir;        /* scratch folder for clones (git; created, mode 0700) */
    /* both */
    const char *ca_file;  /* extra CA certificates (PEM) trusted for HTTPS, on top of the
                             system's store */
    long long timeout_ms; /* bound of each HTTP call or git network operation, and of the
                             whole call (waits for rate limits and forks included);
                             0: PLATFORM_DEFAULT_TIMEOUT_MS */
};

/* Parses "none", "github" or "git". CAP_EINVALID otherwise. */
int platform_provider_parse(enum platform_provider *out, const char *s);

/* Checks options without any network or file access (call it at start-up so that a bad
 * setting fails early). CAP_EINVALID with the offending setting in the last error's field
 * ("token", "template_repo", "url_pattern", ...). Thread-safe. */
int platform_options_check(const struct platform_options *opt);

/* Creates the tenant's platform repository from the blueprint, or finds the one an earlier
 * attempt made, and writes its clone URL into url (https for github; the url_pattern result
 * for git). With PLATFORM_NONE nothing is done: url is "" and 0 is returned.
 * Idempotent: calling it again (a retried job, another replica at the same time) reuses the
 * repository, never makes a second one.
 * Errors (negative CAP_* codes, message in the thread's last error):
 *   CAP_EINVALID       bad options or tenant name (not a DNS label), or the hosting service
 *                      refused the request as invalid (for example the blueprint is not a
 *                      template repository, or cannot be seen with the token);
 *   CAP_EUNAUTHORIZED  the token or password was rejected;
 *   CAP_EFORBIDDEN     the token may not create repositories there;
 *   CAP_ECONFLICT      a repository of that name exists but was not made from the blueprint
 *                      (or git: holds unrelated history or other branches);
 *   CAP_ENOTFOUND      git: the remote repository does not exist (it must be made first);
 *   CAP_EUNAVAILABLE, CAP_ETIMEOUT, CAP_ERATELIMIT  retryable: the service is unreachable,
 *                      too slow, or rate-limited beyond the budget (the message says when the
 *                      limit resets);
 *   CAP_ETOOBIG        url_size is too small for the URL;
 *   CAP_ERROR          anything else (TLS trust, local I/O).
 * Thread-safe: concurrent calls for the same tenant are serialized (git) or resolved by the
 * service (github: the loser of a creation race reuses the winner's repository). Blocks for at
 * most about timeout_ms. */
int platform_repo_ensure(const struct platform_options *opt, const char *tenant, char *url,
                         size_t url_size);

#endif
