/* log.c - JSON-lines logs on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static atomic_int log_level = CTR_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static const char *level_name(ctr_log_level_t level)
{
    return (unsigned)level < 4 ? level_names[level] : "info";
}

void ctr__log_set_level(ctr_log_level_t level)
{
    atomic_store(&log_level, (int)level);
}

int ctr__log_enabled(ctr_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void ctr__log(ctr_log_level_t level, const char *msg, ...)
{
    if (!ctr__log_enabled(level))
        return;
    char mem[4096];
    ctr__buf_t b;
    static const char trunc[] = ",\"truncated\":true";
    /* Room kept for the truncation mark and "}\n". */
    ctr__buf_init_fixed(&b, mem, sizeof mem - sizeof trunc - 2);
    size_t good = 0;    /* end of the last complete field */

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    ctr__buf_printf(&b, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"level\":\"%s\",\"msg\":",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, level_name(level));
    ctr__buf_json_str(&b, msg, strlen(msg));
    if (!b.failed)
        good = b.len;

    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        int type = va_arg(ap, int);
        ctr__buf_putc(&b, ',');
        ctr__buf_json_str(&b, key, strlen(key));
        ctr__buf_putc(&b, ':');
        switch (type) {
        case CTR__LF_STR: {
            const char *v = va_arg(ap, const char *);
            if (v)
                ctr__buf_json_str(&b, v, strlen(v));
            else
                ctr__buf_puts(&b, "null");
            break;
        }
        case CTR__LF_RAW: {
            const char *v = va_arg(ap, const char *);
            ctr__buf_puts(&b, v ? v : "null");
            break;
        }
        case CTR__LF_INT: ctr__buf_printf(&b, "%lld", va_arg(ap, long long)); break;
        case CTR__LF_UINT: ctr__buf_printf(&b, "%llu", va_arg(ap, unsigned long long)); break;
        case CTR__LF_DBL: ctr__buf_printf(&b, "%.6g", va_arg(ap, double)); break;
        case CTR__LF_BOOL: ctr__buf_puts(&b, va_arg(ap, int) ? "true" : "false"); break;
        default: ctr__buf_puts(&b, "null"); goto out; /* bad tag: stop reading */
        }
        if (!b.failed)
            good = b.len;
    }
out:
    va_end(ap);
    if (b.failed) {
        /* Cut back to the last complete field, so the line is still one
         * valid JSON object, and say so. */
        b.len = good;
        memcpy(mem + b.len, trunc, sizeof trunc - 1);
        b.len += sizeof trunc - 1;
    }
    mem[b.len++] = '}';
    mem[b.len++] = '\n';
    ssize_t w = write(STDERR_FILENO, mem, b.len);
    (void)w;
}
