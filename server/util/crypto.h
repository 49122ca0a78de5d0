/* capstan: randomness, hashes and constant-time comparison (OpenSSL libcrypto). Thread-safe. */
#ifndef CAPSTAN_UTIL_CRYPTO_H
#define CAPSTAN_UTIL_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

/* Fills buf with n cryptographically strong random bytes. */
int cap_random_bytes(void *buf, size_t n);

/* Writes a random (version 4) UUID in its 36-character text form. */
int cap_uuid_v4(char out[37]);

/* True if s is a UUID in text form (any version, lower or upper case hex). */
bool cap_is_uuid(const char *s);

/* SHA-256 of data as 64 lower-case hex characters. */
void cap_sha256_hex(char out[65], const void *data, size_t len);

/* Base64url without padding; out must hold 4 * ((n + 2) / 3) + 1 bytes. */
void cap_base64url(char *out, const unsigned char *in, size_t n);

/* Decodes standard base64 (with or without padding, no whitespace) into a new buffer *out
 * (NUL-terminated, caller frees) of *out_len bytes. CAP_EMALFORMED when it is not base64. */
int cap_base64_decode(unsigned char **out, size_t *out_len, const char *in, size_t len);

/* Compares two strings in time that depends only on their lengths. */
bool cap_secure_streq(const char *a, const char *b);

#endif
