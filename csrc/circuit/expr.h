/* expr.h: SPICE numbers and the arithmetic of {expressions} (internal to the reader).
 *
 * Grammar: expr = term (('+'|'-') term)*; term = power (('*'|'/') power)*;
 * power = unary (('**'|'^') power)?; unary = ('-'|'+') unary | atom;
 * atom = number | name | name '(' expr (',' expr)* ')' | '(' expr ')'.
 * Functions: sqrt exp log log10 abs min max pow sin cos tan atan sinh cosh tanh floor ceil.
 * Names are looked up through a callback; an unknown name makes the expression
 * "not evaluable" (the reader then keeps its text), never an error. */
#ifndef CIRCML_EXPR_H
#define CIRCML_EXPR_H
#include <stddef.h>

/* Return 0 and *value when `name` is known, -1 otherwise. */
typedef int (*cm_lookup_fn)(void *ctx, const char *name, size_t len, double *value);

typedef enum { CM_EXPR_OK = 0, CM_EXPR_UNKNOWN_NAME = 1, CM_EXPR_SYNTAX = 2 } cm_expr_result;

/* Evaluate s[0:len] (without the braces). On CM_EXPR_SYNTAX, *where is the offset of the
 * offending character. */
cm_expr_result cm_expr_eval(const char *s, size_t len, cm_lookup_fn lookup, void *ctx,
                            double *value, size_t *where);

#endif
