/* capstan: tenant platform repositories: options, names and URL patterns, and the dispatch to
 * a provider (github.c, git.c).
 *
 * Invariants: every string from the options or from outside is checked here before a provider
 * sees it (names, URLs, branches, patterns), so providers build paths and URLs only from
 * validated parts; a tenant name is a DNS label, which is safe in URLs and file names. */
#include "cloud/internal.h"

#include "util/error.h"
#include "util/str.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define TOKEN_MAX   4096
#define PATTERN_TAG "{tenant}"
#define TIMEOUT_MAX (3600LL * 1000LL)

static bool empty(const char *s)
{
    return !s || !*s;
}

/* Keeps the last error's code and message and records field as the offending setting. */
static int refield(int rc, const char *field)
{
    char msg[CAP_ERROR_MESSAGE_MAX];
    cap_strlcpy(msg, cap_error_message(), sizeof(msg));
    return cap_error_set_field(rc, field, "%s", msg);
}

int platform_provider_parse(enum platform_provider *out, const char *s)
{
    if (s && strcmp(s, "none") == 0)
        *out = PLATFORM_NONE;
    else if (s && strcmp(s, "github") == 0)
        *out = PLATFORM_GITHUB;
    else if (s && strcmp(s, "git") == 0)
        *out = PLATFORM_GIT;
    else
        return cap_error_set(CAP_EINVALID,
                             "platform repository provider \"%.40s\" is not one of none, "
                             "github, git",
                             s ? s : "");
    return 0;
}

int platform_expand(char *out, size_t size, const char *pattern, const char *tenant)
{
    size_t n = 0, tlen = strlen(tenant), taglen = strlen(PATTERN_TAG);
    bool seen = false;
    const char *p = pattern;

    if (size == 0)
        return cap_error_set(CAP_ETOOBIG, "no room for the expanded pattern");
    out[0] = '\0';
    while (*p) {
        const char *piece = p;
        size_t len = 1;
        if (strncmp(p, PATTERN_TAG, taglen) == 0) {
            piece = tenant;
            len = tlen;
            p += taglen;
            seen = true;
        } else if (*p == '{' || *p == '}') {
            return cap_error_set_field(CAP_EINVALID, "pattern",
                                       "the pattern may only hold the placeholder {tenant}");
        } else {
            p++;
        }
        if (n + len >= size)
            return cap_error_set_field(CAP_ETOOBIG, "pattern",
                                       "the expanded pattern is longer than %zu bytes", size - 1);
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = '\0';
    if (!seen)
        return cap_error_set_field(CAP_EINVALID, "pattern",
                                   "the pattern must hold {tenant}, or every tenant would share "
                                   "one repository");
    return 0;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool platform_github_owner_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > PLATFORM_GH_OWNER_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (is_alnum(s[i]))
            continue;
        if (s[i] != '-' || i == 0 || i + 1 == n || s[i - 1] == '-')
            return false;
    }
    return true;
}

bool platform_github_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > PLATFORM_GH_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

int platform_github_split(char owner[PLATFORM_GH_OWNER_MAX + 1],
                          char name[PLATFORM_GH_NAME_MAX + 1], const char *full)
{
    const char *slash = full ? strchr(full, '/') : NULL;
    size_t olen;

    owner[0] = name[0] = '\0';
    if (!slash || (olen = (size_t)(slash - full)) > PLATFORM_GH_OWNER_MAX ||
        strlen(slash + 1) > PLATFORM_GH_NAME_MAX)
        return cap_error_set(CAP_EINVALID, "\"%.150s\" is not a repository \"owner/name\"",
                             full ? full : "");
    memcpy(owner, full, olen);
    owner[olen] = '\0';
    memcpy(name, slash + 1, strlen(slash + 1) + 1);
    if (!platform_github_owner_ok(owner) || !platform_github_name_ok(name)) {
        owner[0] = name[0] = '\0';
        return cap_error_set(CAP_EINVALID, "\"%.150s\" is not a repository \"owner/name\"", full);
    }
    return 0;
}

/* True if s has no control character, space, backslash or DEL. */
static bool plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '\\')
            return false;
    return true;
}

/* True if the absolute path p has no empty-named "." or ".." segment. */
static bool path_ok(const char *p)
{
    if (p[0] != '/')
        return false;
    while (*p) {
        const char *seg = p + 1;
        const char *next = strchr(seg, '/');
        size_t len = next ? (size_t)(next - seg) : strlen(seg);
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        if (!next)
            break;
        p = next;
    }
    return true;
}

enum platform_location platform_location_kind(const char *s, const char **path_out)
{
    const char *host, *end;

    if (path_out)
        *path_out = NULL;
    if (!s || !*s || strlen(s) >= PLATFORM_URL_MAX || !cap_str_is_clean_utf8(s))
        return PLATFORM_LOC_BAD;
    if (s[0] == '/' || strncmp(s, "file:///", 8) == 0) {
        const char *p = s[0] == '/' ? s : s + 7;
        if (!path_ok(p) || strchr(p, '\\') || strcmp(p, "/") == 0)
            return PLATFORM_LOC_BAD;
        for (const char *q = p; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                return PLATFORM_LOC_BAD;
        if (path_out)
            *path_out = p;
        return PLATFORM_LOC_LOCAL;
    }
    if (strncasecmp(s, "https://", 8) != 0 || !plain(s) || strpbrk(s, "?#"))
        return PLATFORM_LOC_BAD;
    host = s + 8;
    end = strchr(host, '/');
    if (!end)
        end = host + strlen(host);
    if (end == host || memchr(host, '@', (size_t)(end - host)))
        return PLATFORM_LOC_BAD;
    return PLATFORM_LOC_HTTPS;
}

bool platform_branch_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > PLATFORM_BRANCH_MAX || s[0] == '-' || s[0] == '/' || s[n - 1] == '/' ||
        s[n - 1] == '.' || strstr(s, "..") || strstr(s, "@{") || strstr(s, "//") ||
        strstr(s, "/.") || s[0] == '.' || strcmp(s, "@") == 0 ||
        (n >= 5 && strcmp(s + n - 5, ".lock") == 0) || strstr(s, ".lock/"))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || strchr("~^:?*[\\", c))
            return false;
    }
    return true;
}

void platform_clean_message(char *dst, size_t size, const char *src, const char *secret)
{
    static const char redacted[] = "[redacted]";
    size_t n = 0, slen = secret ? strlen(secret) : 0;
    bool cut = false;

    if (size == 0)
        return;
    while (src && *src) {
        if (slen > 0 && strncmp(src, secret, slen) == 0) {
            if (n + sizeof(redacted) - 1 >= size) {
                cut = true;
                break;
            }
            memcpy(dst + n, redacted, sizeof(redacted) - 1);
            n += sizeof(redacted) - 1;
            src += slen;
            continue;
        }
        if (n + 1 >= size) {
            cut = true;
            break;
        }
        dst[n++] = ((unsigned char)*src < 0x20 || *src == 0x7f) ? ' ' : *src;
        src++;
    }
    if (cut) {
        /* do not end in the middle of a UTF-8 sequence */
        size_t k = n;
        while (k > 0 && ((unsigned char)dst[k - 1] & 0xc0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)dst[k - 1] & 0xc0) == 0xc0) {
            size_t want = ((unsigned char)dst[k - 1] & 0xe0) == 0xc0   ? 2
                          : ((unsigned char)dst[k - 1] & 0xf0) == 0xe0 ? 3
                                                                       : 4;
            if (n - (k - 1) < want)
                n = k - 1;
        }
    }
    dst[n] = '\0';
}

static bool token_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* The pattern must give a valid result for the shortest and the longest tenant name. */
static int check_pattern(const char *pattern, const char *field, bool github_name)
{
    static const char longest[] = "a23456789012345678901234567890123456789012345678901234567890123";
    char a[PLATFORM_URL_MAX] = "", b[PLATFORM_URL_MAX] = "";
    int rc;

    if ((rc = platform_expand(a, sizeof(a), pattern, "a")) != 0 ||
        (rc = platform_expand(b, sizeof(b), pattern, longest)) != 0)
        return refield(rc, field);
    if (github_name && (!platform_github_name_ok(a) || !platform_github_name_ok(b)))
        return cap_error_set_field(CAP_EINVALID, field,
                                   "the name pattern must give GitHub repository names (at most "
                                   "%d letters, digits, '.', '-', '_') for every tenant name",
                                   PLATFORM_GH_NAME_MAX);
    if (!github_name && (platform_location_kind(a, NULL) == PLATFORM_LOC_BAD ||
                         platform_location_kind(b, NULL) == PLATFORM_LOC_BAD))
        return cap_error_set_field(CAP_EINVALID, field,
                                   "the URL pattern must give an https URL without credentials "
                                   "or an absolute path");
    return 0;
}

static int check_github(const struct platform_options *opt)
{
    char owner[PLATFORM_GH_OWNER_MAX + 1], name[PLATFORM_GH_NAME_MAX + 1];
    const char *api = empty(opt->api_url) ? PLATFORM_DEFAULT_API_URL : opt->api_url;

    if (platform_location_kind(api, NULL) != PLATFORM_LOC_HTTPS)
        return cap_error_set_field(CAP_EINVALID, "api_url",
                                   "the GitHub API URL must be an https URL without credentials, "
                                   "query or fragment");
    if (!token_ok(opt->token))
        return cap_error_set_field(CAP_EINVALID, "token",
                                   "a GitHub token (1 to %d visible ASCII characters) is needed",
                                   TOKEN_MAX);
    if (!platform_github_owner_ok(opt->owner))
        return cap_error_set_field(CAP_EINVALID, "owner",
                                   "the owner of tenant repositories must be a GitHub account "
                                   "name");
    if (empty(opt->template_repo) == empty(opt->fork_repo))
        return cap_error_set_field(CAP_EINVALID, "template_repo",
                                   "set exactly one of the template repository and the "
                                   "repository to fork");
    if (platform_github_split(owner, name,
                              empty(opt->template_repo) ? opt->fork_repo : opt->template_repo))
        return refield(CAP_EINVALID, empty(opt->template_repo) ? "fork_repo" : "template_repo");
    return check_pattern(empty(opt->name_pattern) ? PLATFORM_DEFAULT_NAME : opt->name_pattern,
                         "name_pattern", true);
}

static int check_git(const struct platform_options *opt)
{
    int rc;
    if (platform_location_kind(opt->blueprint_url, NULL) == PLATFORM_LOC_BAD)
        return cap_error_set_field(CAP_EINVALID, "blueprint_url",
                                   "the blueprint must be an https URL without credentials or an "
                                   "absolute path");
    if (!empty(opt->blueprint_branch) && !platform_branch_ok(opt->blueprint_branch))
        return cap_error_set_field(CAP_EINVALID, "blueprint_branch",
                                   "\"%.100s\" is not a valid branch name", opt->blueprint_branch);
    if (empty(opt->url_pattern))
        return cap_error_set_field(CAP_EINVALID, "url_pattern",
                                   "a URL pattern for tenant repositories is needed");
    if ((rc = check_pattern(opt->url_pattern, "url_pattern", false)) != 0)
        return rc;
    if (!empty(opt->password) && empty(opt->username))
        return cap_error_set_field(CAP_EINVALID, "username", "a password needs a username");
    if (!empty(opt->username) && (!cap_str_is_clean_utf8(opt->username) ||
                                  strlen(opt->username) > 256 || strchr(opt->username, ':')))
        return cap_error_set_field(CAP_EINVALID, "username", "the git username is not valid");
    if (!empty(opt->password) &&
        (strlen(opt->password) > TOKEN_MAX || strpbrk(opt->password, "\r\n")))
        return cap_error_set_field(CAP_EINVALID, "password", "the git password is not valid");
    if (empty(opt->cache_dir) || !cap_str_is_clean_utf8(opt->cache_dir) ||
        strlen(opt->cache_dir) > PLATFORM_URL_MAX - 128)
        return cap_error_set_field(CAP_EINVALID, "cache_dir",
                                   "a folder for the git provider's scratch clones is needed");
    return 0;
}

int platform_options_check(const struct platform_options *opt)
{
    int rc = 0;
    if (!opt)
        return cap_error_set(CAP_EINVALID, "no platform repository options");
    if (opt->timeout_ms < 0 || opt->timeout_ms > TIMEOUT_MAX)
        return cap_error_set_field(CAP_EINVALID, "timeout_ms",
                                   "the timeout must be between 0 and one hour");
    if (!empty(opt->ca_file) &&
        (!cap_str_is_clean_utf8(opt->ca_file) || strlen(opt->ca_file) >= PLATFORM_URL_MAX))
        return cap_error_set_field(CAP_EINVALID, "ca_file", "the CA file name is not valid");
    switch (opt->provider) {
    case PLATFORM_NONE:
        break;
    case PLATFORM_GITHUB:
        rc = check_github(opt);
        break;
    case PLATFORM_GIT:
        rc = check_git(opt);
        break;
    default:
        rc = cap_error_set_field(CAP_EINVALID, "provider", "unknown platform repository provider");
    }
    return rc;
}

int platform_repo_ensure(const struct platform_options *opt, const char *tenant, char *url,
                         size_t url_size)
{
    char expanded[PLATFORM_URL_MAX] = "";
    int rc;

    if (!url || url_size == 0)
        return cap_error_set(CAP_EINVALID, "no room for the repository URL");
    url[0] = '\0';
    if ((rc = platform_options_check(opt)) != 0)
        return rc;
    if (!cap_is_dns_label(tenant, PLATFORM_TENANT_MAX))
        return cap_error_set_field(CAP_EINVALID, "tenant",
                                   "tenant name \"%.70s\" is not a DNS label",
                                   tenant ? tenant : "");
    switch (opt->provider) {
    case PLATFORM_GITHUB:
        if ((rc = platform_expand(
                 expanded, PLATFORM_GH_NAME_MAX + 1,
                 empty(opt->name_pattern) ? PLATFORM_DEFAULT_NAME : opt->name_pattern, tenant)))
            return rc;
        return platform_github_ensure(opt, tenant, expanded, url, url_size);
    case PLATFORM_GIT:
        if ((rc = platform_expand(expanded, sizeof(expanded), opt->url_pattern, tenant)))
            return rc;
        return platform_git_ensure(opt, tenant, expanded, url, url_size);
    default:
        return 0;
    }
}
