/* common.c - error codes to text. */
#include "ctr/common.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

const char *ctr_strerror(int code)
{
    switch (code) {
    case CTR_OK: return "success";
    case CTR_ENOMEM: return "out of memory";
    case CTR_EIO: return "I/O error";
    case CTR_EFORMAT: return "malformed file";
    case CTR_EVERSION: return "unsupported format version";
    case CTR_ECHECKSUM: return "checksum mismatch";
    case CTR_EINVAL: return "invalid argument";
    case CTR_EUNSUPPORTED: return "not supported here";
    case CTR_ERANGE: return "value out of range";
    case CTR_ENOTFOUND: return "not found";
    case CTR_ETOOBIG: return "over the limit";
    case CTR_EBUSY: return "busy, retry later";
    case CTR_EINTERNAL: return "internal error";
    case CTR_EAUTH: return "credentials missing";
    case CTR_EDENIED: return "credentials wrong";
    case CTR_EMETHOD: return "method not allowed";
    case CTR_ELENGTH: return "length required";
    case CTR_EMEDIATYPE: return "unsupported media type";
    default:
        /* A -errno that escaped its boundary still reads as itself. */
        return code < 0 && code > -4096 ? strerror(-code) : "unknown error";
    }
}

int ctr_errno_code(int errnum)
{
    switch (errnum < 0 ? -errnum : errnum) {
    case 0: return CTR_OK;
    case ENOMEM: return CTR_ENOMEM;
    case EAGAIN:
    case EBUSY: return CTR_EBUSY;
    case EINVAL: return CTR_EINVAL;
    default: return CTR_EIO;
    }
}

int ctr_error(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
