/* expr.c: SPICE numbers with SI suffixes, and {expression} evaluation (see expr.h). */
#include "expr.h"
#include "circuit.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Scale exponent of the SI suffix starting at s (already lowercase or not), or 0 when none.
 * *used = characters consumed by the suffix itself. */
static int suffix_exponent(const char *s, size_t len, int *is_mil) {
    *is_mil = 0;
    if (len == 0) return 0;
    char c0 = (char)tolower((unsigned char)s[0]);
    char c1 = len > 1 ? (char)tolower((unsigned char)s[1]) : 0;
    char c2 = len > 2 ? (char)tolower((unsigned char)s[2]) : 0;
    switch (c0) {
    case 't': return 12;
    case 'g': return 9;
    case 'k': return 3;
    case 'u': return -6;
    case 'n': return -9;
    case 'p': return -12;
    case 'f': return -15;
    case 'a': return -18;
    case 'm':
        if (c1 == 'e' && c2 == 'g') return 6;
        if (c1 == 'i' && c2 == 'l') { *is_mil = 1; return 0; }
        return -3;
    case 'x': return 6;   /* old SPICE spelling of mega */
    default: return 0;
    }
}

int cm_parse_number(const char *s, size_t len, double *value) {
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) { neg = s[i] == '-'; i++; }
    uint64_t mant = 0;
    int ndig = 0, sig = 0, exp10 = 0, seen_digit = 0, overflow = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        seen_digit = 1;
        if (mant == 0 && s[i] == '0') { i++; continue; }
        if (sig < 19) { mant = mant * 10 + (uint64_t)(s[i] - '0'); sig++; } else { exp10++; overflow = 1; }
        ndig++; i++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            seen_digit = 1;
            if (mant == 0 && s[i] == '0') { exp10--; i++; continue; }
            if (sig < 19) { mant = mant * 10 + (uint64_t)(s[i] - '0'); sig++; exp10--; } else overflow = 1;
            i++;
        }
    }
    if (!seen_digit) return -1;
    size_t num_end = i, mant_end = i;
    int explicit_e = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        /* An exponent needs digits after it; otherwise 'e' is a unit letter (rare). */
        size_t j = i + 1;
        int eneg = 0;
        if (j < len && (s[j] == '+' || s[j] == '-')) { eneg = s[j] == '-'; j++; }
        if (j < len && isdigit((unsigned char)s[j])) {
            int e = 0;
            while (j < len && isdigit((unsigned char)s[j])) { if (e < 100000) e = e * 10 + (s[j] - '0'); j++; }
            exp10 += eneg ? -e : e;
            explicit_e = eneg ? -e : e;
            i = j;
            num_end = i;
            (void)num_end;
        }
    }
    int is_mil = 0;
    int sx = suffix_exponent(s + i, len - i, &is_mil);
    /* Anything after the suffix is unit text (F, ohm, Hz, V); SPICE ignores letters there. */
    for (size_t j = i; j < len; j++)
        if (!isalpha((unsigned char)s[j])) return -1;
    int total = exp10 + sx;
    double v;
    if (!overflow && sig <= 15 && total >= -22 && total <= 22) {
        /* Clinger's fast path: one correctly rounded operation. */
        v = total >= 0 ? (double)mant * POW10[total] : (double)mant / POW10[-total];
    } else {
        /* Slow path: strtod on the digits as written with the suffix folded into the
         * exponent, so the result is still correctly rounded. */
        const char *d = s + ((s[0] == '+' || s[0] == '-') ? 1 : 0);
        size_t k = 0, dl = mant_end - (size_t)(d - s);
        char small[128], *tmp = small;   /* a long number ("0.000...0001") is still a number */
        if (dl + 16 > sizeof small && !(tmp = malloc(dl + 16))) return -1;
        for (k = 0; k < dl; k++) tmp[k] = d[k];
        snprintf(tmp + k, 16, "e%d", explicit_e + sx);
        v = strtod(tmp, NULL);
        if (tmp != small) free(tmp);
    }
    if (is_mil) v *= 25.4e-6;
    *value = neg ? -v : v;
    return 0;
}

static int round_trips(double v, char *buf, size_t size, int prec) {
    snprintf(buf, size, "%.*g", prec, v);
    double back;
    return cm_parse_number(buf, strlen(buf), &back) == 0 && back == v;
}

int cm_format_number(double v, char *buf, size_t size) {
    if (isnan(v)) return snprintf(buf, size, "nan");
    /* The shortest "%.*g" (6 to 17 digits) that reads back as v. If any k <= 15 digits round
     * trip, 15 do too (the k-digit decimal is then v's 15-digit rounding), so a full-precision
     * value (a sampled design) is settled in 2-3 tries instead of 11-12. */
    if (round_trips(v, buf, size, 6)) return (int)strlen(buf);
    if (!round_trips(v, buf, size, 15)) {
        if (!round_trips(v, buf, size, 16)) snprintf(buf, size, "%.17g", v);
        return (int)strlen(buf);
    }
    for (int prec = 7; prec < 15; prec++)
        if (round_trips(v, buf, size, prec)) return (int)strlen(buf);
    snprintf(buf, size, "%.15g", v);
    return (int)strlen(buf);
}

/* ---- expressions ---- */

typedef struct {
    const char *s;
    size_t len, pos;
    cm_lookup_fn lookup;
    void *ctx;
    cm_expr_result res;
    size_t where;
    int depth;
} parser;

static void skip_ws(parser *p) {
    while (p->pos < p->len && isspace((unsigned char)p->s[p->pos])) p->pos++;
}

static void fail(parser *p, cm_expr_result r) {
    if (p->res == CM_EXPR_OK || (p->res == CM_EXPR_UNKNOWN_NAME && r == CM_EXPR_SYNTAX)) {
        p->res = r;
        p->where = p->pos;
    }
}

static double parse_expr(parser *p);

static int ident_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '!' || c == '$'; }

static double call_fn(parser *p, const char *name, size_t nlen, const double *a, int na) {
#define IS(str) (nlen == sizeof(str) - 1 && strncmp(name, str, nlen) == 0)
    if (na == 1) {
        double x = a[0];
        if (IS("sqrt")) return sqrt(x);
        if (IS("exp")) return exp(x);
        if (IS("log") || IS("ln")) return log(x);
        if (IS("log10")) return log10(x);
        if (IS("abs")) return fabs(x);
        if (IS("sin")) return sin(x);
        if (IS("cos")) return cos(x);
        if (IS("tan")) return tan(x);
        if (IS("atan")) return atan(x);
        if (IS("sinh")) return sinh(x);
        if (IS("cosh")) return cosh(x);
        if (IS("tanh")) return tanh(x);
        if (IS("floor")) return floor(x);
        if (IS("ceil")) return ceil(x);
        if (IS("int")) return trunc(x);
    } else if (na == 2) {
        if (IS("min")) return a[0] < a[1] ? a[0] : a[1];
        if (IS("max")) return a[0] > a[1] ? a[0] : a[1];
        if (IS("pow") || IS("pwr")) return pow(a[0], a[1]);
    }
#undef IS
    /* An unknown function is treated like an unknown name: keep the text. */
    fail(p, CM_EXPR_UNKNOWN_NAME);
    return NAN;
}

static double parse_atom(parser *p) {
    skip_ws(p);
    if (p->pos >= p->len) { fail(p, CM_EXPR_SYNTAX); return NAN; }
    char c = p->s[p->pos];
    if (c == '(') {
        p->pos++;
        double v = parse_expr(p);
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ')') { fail(p, CM_EXPR_SYNTAX); return NAN; }
        p->pos++;
        return v;
    }
    if (isdigit((unsigned char)c) || c == '.') {
        size_t st = p->pos;
        /* number: digits, '.', exponent, then letters (suffix/unit) */
        while (p->pos < p->len && (isdigit((unsigned char)p->s[p->pos]) || p->s[p->pos] == '.')) p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
            size_t j = p->pos + 1;
            if (j < p->len && (p->s[j] == '+' || p->s[j] == '-')) j++;
            if (j < p->len && isdigit((unsigned char)p->s[j])) {
                while (j < p->len && isdigit((unsigned char)p->s[j])) j++;
                p->pos = j;
            }
        }
        while (p->pos < p->len && isalpha((unsigned char)p->s[p->pos])) p->pos++;
        double v;
        if (cm_parse_number(p->s + st, p->pos - st, &v)) { p->pos = st; fail(p, CM_EXPR_SYNTAX); return NAN; }
        return v;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        size_t st = p->pos;
        while (p->pos < p->len && ident_char(p->s[p->pos])) p->pos++;
        size_t nlen = p->pos - st;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == '(') {
            p->pos++;
            double args[4];
            int na = 0;
            for (;;) {
                double a = parse_expr(p);
                if (na < 4) args[na] = a;
                na++;
                skip_ws(p);
                if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
                if (p->pos < p->len && p->s[p->pos] == ')') { p->pos++; break; }
                fail(p, CM_EXPR_SYNTAX);
                return NAN;
            }
            return call_fn(p, p->s + st, nlen, args, na > 4 ? 4 : na);
        }
        double v;
        if (p->lookup && p->lookup(p->ctx, p->s + st, nlen, &v) == 0) return v;
        size_t save = p->pos;
        p->pos = st;
        fail(p, CM_EXPR_UNKNOWN_NAME);
        p->pos = save;
        return NAN;
    }
    fail(p, CM_EXPR_SYNTAX);
    return NAN;
}

static double parse_unary(parser *p) {
    skip_ws(p);
    if (p->pos < p->len && (p->s[p->pos] == '-' || p->s[p->pos] == '+')) {
        char c = p->s[p->pos++];
        if (++p->depth > 200) { fail(p, CM_EXPR_SYNTAX); return NAN; }
        double v = parse_unary(p);
        p->depth--;
        return c == '-' ? -v : v;
    }
    return parse_atom(p);
}

static double parse_power(parser *p) {
    double b = parse_unary(p);
    skip_ws(p);
    if (p->pos < p->len && (p->s[p->pos] == '^' || (p->s[p->pos] == '*' && p->pos + 1 < p->len && p->s[p->pos + 1] == '*'))) {
        p->pos += p->s[p->pos] == '^' ? 1 : 2;
        if (++p->depth > 200) { fail(p, CM_EXPR_SYNTAX); return NAN; }
        double e = parse_power(p);
        p->depth--;
        return pow(b, e);
    }
    return b;
}

static double parse_term(parser *p) {
    double v = parse_power(p);
    for (;;) {
        skip_ws(p);
        if (p->pos >= p->len) return v;
        char c = p->s[p->pos];
        if (c == '*' && !(p->pos + 1 < p->len && p->s[p->pos + 1] == '*')) { p->pos++; v *= parse_power(p); }
        else if (c == '/') { p->pos++; v /= parse_power(p); }
        else return v;
    }
}

static double parse_expr(parser *p) {
    if (++p->depth > 200) { fail(p, CM_EXPR_SYNTAX); return NAN; }
    double v = parse_term(p);
    for (;;) {
        skip_ws(p);
        if (p->pos >= p->len) break;
        char c = p->s[p->pos];
        if (c == '+') { p->pos++; v += parse_term(p); }
        else if (c == '-') { p->pos++; v -= parse_term(p); }
        else break;
    }
    p->depth--;
    return v;
}

cm_expr_result cm_expr_eval(const char *s, size_t len, cm_lookup_fn lookup, void *ctx,
                            double *value, size_t *where) {
    parser p = {s, len, 0, lookup, ctx, CM_EXPR_OK, 0, 0};
    double v = parse_expr(&p);
    skip_ws(&p);
    if (p.res == CM_EXPR_OK && p.pos != p.len) fail(&p, CM_EXPR_SYNTAX);
    if (where) *where = p.where;
    if (p.res == CM_EXPR_OK) *value = v;
    return p.res;
}
