/* status.c: filling cm_error records. */
#include "status.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

cm_status cm_error_set(cm_error *err, cm_status status, const char *file, int line,
                       const char *fmt, ...) {
    if (!err) return status;
    err->status = status;
    err->line = line;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return status;
}
