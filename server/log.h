/* log.h - JSON-lines logs on stderr, one object per line:
 *
 *     {"ts":"2025-01-02T03:04:05.678Z","level":"info","msg":"listening","port":8080}
 *
 * Fields are typed key/value triples built with the CTR_LOG_* macros and
 * ended by CTR_LOG_END; strings are JSON-escaped here, so callers pass raw
 * text. Each line is written with one write(2), so lines from different
 * threads never interleave. Safe to call from any thread. */
#ifndef CTR_SERVER_LOG_H
#define CTR_SERVER_LOG_H

#include <stdint.h>

typedef enum {
    CTR_LOG_DEBUG = 0,
    CTR_LOG_INFO = 1,
    CTR_LOG_WARN = 2,
    CTR_LOG_ERROR = 3,
} ctr_log_level_t;

/* Field type tags (the second element of each triple). */
enum { CTR__LF_END = 0, CTR__LF_STR = 's', CTR__LF_INT = 'i',
       CTR__LF_UINT = 'u', CTR__LF_DBL = 'd', CTR__LF_BOOL = 'b',
       CTR__LF_RAW = 'r' };

#define CTR_LOG_S(k, v) (k), CTR__LF_STR, (const char *)(v)
#define CTR_LOG_I(k, v) (k), CTR__LF_INT, (long long)(v)
#define CTR_LOG_U(k, v) (k), CTR__LF_UINT, (unsigned long long)(v)
#define CTR_LOG_D(k, v) (k), CTR__LF_DBL, (double)(v)
#define CTR_LOG_B(k, v) (k), CTR__LF_BOOL, (int)(!!(v))
#define CTR_LOG_RAW(k, v) (k), CTR__LF_RAW, (const char *)(v) /* already JSON */
#define CTR_LOG_END ((const char *)0)

void ctr__log_set_level(ctr_log_level_t level);
int ctr__log_enabled(ctr_log_level_t level);

/* ctr__log(CTR_LOG_INFO, "listening", CTR_LOG_I("port", 8080), CTR_LOG_END) */
void ctr__log(ctr_log_level_t level, const char *msg, ...);

#endif
