/* Unit tests of the token-bucket rate limits (server/http/ratelimit.c), on an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "http/ratelimit.h"

static struct http_ratelimit *make(double rate, double burst, size_t keys)
{
    struct http_ratelimit *rl = NULL;
    assert_int_equal(http_ratelimit_create(&rl, rate, burst, keys), 0);
    assert_non_null(rl);
    return rl;
}

static void test_burst_then_refill(void **state)
{
    struct http_ratelimit *rl = make(2, 4, 16);
    unsigned retry = 0;
    (void)state;
    for (int i = 0; i < 4; i++)
        assert_true(http_ratelimit_take_at(rl, "t1", 1000, &retry));
    assert_false(http_ratelimit_take_at(rl, "t1", 1000, &retry));
    assert_int_equal(retry, 1); /* one request comes back after 500 ms: whole seconds, rounded up */
    assert_false(http_ratelimit_take_at(rl, "t1", 1499, &retry));
    assert_true(http_ratelimit_take_at(rl, "t1", 1500, &retry));
    assert_false(http_ratelimit_take_at(rl, "t1", 1500, &retry));
    /* a long pause refills to the burst, not beyond */
    for (int i = 0; i < 4; i++)
        assert_true(http_ratelimit_take_at(rl, "t1", 100000, &retry));
    assert_false(http_ratelimit_take_at(rl, "t1", 100000, &retry));
    http_ratelimit_free(rl);
}

static void test_retry_after_in_whole_seconds(void **state)
{
    struct http_ratelimit *rl = make(0.25, 1, 16); /* one request every 4 s */
    unsigned retry = 0;
    (void)state;
    assert_true(http_ratelimit_take_at(rl, "slow", 0, &retry));
    assert_false(http_ratelimit_take_at(rl, "slow", 0, &retry));
    assert_int_equal(retry, 4);
    assert_false(http_ratelimit_take_at(rl, "slow", 2500, &retry));
    assert_int_equal(retry, 2);
    assert_true(http_ratelimit_take_at(rl, "slow", 4000, &retry));
    http_ratelimit_free(rl);
}

static void test_keys_are_independent(void **state)
{
    struct http_ratelimit *rl = make(1, 1, 16);
    (void)state;
    assert_true(http_ratelimit_take_at(rl, "a", 0, NULL));
    assert_false(http_ratelimit_take_at(rl, "a", 0, NULL));
    assert_true(http_ratelimit_take_at(rl, "b", 0, NULL));
    assert_int_equal(http_ratelimit_size(rl), 2);
    http_ratelimit_free(rl);
}

static void test_full_table_forgets_idle_keys_and_fails_closed(void **state)
{
    struct http_ratelimit *rl = make(1, 2, 4);
    char key[32];
    (void)state;
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_true(http_ratelimit_take_at(rl, key, 0, NULL));
    }
    /* full, and no bucket has refilled yet: a new key is refused, known keys still work */
    assert_false(http_ratelimit_take_at(rl, "new", 0, NULL));
    assert_true(http_ratelimit_take_at(rl, "k1", 0, NULL));
    assert_int_equal(http_ratelimit_size(rl), 4);
    /* once they refilled, they are forgotten to make room */
    assert_true(http_ratelimit_take_at(rl, "new", 5000, NULL));
    assert_int_equal(http_ratelimit_size(rl), 1);
    http_ratelimit_free(rl);
}

static void test_long_keys_and_bad_settings(void **state)
{
    struct http_ratelimit *rl = NULL;
    char a[200], b[200];
    (void)state;
    assert_int_not_equal(http_ratelimit_create(&rl, 0, 1, 10), 0);
    assert_null(rl);
    assert_int_not_equal(http_ratelimit_create(&rl, 1, 0.5, 10), 0);
    assert_int_not_equal(http_ratelimit_create(&rl, 1, 1, 0), 0);
    rl = make(1, 1, 16);
    memset(a, 'x', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(b));
    b[150] = 'y'; /* differs only beyond the key length that counts */
    assert_true(http_ratelimit_take_at(rl, a, 0, NULL));
    assert_false(http_ratelimit_take_at(rl, b, 0, NULL));
    http_ratelimit_free(rl);
    http_ratelimit_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_retry_after_in_whole_seconds),
        cmocka_unit_test(test_keys_are_independent),
        cmocka_unit_test(test_full_table_forgets_idle_keys_and_fails_closed),
        cmocka_unit_test(test_long_keys_and_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
