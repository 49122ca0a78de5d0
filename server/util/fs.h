/* capstan: small file-system helpers. Thread-safe. */
#ifndef CAPSTAN_UTIL_FS_H
#define CAPSTAN_UTIL_FS_H

#include <sys/types.h>

/* Creates path and every missing parent (like mkdir -p); the last folder gets mode, the
 * parents 0755. Existing folders are fine. CAP_EINVALID (too long) or CAP_ERROR with a
 * message naming the folder. */
int cap_mkdirs(const char *path, mode_t mode);

#endif
