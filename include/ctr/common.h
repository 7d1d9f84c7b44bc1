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

/* Error codes. They sit far below -4095, so they never collide with a
 * -errno that a system call wrapper returns (the audit writer's io_uring
 * and pwrite paths work in -errno internally); ctr_errno_code() is the one
 * conversion, used where such a path hands its result to the rest of ctr.
 * server/respond.c's ctr__http_status() is the one map to HTTP status. */
#define CTR__EBASE (-10000)
enum {
    CTR_OK = 0,
    CTR_ENOMEM = CTR__EBASE - 1,       /* allocation failed */
    CTR_EIO = CTR__EBASE - 2,          /* read/write/mmap failed (errno in the message) */
    CTR_EFORMAT = CTR__EBASE - 3,      /* malformed input: bad magic, bad JSON, bad layout */
    CTR_EVERSION = CTR__EBASE - 4,     /* a format version this build does not read */
    CTR_ECHECKSUM = CTR__EBASE - 5,    /* stored checksum does not match the data */
    CTR_EINVAL = CTR__EBASE - 6,       /* an invalid argument or value */
    CTR_EUNSUPPORTED = CTR__EBASE - 7, /* valid but not supported here (e.g. CPU lacks an ISA) */
    CTR_ERANGE = CTR__EBASE - 8,       /* a value is outside its allowed range */
    CTR_ENOTFOUND = CTR__EBASE - 9,    /* a named thing does not exist */
    CTR_ETOOBIG = CTR__EBASE - 10,     /* over a configured limit */
    CTR_EBUSY = CTR__EBASE - 11,       /* queue full or draining: retry later */
    CTR_EINTERNAL = CTR__EBASE - 17,   /* a bug: two parts of ctr disagree (answered 500) */
    /* A client's request was refused before it was read (server/ only): */
    CTR_EAUTH = CTR__EBASE - 12,       /* credentials missing */
    CTR_EDENIED = CTR__EBASE - 13,     /* credentials wrong */
    CTR_EMETHOD = CTR__EBASE - 14,     /* method not allowed on this path */
    CTR_ELENGTH = CTR__EBASE - 15,     /* body length not given */
    CTR_EMEDIATYPE = CTR__EBASE - 16,  /* content type not accepted */
};

/* The CTR_E* code for a system call's errno (ENOMEM -> CTR_ENOMEM,
 * EAGAIN/EBUSY -> CTR_EBUSY, EINVAL -> CTR_EINVAL, the rest -> CTR_EIO).
 * Takes errno itself, positive or negated. */
int ctr_errno_code(int errnum);

/* Returns a static string for a CTR_E* code (or a -errno, via strerror). */
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
