/* common.h - error codes and assertions shared by every ctr module.
 *
 * Convention: functions return 0 on success or a negative CTR_E* code.
 * ctr_strerror() turns a code into text; a caller that needs detail passes
 * a `char *err, size_t errlen` buffer that the callee fills with a sentence
 * naming what was wrong and where. */
#ifndef CTR_COMMON_H
#define CTR_COMMON_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ctr reads little-endian model and audit files in place: big-endian hosts are not supported"
#endif

/* The version of ctrd, ctrtool and ctrload, recorded in model provenance
 * and audit segment headers. */
#define CTR_VERSION "0.1.0"

enum {
    CTR_OK = 0,
    CTR_ENOMEM = -1,      /* allocation failed */
    CTR_EIO = -2,         /* read/write/mmap failed (errno in the message) */
    CTR_EFORMAT = -3,     /* a file is malformed: bad magic, bad JSON, bad layout */
    CTR_EVERSION = -4,    /* a format version this build does not read */
    CTR_ECHECKSUM = -5,   /* stored checksum does not match the data */
    CTR_EINVAL = -6,      /* a caller passed an invalid argument */
    CTR_EUNSUPPORTED = -7,/* valid but not supported here (e.g. CPU lacks an ISA) */
    CTR_ERANGE = -8,      /* a value is outside its allowed range */
    CTR_ENOTFOUND = -9,   /* a named thing does not exist */
    CTR_ETOOBIG = -10,    /* over a configured limit */
    CTR_EBUSY = -11,      /* queue full or draining: retry later */
};

/* Returns a static string for a CTR_E* code. */
const char *ctr_strerror(int code);

/* Formats into err (if non-NULL) and returns code: lets a constructor write
 * `return ctr_error(err, errlen, CTR_EFORMAT, "tensor \"%s\": ...", ...)`. */
int ctr_error(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Programmer errors abort with file and line; user and data errors must
 * return codes instead. */
#define CTR_ASSERT(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                        \
            abort();                                                         \
        }                                                                    \
    } while (0)

#define CTR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
