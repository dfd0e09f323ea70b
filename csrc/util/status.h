/* status.h: status codes and the error record every circml kernel reports through.
 *
 * Kernels never exit, abort or print: they return a cm_status and, where a user needs
 * detail (a netlist's file and line), fill a cm_error that the caller owns. */
#ifndef CIRCML_STATUS_H
#define CIRCML_STATUS_H

typedef enum {
    CM_OK = 0,
    CM_ERR_NOMEM = 1,     /* an allocation failed */
    CM_ERR_IO = 2,        /* a file could not be read */
    CM_ERR_PARSE = 3,     /* malformed input; cm_error says where and what */
    CM_ERR_VALUE = 4,     /* a bad argument from the caller */
    CM_ERR_REFUSED = 5,   /* input refused by a safety rule (.control, include outside allowed folders) */
    CM_ERR_UNSUPPORTED = 6,/* well-formed input that circml does not handle yet */
    CM_ERR_SIMULATION = 7, /* the simulator reported an error (message in cm_error) */
    CM_ERR_TIMEOUT = 8,    /* a simulation ran past its time limit and was halted */
    CM_ERR_DEAD = 9,       /* the simulator library exited fatally and must be reloaded */
    CM_ERR_LIBRARY = 10    /* the simulator library could not be loaded */
} cm_status;

typedef struct {
    cm_status status;
    int line;            /* 1-based line in `file`, 0 when not tied to a line */
    char file[1024];     /* file name or "<string>" */
    char msg[1024];      /* what was expected / what went wrong */
} cm_error;

/* Fill `err` (if not NULL) and return `status`. printf-style message. */
cm_status cm_error_set(cm_error *err, cm_status status, const char *file, int line,
                       const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#endif
