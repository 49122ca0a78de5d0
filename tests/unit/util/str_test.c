/* Unit tests of the string, number, duration and name helpers (server/util/str.c, buf.c,
 * json.c, crypto.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

static void test_parse_long(void **state)
{
    long long v;
    (void)state;
    assert_int_equal(cap_parse_long(&v, "42", 0, 100), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cap_parse_long(&v, "-3", -5, 5), 0);
    assert_int_equal(v, -3);
    assert_int_equal(cap_parse_long(&v, "101", 0, 100), CAP_EINVALID);
    assert_int_equal(cap_parse_long(&v, "4x", 0, 100), CAP_EINVALID);
    assert_int_equal(cap_parse_long(&v, "", 0, 100), CAP_EINVALID);
    assert_int_equal(cap_parse_long(&v, " 4", 0, 100), CAP_EINVALID);
    assert_int_equal(cap_parse_long(&v, "99999999999999999999999", 0, 100), CAP_EINVALID);
}

static void test_parse_size(void **state)
{
    size_t v;
    (void)state;
    assert_int_equal(cap_parse_size(&v, "1MiB"), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(cap_parse_size(&v, "512KiB"), 0);
    assert_int_equal(v, 524288);
    assert_int_equal(cap_parse_size(&v, "1024"), 0);
    assert_int_equal(v, 1024);
    assert_int_equal(cap_parse_size(&v, "2g"), 0);
    assert_int_equal(v, 2ULL << 30);
    assert_int_equal(cap_parse_size(&v, "12 parsecs"), CAP_EINVALID);
    assert_int_equal(cap_parse_size(&v, "-1"), CAP_EINVALID);
    assert_int_equal(cap_parse_size(&v, "99999999999999999999GiB"), CAP_EINVALID);
}

static void test_parse_duration(void **state)
{
    long long v;
    (void)state;
    assert_int_equal(cap_parse_duration_ms(&v, "30s"), 0);
    assert_int_equal(v, 30000);
    assert_int_equal(cap_parse_duration_ms(&v, "72h"), 0);
    assert_int_equal(v, 72LL * 3600 * 1000);
    assert_int_equal(cap_parse_duration_ms(&v, "1h30m"), 0);
    assert_int_equal(v, 5400000);
    assert_int_equal(cap_parse_duration_ms(&v, "250ms"), 0);
    assert_int_equal(v, 250);
    assert_int_equal(cap_parse_duration_ms(&v, "5"), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(cap_parse_duration_ms(&v, "5d"), CAP_EINVALID);
    assert_int_equal(cap_parse_duration_ms(&v, "h"), CAP_EINVALID);
    assert_int_equal(cap_parse_duration_ms(&v, ""), CAP_EINVALID);
    assert_int_equal(cap_parse_duration_ms(&v, "9999999999999999999h"), CAP_EINVALID);
}

static void test_dns_label(void **state)
{
    (void)state;
    assert_true(cap_is_dns_label("team-a", 30));
    assert_true(cap_is_dns_label("a", 30));
    assert_true(cap_is_dns_label("0a9", 30));
    assert_false(cap_is_dns_label("", 30));
    assert_false(cap_is_dns_label("-a", 30));
    assert_false(cap_is_dns_label("a-", 30));
    assert_false(cap_is_dns_label("A", 30));
    assert_false(cap_is_dns_label("a_b", 30));
    assert_false(cap_is_dns_label("a.b", 30));
    assert_false(cap_is_dns_label("abcdefghijk", 10));
    assert_true(cap_is_dns_label("abcdefghij", 10));
}

static void test_clean_utf8(void **state)
{
    (void)state;
    assert_true(cap_str_is_clean_utf8("plain"));
    assert_true(cap_str_is_clean_utf8("\xc3\xa9t\xc3\xa9"));
    assert_true(cap_str_is_clean_utf8("\xf0\x9f\x9a\x80"));
    assert_false(cap_str_is_clean_utf8("tab\there"));
    assert_false(cap_str_is_clean_utf8("nl\n"));
    assert_false(cap_str_is_clean_utf8("\xc3"));
    assert_false(cap_str_is_clean_utf8("\xc0\xaf"));     /* overlong */
    assert_false(cap_str_is_clean_utf8("\xed\xa0\x80")); /* surrogate */
    assert_false(cap_str_is_clean_utf8("\xc2\x85"));     /* C1 control (NEL) */
}

static void test_buf_limit(void **state)
{
    struct cap_buf b = CAP_BUF_INIT(8);
    (void)state;
    assert_int_equal(cap_buf_puts(&b, "1234"), 0);
    assert_int_equal(cap_buf_printf(&b, "%d", 5678), 0);
    assert_string_equal(cap_buf_str(&b), "12345678");
    assert_int_equal(cap_buf_putc(&b, '9'), CAP_ETOOBIG);
    assert_string_equal(cap_buf_str(&b), "12345678");
    char *s = cap_buf_detach(&b);
    assert_string_equal(s, "12345678");
    free(s);
    assert_string_equal(cap_buf_str(&b), "");
    cap_buf_free(&b);
}

static void test_json_str_lossy(void **state)
{
    (void)state;
    json_t *v = cap_json_str("ok\xff!");
    assert_non_null(v);
    assert_string_equal(json_string_value(v), "ok\xef\xbf\xbd!");
    json_decref(v);
    v = cap_json_str(NULL);
    assert_true(json_is_null(v));
    json_decref(v);
}

static void test_crypto(void **state)
{
    char u[37], h[65], b[16];
    unsigned char in[3] = {0xfb, 0xff, 0x00};
    (void)state;
    assert_int_equal(cap_uuid_v4(u), 0);
    assert_true(cap_is_uuid(u));
    assert_int_equal(u[14], '4');
    assert_false(cap_is_uuid("not-a-uuid"));
    cap_sha256_hex(h, "abc", 3);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cap_base64url(b, in, 3);
    assert_string_equal(b, "-_8A");
    cap_base64url(b, in, 2);
    assert_string_equal(b, "-_8");
    assert_true(cap_secure_streq("same", "same"));
    assert_false(cap_secure_streq("same", "sane"));
    assert_false(cap_secure_streq("same", "samey"));
}

static void test_error(void **state)
{
    (void)state;
    assert_int_equal(cap_error_set_field(CAP_EINVALID, "owners[0]", "bad %s", "email"),
                     CAP_EINVALID);
    assert_string_equal(cap_error_message(), "bad email");
    assert_string_equal(cap_error_field(), "owners[0]");
    cap_error_wrap("tenant \"%s\"", "x");
    assert_string_equal(cap_error_message(), "tenant \"x\": bad email");
    assert_int_equal(cap_error_code(), CAP_EINVALID);
    cap_error_clear();
    assert_null(cap_error_field());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_long),     cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration), cmocka_unit_test(test_dns_label),
        cmocka_unit_test(test_clean_utf8),     cmocka_unit_test(test_buf_limit),
        cmocka_unit_test(test_json_str_lossy), cmocka_unit_test(test_crypto),
        cmocka_unit_test(test_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
