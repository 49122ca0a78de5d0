/* Unit tests of the tenant platform repository module's pure parts (server/cloud): pattern
 * expansion, names and locations, option checks, and the validation of GitHub answers (repository
 * objects, 422 bodies, rate-limit headers). No network is used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/internal.h"
#include "util/error.h"
#include "util/str.h"

static void test_expand(void **state)
{
    char out[64], tiny[8];
    (void)state;
    assert_int_equal(platform_expand(out, sizeof(out), "tenant-{tenant}", "team-a"), 0);
    assert_string_equal(out, "tenant-team-a");
    assert_int_equal(platform_expand(out, sizeof(out), "/srv/{tenant}/{tenant}.git", "x"), 0);
    assert_string_equal(out, "/srv/x/x.git");
    assert_int_equal(platform_expand(out, sizeof(out), "{tenant}", "a"), 0);
    assert_string_equal(out, "a");

    assert_int_equal(platform_expand(out, sizeof(out), "fixed-name", "a"), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "pattern");
    assert_int_equal(platform_expand(out, sizeof(out), "{tenant}-{env}", "a"), CAP_EINVALID);
    assert_int_equal(platform_expand(out, sizeof(out), "{tenant", "a"), CAP_EINVALID);
    assert_int_equal(platform_expand(out, sizeof(out), "x}{tenant}", "a"), CAP_EINVALID);
    assert_int_equal(platform_expand(out, sizeof(out), "{TENANT}", "a"), CAP_EINVALID);
    /* exactly fitting, and one byte over */
    assert_int_equal(platform_expand(tiny, sizeof(tiny), "ab{tenant}", "cdefg"), 0);
    assert_string_equal(tiny, "abcdefg");
    assert_int_equal(platform_expand(tiny, sizeof(tiny), "ab{tenant}", "cdefgh"), CAP_ETOOBIG);
}

static void test_github_names(void **state)
{
    char owner[PLATFORM_GH_OWNER_MAX + 1], name[PLATFORM_GH_NAME_MAX + 1];
    char longname[PLATFORM_GH_NAME_MAX + 2];
    (void)state;
    assert_true(platform_github_owner_ok("acme"));
    assert_true(platform_github_owner_ok("Acme-Corp-2"));
    assert_true(platform_github_owner_ok("a23456789012345678901234567890123456789")); /* 39 */
    assert_false(platform_github_owner_ok("a234567890123456789012345678901234567890"));
    assert_false(platform_github_owner_ok("-acme"));
    assert_false(platform_github_owner_ok("acme-"));
    assert_false(platform_github_owner_ok("ac--me"));
    assert_false(platform_github_owner_ok("ac_me"));
    assert_false(platform_github_owner_ok(""));
    assert_false(platform_github_owner_ok(NULL));

    assert_true(platform_github_name_ok("tenant-a"));
    assert_true(platform_github_name_ok("platform.config_v2"));
    assert_true(platform_github_name_ok(".github"));
    assert_false(platform_github_name_ok("."));
    assert_false(platform_github_name_ok(".."));
    assert_false(platform_github_name_ok("a b"));
    assert_false(platform_github_name_ok("a/b"));
    assert_false(platform_github_name_ok("caf\xc3\xa9"));
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(platform_github_name_ok(longname));
    longname[PLATFORM_GH_NAME_MAX] = '\0';
    assert_true(platform_github_name_ok(longname));

    assert_int_equal(platform_github_split(owner, name, "platform/blueprint"), 0);
    assert_string_equal(owner, "platform");
    assert_string_equal(name, "blueprint");
    assert_int_equal(platform_github_split(owner, name, "platform"), CAP_EINVALID);
    assert_string_equal(owner, "");
    assert_int_equal(platform_github_split(owner, name, "a/b/c"), CAP_EINVALID);
    assert_int_equal(platform_github_split(owner, name, "/b"), CAP_EINVALID);
    assert_int_equal(platform_github_split(owner, name, "a/"), CAP_EINVALID);
    assert_int_equal(platform_github_split(owner, name, NULL), CAP_EINVALID);
}

static void test_locations(void **state)
{
    const char *path = NULL;
    (void)state;
    assert_int_equal(platform_location_kind("https://git.example.com/p/tenant-a.git", NULL),
                     PLATFORM_LOC_HTTPS);
    assert_int_equal(platform_location_kind("https://127.0.0.1:8443/git/x.git", NULL),
                     PLATFORM_LOC_HTTPS);
    assert_int_equal(platform_location_kind("HTTPS://host", NULL), PLATFORM_LOC_HTTPS);
    assert_int_equal(platform_location_kind("/srv/git/tenant-a.git", &path), PLATFORM_LOC_LOCAL);
    assert_string_equal(path, "/srv/git/tenant-a.git");
    assert_int_equal(platform_location_kind("file:///srv/git/a.git", &path), PLATFORM_LOC_LOCAL);
    assert_string_equal(path, "/srv/git/a.git");

    assert_int_equal(platform_location_kind("http://git.example.com/a.git", NULL),
                     PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("https://user:pw@git.example.com/a.git", NULL),
                     PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("https://user@git.example.com/a.git", NULL),
                     PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("https://git.example.com/a.git?x=1", NULL),
                     PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("https://git.example.com/a b.git", NULL),
                     PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("https:///a.git", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("https://", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("ssh://git@host/a.git", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("git@host:a.git", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("relative/a.git", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("/srv/../etc/a.git", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("/srv/./a.git", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("/", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("/srv/a\n.git", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("file://host/srv/a.git", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind("", NULL), PLATFORM_LOC_BAD);
    assert_int_equal(platform_location_kind(NULL, NULL), PLATFORM_LOC_BAD);
}

static void test_branches(void **state)
{
    (void)state;
    assert_true(platform_branch_ok("main"));
    assert_true(platform_branch_ok("release/v1.2"));
    assert_false(platform_branch_ok(""));
    assert_false(platform_branch_ok("-main"));
    assert_false(platform_branch_ok("a..b"));
    assert_false(platform_branch_ok("a b"));
    assert_false(platform_branch_ok("a~1"));
    assert_false(platform_branch_ok("a:b"));
    assert_false(platform_branch_ok("main.lock"));
    assert_false(platform_branch_ok("a//b"));
    assert_false(platform_branch_ok("a/.b"));
    assert_false(platform_branch_ok("x@{1}"));
    assert_false(platform_branch_ok("main/"));
    assert_false(platform_branch_ok("@"));
}

static void test_clean_message(void **state)
{
    char out[32], small[8];
    (void)state;
    platform_clean_message(out, sizeof(out), "bad\ncredentials\t!", NULL);
    assert_string_equal(out, "bad credentials !");
    platform_clean_message(out, sizeof(out), "token ghp_secret123 leaked", "ghp_secret123");
    assert_string_equal(out, "token [redacted] leaked");
    platform_clean_message(out, sizeof(out), NULL, NULL);
    assert_string_equal(out, "");
    /* cut on a character boundary: "ab" + "é" (2 bytes) + "cd" in 4 bytes + NUL */
    platform_clean_message(small, 5, "ab\xc3\xa9\xc3\xa9", NULL);
    assert_string_equal(small, "ab\xc3\xa9");
    platform_clean_message(small, 4, "ab\xc3\xa9", NULL);
    assert_string_equal(small, "ab");
    /* a secret that does not fit is not half-written */
    platform_clean_message(small, sizeof(small), "x supersecret", "supersecret");
    assert_string_equal(small, "x ");
}

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    if (!v)
        fail_msg("bad test JSON: %s", err.text);
    return v;
}

static void test_repo_parse(void **state)
{
    struct platform_gh_repo r;
    json_t *v;
    (void)state;

    v = parse("{\"full_name\":\"Acme/tenant-a\",\"private\":true,\"fork\":false,"
              "\"clone_url\":\"https://github.com/Acme/tenant-a.git\","
              "\"template_repository\":{\"full_name\":\"platform/blueprint\"},"
              "\"parent\":null}");
    assert_int_equal(platform_github_repo_parse(&r, v, "acme/TENANT-A"), 0);
    assert_string_equal(r.full_name, "Acme/tenant-a");
    assert_string_equal(r.clone_url, "https://github.com/Acme/tenant-a.git");
    assert_string_equal(r.template_full, "platform/blueprint");
    assert_string_equal(r.parent_full, "");
    assert_true(r.private_repo);
    assert_false(r.fork);
    assert_true(platform_github_from_blueprint(&r, "Platform/Blueprint", NULL));
    assert_false(platform_github_from_blueprint(&r, "platform/other", NULL));
    assert_false(platform_github_from_blueprint(&r, NULL, "platform/blueprint"));
    /* another repository than the one asked for */
    assert_int_equal(platform_github_repo_parse(&r, v, "acme/tenant-b"), CAP_ECONFLICT);
    json_decref(v);

    v = parse("{\"full_name\":\"acme/f\",\"private\":false,\"fork\":true,"
              "\"clone_url\":\"https://github.com/acme/f.git\","
              "\"parent\":{\"full_name\":\"mid/bp\"},\"source\":{\"full_name\":\"platform/bp\"}}");
    assert_int_equal(platform_github_repo_parse(&r, v, NULL), 0);
    assert_true(r.fork);
    assert_true(platform_github_from_blueprint(&r, NULL, "mid/bp"));
    assert_true(platform_github_from_blueprint(&r, NULL, "platform/bp"));
    assert_false(platform_github_from_blueprint(&r, NULL, "x/y"));
    assert_false(platform_github_from_blueprint(&r, "platform/bp", NULL));
    json_decref(v);

    /* shapes that are refused */
    {
        static const char *bad[] = {
            "[]",
            "{\"private\":true,\"clone_url\":\"https://h/a/b.git\"}",
            "{\"full_name\":\"a\",\"private\":true,\"clone_url\":\"https://h/a/b.git\"}",
            "{\"full_name\":\"a/b\",\"private\":true}",
            "{\"full_name\":\"a/b\",\"private\":true,\"clone_url\":\"http://h/a/b.git\"}",
            "{\"full_name\":\"a/b\",\"private\":true,\"clone_url\":\"https://t@h/a/b.git\"}",
            "{\"full_name\":\"a/b\",\"private\":true,\"clone_url\":\"git@h:a/b.git\"}",
            "{\"full_name\":\"a/b\",\"private\":true,\"clone_url\":7}",
            "{\"full_name\":\"a/b\",\"clone_url\":\"https://h/a/b.git\"}",
            "{\"full_name\":\"a/b\",\"private\":\"yes\",\"clone_url\":\"https://h/a/b.git\"}",
            "{\"full_name\":\"a/b\",\"private\":true,\"fork\":1,\"clone_url\":\"https://h/a/"
            "b.git\"}",
            "{\"full_name\":\"a/b\",\"private\":true,\"clone_url\":\"https://h/a/b.git\","
            "\"template_repository\":\"platform/bp\"}",
            "{\"full_name\":\"a/b\",\"private\":true,\"clone_url\":\"https://h/a/b.git\","
            "\"parent\":{\"name\":\"bp\"}}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            v = parse(bad[i]);
            if (platform_github_repo_parse(&r, v, NULL) != CAP_EUNAVAILABLE)
                fail_msg("accepted %s", bad[i]);
            assert_string_equal(r.clone_url, "");
            json_decref(v);
        }
    }
    assert_int_equal(platform_github_repo_parse(&r, NULL, NULL), CAP_EUNAVAILABLE);
}

static void test_name_taken(void **state)
{
    json_t *v;
    (void)state;
    v = parse("{\"message\":\"Repository creation failed.\",\"errors\":[{\"resource\":"
              "\"Repository\",\"code\":\"custom\",\"field\":\"name\",\"message\":\"name already "
              "exists on this account\"}],\"documentation_url\":\"https://docs.github.com/rest\"}");
    assert_true(platform_github_name_taken(v));
    json_decref(v);
    v = parse("{\"message\":\"Repository creation failed.\",\"errors\":[{\"resource\":"
              "\"Repository\",\"code\":\"custom\",\"field\":\"owner\",\"message\":\"owner does "
              "not exist\"}]}");
    assert_false(platform_github_name_taken(v));
    json_decref(v);
    v = parse("{\"message\":\"Repository x is not a template repository.\"}");
    assert_false(platform_github_name_taken(v));
    json_decref(v);
    v = parse("{\"errors\":[\"name already exists\", 3]}");
    assert_false(platform_github_name_taken(v));
    json_decref(v);
    assert_false(platform_github_name_taken(NULL));
}

static void test_rate_limits(void **state)
{
    struct platform_gh_rate r;
    const int64_t now = 1700000000000LL; /* ms */
    (void)state;

    /* primary limit: wait until the reset (plus a margin for clock skew) */
    platform_github_rate(&r, 403, "0", "1700000030", NULL, "API rate limit exceeded for user", now);
    assert_true(r.limited);
    assert_false(r.secondary);
    assert_int_equal(r.wait_ms, 31000);
    assert_int_equal(r.resume_ms, now + 31000);
    platform_github_rate(&r, 429, "0", "1700000005", NULL, NULL, now);
    assert_true(r.limited);
    assert_int_equal(r.wait_ms, 6000);
    /* a reset already past: try again at once */
    platform_github_rate(&r, 403, "0", "1699999000", NULL, NULL, now);
    assert_true(r.limited);
    assert_int_equal(r.wait_ms, 0);
    /* retry-after wins */
    platform_github_rate(&r, 403, "0", "1700000300", "7", NULL, now);
    assert_int_equal(r.wait_ms, 7000);
    platform_github_rate(&r, 429, "4000", "1700000300", "2",
                         "You have exceeded a secondary rate limit", now);
    assert_true(r.limited);
    assert_true(r.secondary);
    assert_int_equal(r.wait_ms, 2000);
    /* secondary limit without headers: at least a minute */
    platform_github_rate(&r, 403, "4000", "1700000300", NULL,
                         "You have exceeded a secondary rate limit", now);
    assert_true(r.limited);
    assert_int_equal(r.wait_ms, 60000);
    platform_github_rate(&r, 429, NULL, NULL, NULL, NULL, now);
    assert_true(r.limited);
    assert_int_equal(r.wait_ms, 60000);
    /* a 403 that is about permissions, and other statuses */
    platform_github_rate(&r, 403, "4999", "1700000300", NULL,
                         "Resource not accessible by integration", now);
    assert_false(r.limited);
    platform_github_rate(&r, 200, "0", "1700000300", "5", NULL, now);
    assert_false(r.limited);
    platform_github_rate(&r, 401, "0", "1700000300", NULL, "Bad credentials", now);
    assert_false(r.limited);
    /* garbage headers are ignored, never trusted */
    platform_github_rate(&r, 403, "zero", "soon", "-5", NULL, now);
    assert_false(r.limited);
    platform_github_rate(&r, 429, "0", "x", "9999999999", NULL, now);
    assert_true(r.limited);
    assert_int_equal(r.wait_ms, 60000);
}

static void test_options(void **state)
{
    struct platform_options o;
    enum platform_provider p;
    char url[64];
    (void)state;

    assert_int_equal(platform_provider_parse(&p, "github"), 0);
    assert_int_equal(p, PLATFORM_GITHUB);
    assert_int_equal(platform_provider_parse(&p, "git"), 0);
    assert_int_equal(p, PLATFORM_GIT);
    assert_int_equal(platform_provider_parse(&p, "none"), 0);
    assert_int_equal(p, PLATFORM_NONE);
    assert_int_equal(platform_provider_parse(&p, "gitlab"), CAP_EINVALID);

    memset(&o, 0, sizeof(o));
    o.provider = PLATFORM_GITHUB;
    o.token = "ghp_abcdef";
    o.owner = "acme";
    o.template_repo = "platform/blueprint";
    assert_int_equal(platform_options_check(&o), 0);
    o.token = "ghp abc";
    assert_int_equal(platform_options_check(&o), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "token");
    o.token = "ghp_abcdef";
    o.fork_repo = "platform/src";
    assert_int_equal(platform_options_check(&o), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "template_repo");
    o.template_repo = NULL;
    assert_int_equal(platform_options_check(&o), 0);
    o.owner = "acme_corp";
    assert_int_equal(platform_options_check(&o), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "owner");
    o.owner = "acme";
    o.name_pattern = "{tenant}-platform-configuration-repository-with-a-very-long-name-that-grows";
    assert_int_equal(platform_options_check(&o), CAP_EINVALID); /* 63 + 66 > 100 */
    assert_string_equal(cap_error_field(), "name_pattern");
    o.name_pattern = NULL;
    o.api_url = "https://ghe.example.com/api/v3/";
    assert_int_equal(platform_options_check(&o), 0);
    o.timeout_ms = -1;
    assert_int_equal(platform_options_check(&o), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "timeout_ms");

    memset(&o, 0, sizeof(o));
    o.provider = PLATFORM_GIT;
    o.blueprint_url = "/srv/git/blueprint.git";
    o.url_pattern = "https://git.example.com/platform/tenant-{tenant}.git";
    o.cache_dir = "/var/lib/capstan/platform";
    assert_int_equal(platform_options_check(&o), 0);
    o.password = "pw";
    assert_int_equal(platform_options_check(&o), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "username");
    o.username = "capstan";
    assert_int_equal(platform_options_check(&o), 0);
    o.url_pattern = "https://git.example.com/platform/shared.git";
    assert_int_equal(platform_options_check(&o), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "url_pattern");
    o.url_pattern = "/srv/git/tenant-{tenant}.git";
    o.blueprint_branch = "bad branch";
    assert_int_equal(platform_options_check(&o), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "blueprint_branch");

    /* no provider: nothing to do, an empty URL */
    memset(&o, 0, sizeof(o));
    cap_strlcpy(url, "stale", sizeof(url));
    assert_int_equal(platform_repo_ensure(&o, "team-a", url, sizeof(url)), 0);
    assert_string_equal(url, "");
    /* a tenant name that is not a DNS label never reaches a provider */
    o.provider = PLATFORM_GIT;
    o.blueprint_url = "/srv/git/blueprint.git";
    o.url_pattern = "/srv/git/tenant-{tenant}.git";
    o.cache_dir = "/nonexistent/cache";
    assert_int_equal(platform_repo_ensure(&o, "../etc", url, sizeof(url)), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "tenant");
    assert_int_equal(platform_repo_ensure(&o, "Team", url, sizeof(url)), CAP_EINVALID);
    assert_int_equal(platform_repo_ensure(&o, "team-a", url, 0), CAP_EINVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),        cmocka_unit_test(test_github_names),
        cmocka_unit_test(test_locations),     cmocka_unit_test(test_branches),
        cmocka_unit_test(test_clean_message), cmocka_unit_test(test_repo_parse),
        cmocka_unit_test(test_name_taken),    cmocka_unit_test(test_rate_limits),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
