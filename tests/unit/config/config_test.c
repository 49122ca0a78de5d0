/* Unit tests of configuration loading (server/config/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "log/log.h"
#include "util/error.h"

static void clear_env(void)
{
    for (const struct cfg_setting *s = cap_settings; s->env; s++) {
        char name[96];
        unsetenv(s->env);
        snprintf(name, sizeof(name), "%s_FILE", s->env);
        unsetenv(name);
    }
}

static int load(struct cap_config *cfg, int argc, char **argv)
{
    int rest[16], nrest;
    memset(cfg, 0, sizeof(*cfg));
    return config_load(cfg, argc, argv, rest, &nrest);
}

static void test_defaults(void **state)
{
    struct cap_config cfg;
    char *argv[] = {"serve"};
    (void)state;
    clear_env();
    assert_int_equal(load(&cfg, 1, argv), 0);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.fleet_branch, "main");
    assert_int_equal(cfg.max_body, 1048576);
    assert_int_equal(cfg.workers, 4);
    assert_true(cfg.auto_migrate);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_null(cfg.database_url);
    assert_null(cfg.kubeconfig);
    config_free(&cfg);
}

static void test_env_and_flags(void **state)
{
    struct cap_config cfg;
    char *argv[] = {"serve", "--workers", "7", "--listen=0.0.0.0:9000", "--auto-migrate"};
    (void)state;
    clear_env();
    setenv("CAPSTAN_WORKERS", "3", 1);
    setenv("CAPSTAN_MAX_BODY", "2MiB", 1);
    setenv("CAPSTAN_AUTO_MIGRATE", "false", 1);
    setenv("CAPSTAN_LOG_LEVEL", "debug", 1);
    assert_int_equal(load(&cfg, 5, argv), 0);
    assert_int_equal(cfg.workers, 7);
    assert_string_equal(cfg.listen, "0.0.0.0:9000");
    assert_int_equal(cfg.max_body, 2 * 1048576);
    assert_true(cfg.auto_migrate);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    config_free(&cfg);
    clear_env();
}

static void test_errors_name_variable(void **state)
{
    static const char *cases[][2] = {
        {"CAPSTAN_WORKERS", "-1"},          {"CAPSTAN_LISTEN", "nohost"},
        {"CAPSTAN_LISTEN", "host:99999"},   {"CAPSTAN_MAX_BODY", "12"},
        {"CAPSTAN_LOG_LEVEL", "loud"},      {"CAPSTAN_FLEET_BRANCH", "a b"},
        {"CAPSTAN_SHUTDOWN_TIMEOUT", "5y"}, {"CAPSTAN_AUTO_MIGRATE", "maybe"},
    };
    char *argv[] = {"serve"};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cap_config cfg;
        clear_env();
        setenv(cases[i][0], cases[i][1], 1);
        assert_int_equal(load(&cfg, 1, argv), CAP_EINVALID);
        assert_non_null(strstr(cap_error_message(), cases[i][0]));
        config_free(&cfg);
    }
    clear_env();
}

static void test_secret_from_file(void **state)
{
    struct cap_config cfg;
    char path[] = "/tmp/capstan-config-test-XXXXXX";
    char *argv[] = {"serve"};
    int fd = mkstemp(path);
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cret-token-value-123\n", 23), 23);
    close(fd);
    clear_env();
    setenv("CAPSTAN_ADMIN_TOKEN_FILE", path, 1);
    assert_int_equal(load(&cfg, 1, argv), 0);
    assert_string_equal(cfg.admin_token, "s3cret-token-value-123");
    config_free(&cfg);
    /* both set is ambiguous */
    setenv("CAPSTAN_ADMIN_TOKEN", "another-token-value-456", 1);
    assert_int_equal(load(&cfg, 1, argv), CAP_EINVALID);
    config_free(&cfg);
    unlink(path);
    clear_env();
    /* the secret is redacted from log lines */
    char line[] = "token s3cret-token-value-123 seen";
    log_redact(line);
    assert_null(strstr(line, "s3cret"));
    log_clear_secrets();
}

static void test_unknown_flag(void **state)
{
    struct cap_config cfg;
    char *argv[] = {"serve", "--nope=1"};
    (void)state;
    clear_env();
    assert_int_equal(load(&cfg, 2, argv), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "--nope"));
    config_free(&cfg);
}

static void test_flag_needs_value(void **state)
{
    struct cap_config cfg;
    char *argv[] = {"serve", "--workers"};
    (void)state;
    clear_env();
    assert_int_equal(load(&cfg, 2, argv), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "--workers"));
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_env_and_flags),
        cmocka_unit_test(test_errors_name_variable),
        cmocka_unit_test(test_secret_from_file),
        cmocka_unit_test(test_unknown_flag),
        cmocka_unit_test(test_flag_needs_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
