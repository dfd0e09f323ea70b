/* parse.c: the SPICE netlist reader. Text -> cards -> definitions -> flattened circuit.
 *
 * 1. Cards: physical lines become logical cards (continuations joined, comments dropped,
 *    lowercased), .include/.lib followed within the allowed folders, .control refused unless
 *    allowed. Each card remembers its file and first line for error messages.
 * 2. Definitions: .subckt bodies, .model, top-level .param, .global, kept directives.
 * 3. Flattening: top-level element cards are instantiated; X cards recurse into their
 *    subcircuit with a name prefix, a port map and a parameter frame.
 * Limits: no nested .subckt definitions, no .if/.else, no B/K/J/S/W/T/U/A elements,
 * E/G only in their linear form (no VALUE/POLY/TABLE). Every failure is a status with a
 * located message; all memory is released on every path. */
#include "circuit.h"
#include "expr.h"
#include "../util/mem.h"
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INCLUDE_DEPTH 16

typedef struct { const char *s; size_t n; } slice;

typedef struct {
    int64_t off;      /* into ctx.text */
    int64_t len;
    int32_t file;     /* id in circuit.files */
    int32_t line;
} card;

typedef struct { int32_t name; int32_t text; } name_text;   /* ids in strs */

typedef struct {
    int32_t name;                    /* id in strs */
    int32_t port_begin, n_ports;     /* into ctx.sub_ports (ids in strs) */
    int32_t param_begin, n_params;   /* into ctx.sub_params: defaults */
    int32_t card_begin, card_end;    /* body cards [begin, end) */
    int32_t file, line;
    int active;                      /* on the instantiation stack: recursion guard */
} subckt_def;

typedef struct { int32_t name; double value; int32_t text; } frame_param;

typedef struct {
    const char *path; size_t path_len;   /* instance path, "" at top level */
    const int32_t *port_names;           /* [n_ports] ids in strs */
    const int32_t *port_nets;            /* [n_ports] net ids in the caller */
    int32_t n_ports;
    int32_t frame_begin, frame_end;      /* parameter frame in ctx.frame; empty at top */
} scope;

typedef struct {
    cm_circuit *c;
    cm_error *err;
    const cm_parse_options *opt;

    char *text; size_t text_len, text_cap;           /* lowercased card text */
    card *cards; int32_t n_cards, cap_cards;
    char *control; size_t control_len, control_cap;  /* kept .control text */

    subckt_def *subs; int32_t n_subs, cap_subs;
    cm_strtab subnames;                               /* subckt name -> index */
    int32_t *sub_ports; int32_t n_sub_ports, cap_sub_ports;
    name_text *sub_params; int32_t n_sub_params, cap_sub_params;
    cm_strtab modelnames;                             /* model name -> index in c->models */
    int32_t *model_def_file, *model_def_line;         /* [n_models] */
    int32_t *top_cards; int32_t n_top, cap_top;       /* element cards at top level */

    frame_param *frame; int32_t n_frame, cap_frame;   /* parameter frames, a stack */
    slice *toks; int32_t n_toks, cap_toks;            /* tokens of the current card */
    char *scratch; size_t scratch_cap;                /* names being built */
    char *scratch2; size_t scratch2_cap;
    char **allowed; int n_allowed;                    /* realpaths of allowed folders */
    int depth;
    const card *cur;                                  /* card being read, for messages */
    char *override_used;                              /* [n_overrides] */
    const scope *cur_scope;                           /* for expression lookups */
} ctx;

/* ------------------------------------------------------------------ helpers */

static const char *file_name(const ctx *x, int32_t id) {
    return id >= 0 ? cm_strtab_get(&x->c->files, id) : "<string>";
}

static cm_status fail_at(ctx *x, const card *cd, cm_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Messages quote the input, which need not be UTF-8 (and tlen may cut a character in two):
 * bytes that do not form valid UTF-8 become '?', so a binding can always decode the message. */
static void utf8_sanitize(char *s) {
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        unsigned lo = 0x80, hi = 0xBF;   /* range of the second byte: no overlongs, surrogates or > U+10FFFF */
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
        else if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
        int ok = n > 0 && (n == 1 || (p[1] >= lo && p[1] <= hi));
        for (int k = 2; ok && k < n; k++) ok = (p[k] & 0xC0) == 0x80;
        if (!ok) { *p++ = '?'; continue; }
        p += n;
    }
}

static cm_status fail_at(ctx *x, const card *cd, cm_status st, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_sanitize(msg);
    return cm_error_set(x->err, st, cd ? file_name(x, cd->file) : "", cd ? cd->line : 0, "%s", msg);
}

static cm_status nomem(ctx *x) {
    return cm_error_set(x->err, CM_ERR_NOMEM, "", 0, "out of memory");
}

static int slice_is(slice t, const char *lit) {
    size_t n = strlen(lit);
    return t.n == n && memcmp(t.s, lit, n) == 0;
}

static int32_t intern(ctx *x, cm_strtab *t, const char *s, size_t n) {
    (void)x;
    return cm_strtab_intern(t, s, n, NULL);
}

static cm_status ensure_scratch(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return CM_OK;
    size_t nc = *cap ? *cap : 256;
    while (nc < need) nc *= 2;
    char *b = realloc(*buf, nc);
    if (!b) return CM_ERR_NOMEM;
    *buf = b;
    *cap = nc;
    return CM_OK;
}

/* Shorten a token for messages. */
static int tlen(slice t) { return t.n > 60 ? 60 : (int)t.n; }

/* ------------------------------------------------------------------ stage 1: cards */

static cm_status append_text(ctx *x, const char *s, size_t n, int lower) {
    if (x->text_len + n + 1 > x->text_cap) {
        size_t nc = x->text_cap ? x->text_cap * 2 : 4096;
        while (nc < x->text_len + n + 1) nc *= 2;
        char *b = realloc(x->text, nc);
        if (!b) return CM_ERR_NOMEM;
        x->text = b;
        x->text_cap = nc;
    }
    char *d = x->text + x->text_len;
    if (lower)
        for (size_t i = 0; i < n; i++) d[i] = (char)tolower((unsigned char)s[i]);
    else
        memcpy(d, s, n);
    x->text_len += n;
    return CM_OK;
}

static cm_status append_control(ctx *x, const char *s, size_t n) {
    if (x->control_len + n + 2 > x->control_cap) {
        size_t nc = x->control_cap ? x->control_cap * 2 : 1024;
        while (nc < x->control_len + n + 2) nc *= 2;
        char *b = realloc(x->control, nc);
        if (!b) return CM_ERR_NOMEM;
        x->control = b;
        x->control_cap = nc;
    }
    memcpy(x->control + x->control_len, s, n);
    x->control_len += n;
    x->control[x->control_len++] = '\n';
    return CM_OK;
}

/* Is `s` (a directive word, lowercase compare) equal to lit? */
static int word_is(const char *s, size_t n, const char *lit) {
    size_t m = strlen(lit);
    if (n != m) return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s[i]) != lit[i]) return 0;
    return 1;
}

static size_t first_word(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && !isspace((unsigned char)s[i])) i++;
    return i;
}

static int path_is_under(const char *path, const char *dir) {
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/') return 1;
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static cm_status read_file_bytes(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return CM_ERR_IO;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b) { fclose(f); return CM_ERR_NOMEM; }
    for (;;) {
        if (n == cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); fclose(f); return CM_ERR_NOMEM; }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(b); return CM_ERR_IO; }
    *out = b;
    *len = n;
    return CM_OK;
}

static cm_status read_source(ctx *x, const char *text, size_t len, int32_t file, int depth, int top,
                             const char *section);

/* Resolve and read an .include (section == NULL) or a .lib file section. */
static cm_status do_include(ctx *x, const card *at, const char *arg, size_t argn, int depth,
                            const char *section) {
    char rel[2048];
    while (argn && isspace((unsigned char)arg[0])) { arg++; argn--; }
    while (argn && isspace((unsigned char)arg[argn - 1])) argn--;
    if (argn >= 2 && (arg[0] == '"' || arg[0] == '\'') && arg[argn - 1] == arg[0]) { arg++; argn -= 2; }
    if (argn == 0) return fail_at(x, at, CM_ERR_PARSE, ".include needs a file name");
    if (argn >= sizeof rel) return fail_at(x, at, CM_ERR_PARSE, "include path too long");
    if (depth >= MAX_INCLUDE_DEPTH)
        return fail_at(x, at, CM_ERR_PARSE, "includes nested deeper than %d (an include cycle?)", MAX_INCLUDE_DEPTH);
    memcpy(rel, arg, argn);
    rel[argn] = 0;
    char joined[4096];
    const char *from = at->file >= 0 ? cm_strtab_get(&x->c->files, at->file) : NULL;
    if (rel[0] == '/' || !from || from[0] == '<') {
        snprintf(joined, sizeof joined, "%s", rel);
    } else {
        const char *slash = strrchr(from, '/');
        if (slash) snprintf(joined, sizeof joined, "%.*s/%s", (int)(slash - from), from, rel);
        else snprintf(joined, sizeof joined, "%s", rel);
    }
    char *real = realpath(joined, NULL);
    if (!real) return fail_at(x, at, CM_ERR_IO, "cannot open include file '%s' (looked for '%s')", rel, joined);
    if (!x->opt->allow_any_include) {
        int ok = 0;
        for (int i = 0; i < x->n_allowed && !ok; i++) ok = path_is_under(real, x->allowed[i]);
        if (!ok) {
            cm_status st = fail_at(x, at, CM_ERR_REFUSED,
                                   "include '%s' resolves to '%s', outside the allowed folders; pass "
                                   "include_dirs=[...] or allow_any_include=True", rel, real);
            free(real);
            return st;
        }
    }
    char *buf = NULL;
    size_t n = 0;
    cm_status st = read_file_bytes(real, &buf, &n);
    if (st) {
        st = st == CM_ERR_NOMEM ? nomem(x) : fail_at(x, at, CM_ERR_IO, "cannot read include file '%s'", real);
        free(real);
        return st;
    }
    int32_t fid = intern(x, &x->c->files, real, strlen(real));
    free(real);
    if (fid < 0) { free(buf); return nomem(x); }
    const card *outer = x->cur;
    x->cur = at;   /* stage 1 has no current card otherwise: lets "section not found" point at the .lib line */
    st = read_source(x, buf, n, fid, depth + 1, 0, section);
    x->cur = outer;
    free(buf);
    return st;
}

static cm_status push_card(ctx *x, int64_t off, int32_t file, int32_t line) {
    CM_GROW(x->cards, x->n_cards, x->cap_cards, 256);
    card *cd = &x->cards[x->n_cards++];
    cd->off = off;
    cd->len = 0;
    cd->file = file;
    cd->line = line;
    return CM_OK;
}

/* Length of w[0:wn] before an end-of-line comment: ';' anywhere, '$' at the start of a word
 * (ngspice) - and of a token: after {..}, ')' ... a '$' would start a name that reads back as
 * a comment. (Shared with the fast reader, which looks for ';' and '$' before calling it.) */
static size_t comment_cut(const char *w, size_t wn) {
    for (size_t i = 0; i < wn; i++) {
        if (w[i] == ';' || (w[i] == '$' && (i == 0 || isspace((unsigned char)w[i - 1]) || strchr("}()=,'", w[i - 1]))))
            return i;
    }
    return wn;
}

/* Where read_lines starts (byte, lines before it, may a '+' line continue the last card) and,
 * when `resume` is set, where it stopped: after a line, at the next line that starts with a
 * letter, once the reader is back in its plain state (pos = len: read to the end). The fast
 * reader reads plain lines itself, and hands state lines (.include, .lib, .control, ...) here. */
typedef struct { size_t pos; int line, have_card, resume; } read_at;

/* Read one source text into cards. `section`: for .lib file section, only the lines between
 * ".lib section" and ".endl" are read. `at` may be NULL (from the start, to the end).
 * fast_lines reads plain lines the same way and stops at the words of fast_special: keep them
 * in step with this function. */
static cm_status read_lines(ctx *x, const char *text, size_t len, int32_t file, int depth, int top,
                            const char *section, read_at *at) {
    size_t pos = at ? at->pos : 0, start = pos;
    int line = at ? at->line : 0, have_card = at ? at->have_card : 0;
    int in_control = 0, control_line = 0;
    int in_section = section ? 0 : 1, skipping_lib = 0, section_found = section ? 0 : 1;
    card here = {0, 0, file, 0};
    while (pos < len) {
        if (at && at->resume && pos > start && !in_control && in_section && !skipping_lib &&
            (unsigned char)((text[pos] | 0x20) - 'a') < 26) {
            at->pos = pos;
            at->line = line;
            at->have_card = have_card;
            return CM_OK;
        }
        size_t st = pos;
        while (pos < len && text[pos] != '\n') pos++;
        size_t en = pos;
        if (pos < len) pos++;
        line++;
        here.line = line;
        if (en > st && text[en - 1] == '\r') en--;
        const char *s = text + st;
        size_t n = en - st;
        for (size_t i = 0; i < n; i++)
            if (s[i] == '\0')
                return fail_at(x, &here, CM_ERR_PARSE, "NUL byte in the netlist (a binary file?)");
        if (top && line == 1) {
            /* SPICE: the first line is the title, whatever it holds. */
            size_t a = 0, b = n;
            while (a < b && isspace((unsigned char)s[a])) a++;
            while (b > a && isspace((unsigned char)s[b - 1])) b--;
            int32_t id = intern(x, &x->c->strs, s + a, b - a);
            if (id < 0) return nomem(x);
            x->c->title = id;
            continue;
        }
        size_t a = 0;
        while (a < n && isspace((unsigned char)s[a])) a++;
        const char *w = s + a;
        size_t wn = n - a;
        size_t fw = first_word(w, wn);
        if (in_control) {
            if (word_is(w, fw, ".endc")) { in_control = 0; if (append_control(x, w, wn)) return nomem(x); }
            else if (append_control(x, s, n)) return nomem(x);
            continue;
        }
        if (!in_section) {
            /* Looking for ".lib <section>" in a library file. */
            if (word_is(w, fw, ".lib")) {
                size_t b = fw;
                while (b < wn && isspace((unsigned char)w[b])) b++;
                size_t e = wn;
                while (e > b && isspace((unsigned char)w[e - 1])) e--;
                if (e > b && word_is(w + b, e - b, section)) { in_section = 1; section_found = 1; }
            }
            continue;
        }
        if (skipping_lib) {
            if (word_is(w, fw, ".endl")) skipping_lib = 0;
            continue;
        }
        if (wn == 0) continue;
        if (w[0] == '*') continue;
        if (w[0] == '+') {
            if (!have_card)
                return fail_at(x, &here, CM_ERR_PARSE, "continuation line ('+') with no card before it");
            w++; wn--;
        }
        wn = comment_cut(w, wn);
        while (wn && isspace((unsigned char)w[wn - 1])) wn--;
        if (s[a] == '+') {
            if (wn == 0) continue;
            if (append_text(x, " ", 1, 0) || append_text(x, w, wn, 1)) return nomem(x);
            x->cards[x->n_cards - 1].len = (int64_t)x->text_len - x->cards[x->n_cards - 1].off;
            continue;
        }
        if (wn == 0) continue;
        fw = first_word(w, wn);
        if (w[0] == '.') {
            if (word_is(w, fw, ".end")) break;
            if (word_is(w, fw, ".endl")) {
                if (section) break;   /* end of the section we were reading */
                continue;
            }
            if (word_is(w, fw, ".control")) {
                if (!x->opt->allow_control)
                    return fail_at(x, &here, CM_ERR_REFUSED,
                                   ".control blocks are refused by default (they can run shell commands); "
                                   "pass allow_control=True to keep them");
                in_control = 1;
                control_line = line;
                if (append_control(x, w, wn)) return nomem(x);
                have_card = 0;
                continue;
            }
            if (word_is(w, fw, ".include") || word_is(w, fw, ".inc")) {
                cm_status st = do_include(x, &here, w + fw, wn - fw, depth, NULL);
                if (st) return st;
                have_card = 0;
                continue;
            }
            if (word_is(w, fw, ".lib")) {
                /* ".lib file section" reads a section; ".lib name" opens a section definition,
                 * which is skipped unless reached through ".lib file name". */
                const char *r = w + fw;
                size_t rn = wn - fw, i = 0;
                while (i < rn && isspace((unsigned char)r[i])) i++;
                size_t f0 = i;
                while (i < rn && !isspace((unsigned char)r[i])) i++;
                size_t f1 = i;
                while (i < rn && isspace((unsigned char)r[i])) i++;
                if (f1 == f0) return fail_at(x, &here, CM_ERR_PARSE, ".lib needs a file name and a section name");
                if (i >= rn) { skipping_lib = 1; continue; }
                char sec[256];
                size_t sn = rn - i;
                if (sn >= sizeof sec) return fail_at(x, &here, CM_ERR_PARSE, ".lib section name too long");
                for (size_t k = 0; k < sn; k++) sec[k] = (char)tolower((unsigned char)r[i + k]);
                sec[sn] = 0;
                char fname[2048];
                size_t fl = f1 - f0;
                if (fl >= sizeof fname) return fail_at(x, &here, CM_ERR_PARSE, "include path too long");
                memcpy(fname, r + f0, fl);
                fname[fl] = 0;
                cm_status st = do_include(x, &here, fname, fl, depth, sec);
                if (st) return st;
                have_card = 0;
                continue;
            }
        }
        if (push_card(x, (int64_t)x->text_len, file, line)) return nomem(x);
        if (append_text(x, w, wn, 1)) return nomem(x);
        x->cards[x->n_cards - 1].len = (int64_t)x->text_len - x->cards[x->n_cards - 1].off;
        have_card = 1;
    }
    if (in_control) {
        here.line = control_line;
        return fail_at(x, &here, CM_ERR_PARSE, ".control block has no matching .endc");
    }
    if (section && !section_found) {
        here.line = 0;
        return fail_at(x, x->cur ? x->cur : &here, CM_ERR_PARSE, "library section '%s' not found in '%s'", section,
                       file_name(x, file));
    }
    if (at) at->pos = len;
    return CM_OK;
}

static cm_status read_source(ctx *x, const char *text, size_t len, int32_t file, int depth, int top,
                             const char *section) {
    return read_lines(x, text, len, file, depth, top, section, NULL);
}

/* ------------------------------------------------------------------ tokens */

/* Split card text into tokens: whitespace, '(' ')' ',' separate; '=' is a token of its own;
 * {...} and '...' are single tokens. */
static cm_status tokenize(ctx *x, const card *cd, const char *s, size_t n, int parens_split) {
    x->n_toks = 0;
    size_t i = 0;
    while (i < n) {
        char ch = s[i];
        if (isspace((unsigned char)ch) || (parens_split && (ch == '(' || ch == ')' || ch == ','))) { i++; continue; }
        size_t st = i;
        if (ch == '=') {
            i++;
        } else if (ch == '{' || ch == '\'') {
            char close = ch == '{' ? '}' : '\'';
            int level = 0;
            for (;;) {
                if (i >= n)
                    return fail_at(x, cd, CM_ERR_PARSE, "unterminated %s (expected '%c')",
                                   ch == '{' ? "'{' expression" : "quoted expression", close);
                if (ch == '{' && s[i] == '{') level++;
                else if (s[i] == close && (ch == '\'' ? i > st : 1)) {
                    if (ch == '\'' || --level == 0) { i++; break; }
                }
                i++;
            }
        } else {
            while (i < n && !isspace((unsigned char)s[i]) && s[i] != '=' && s[i] != '{' &&
                   !(parens_split && (s[i] == '(' || s[i] == ')' || s[i] == ','))) {
                if (s[i] == '}') return fail_at(x, cd, CM_ERR_PARSE, "unbalanced '}'");
                i++;
            }
        }
        CM_GROW(x->toks, x->n_toks, x->cap_toks, 32);
        x->toks[x->n_toks].s = s + st;
        x->toks[x->n_toks].n = i - st;
        x->n_toks++;
    }
    return CM_OK;
}

/* ------------------------------------------------------------------ parameters */

static int frame_lookup(void *vctx, const char *name, size_t n, double *value) {
    ctx *x = vctx;
    int32_t id = cm_strtab_find(&x->c->strs, name, n);
    if (id < 0) return -1;
    const scope *sc = x->cur_scope;
    if (sc) {
        for (int32_t i = sc->frame_end - 1; i >= sc->frame_begin; i--)
            if (x->frame[i].name == id) {
                if (isnan(x->frame[i].value)) return -1;
                *value = x->frame[i].value;
                return 0;
            }
    }
    for (int32_t i = x->c->n_globals - 1; i >= 0; i--)
        if (x->c->globals[i].name == id) {
            if (isnan(x->c->globals[i].value)) return -1;
            *value = x->c->globals[i].value;
            return 0;
        }
    return -1;
}

/* Evaluate a value token: a number, {expr}, 'expr', or a bare parameter name.
 * Returns CM_OK with *value (NAN when an expression names something unknown: *keep = 1 then,
 * and the caller keeps the text). `what` names the value in messages. */
static cm_status eval_token(ctx *x, const card *cd, slice t, const char *what, double *value, int *keep) {
    *keep = 0;
    if (t.n == 0) return fail_at(x, cd, CM_ERR_PARSE, "empty value for %s", what);
    if (t.s[0] == '{' || t.s[0] == '\'') {
        size_t where = 0;
        cm_expr_result r = cm_expr_eval(t.s + 1, t.n - 2, frame_lookup, x, value, &where);
        if (r == CM_EXPR_SYNTAX)
            return fail_at(x, cd, CM_ERR_PARSE, "bad expression '%.*s' for %s (near character %zu)",
                           tlen(t), t.s, what, where + 2);   /* 1-based, counting the opening brace */
        if (r == CM_EXPR_UNKNOWN_NAME) { *value = NAN; *keep = 1; }
        else if (!isfinite(*value))
            return fail_at(x, cd, CM_ERR_PARSE, "%s: expression '%.*s' evaluates to %s", what, tlen(t), t.s,
                           isnan(*value) ? "nan" : "infinity");
        return CM_OK;
    }
    if (cm_parse_number(t.s, t.n, value) == 0) {
        /* 1e400 overflows; written back it would read as a name */
        if (!isfinite(*value))
            return fail_at(x, cd, CM_ERR_PARSE, "%s: number '%.*s' is out of range", what, tlen(t), t.s);
        return CM_OK;
    }
    if (frame_lookup(x, t.s, t.n, value) == 0) return CM_OK;
    return fail_at(x, cd, CM_ERR_PARSE, "expected a number or {expression} for %s, got '%.*s'", what,
                   tlen(t), t.s);
}

/* ------------------------------------------------------------------ nets and names */

static int is_ground_name(slice t) { return slice_is(t, "0") || slice_is(t, "gnd"); }

static int is_global_net(ctx *x, slice t) {
    for (int32_t i = 0; i < x->c->n_global_nets; i++) {
        const char *g = cm_strtab_get(&x->c->nets, x->c->global_nets[i]);
        if (strlen(g) == t.n && memcmp(g, t.s, t.n) == 0) return 1;
    }
    return 0;
}

/* Net id of token t seen in scope sc. */
static cm_status resolve_net(ctx *x, const scope *sc, slice t, int32_t *net) {
    if (t.s[0] == '=' || t.s[0] == '{' || t.s[0] == '\'')   /* "C= a b 1" must not make a net '=' */
        return fail_at(x, x->cur, CM_ERR_PARSE, "'%.*s' is not a net name", tlen(t), t.s);
    if (is_ground_name(t)) {
        *net = intern(x, &x->c->nets, "0", 1);
        return *net < 0 ? nomem(x) : CM_OK;
    }
    if (sc->path_len == 0 || is_global_net(x, t)) {
        *net = intern(x, &x->c->nets, t.s, t.n);
        return *net < 0 ? nomem(x) : CM_OK;
    }
    for (int32_t i = 0; i < sc->n_ports; i++) {
        const char *p = cm_strtab_get(&x->c->strs, sc->port_names[i]);
        if (strlen(p) == t.n && memcmp(p, t.s, t.n) == 0) { *net = sc->port_nets[i]; return CM_OK; }
    }
    if (ensure_scratch(&x->scratch, &x->scratch_cap, sc->path_len + t.n + 2)) return nomem(x);
    memcpy(x->scratch, sc->path, sc->path_len);
    x->scratch[sc->path_len] = '.';
    memcpy(x->scratch + sc->path_len + 1, t.s, t.n);
    *net = intern(x, &x->c->nets, x->scratch, sc->path_len + 1 + t.n);
    return *net < 0 ? nomem(x) : CM_OK;
}

/* Flattened device name: at top level the name itself; inside instance path P,
 * "<letter>.<P>.<name>" as ngspice writes it. Result in x->scratch2. */
static cm_status flat_name(ctx *x, const scope *sc, slice t, size_t *len) {
    size_t need = t.n + sc->path_len + 4;
    if (ensure_scratch(&x->scratch2, &x->scratch2_cap, need)) return nomem(x);
    if (sc->path_len == 0) {
        memcpy(x->scratch2, t.s, t.n);
        *len = t.n;
    } else {
        x->scratch2[0] = t.s[0];
        x->scratch2[1] = '.';
        memcpy(x->scratch2 + 2, sc->path, sc->path_len);
        x->scratch2[2 + sc->path_len] = '.';
        memcpy(x->scratch2 + 3 + sc->path_len, t.s, t.n);
        *len = 3 + sc->path_len + t.n;
    }
    return CM_OK;
}

/* ------------------------------------------------------------------ devices */

static cm_status new_device(ctx *x, const card *cd, const scope *sc, slice name, int kind, cm_device **out) {
    cm_circuit *c = x->c;
    size_t fl = 0;
    cm_status st = flat_name(x, sc, name, &fl);
    if (st) return st;
    int inserted = 0;
    int32_t id = cm_strtab_intern(&c->devnames, x->scratch2, fl, &inserted);
    if (id < 0) return nomem(x);
    if (!inserted) {
        const cm_device *first = &c->devices[id];
        return fail_at(x, cd, CM_ERR_PARSE, "duplicate device name '%.*s' (first defined at %s:%d)", (int)fl,
                       x->scratch2, file_name(x, first->src_file), first->src_line);
    }
    CM_GROW(c->devices, c->n_devices, c->cap_devices, 1024);
    cm_device *d = &c->devices[c->n_devices++];
    d->kind = kind;
    d->name = id;
    d->model = -1;
    d->term_begin = (int32_t)c->n_terms;
    d->n_terms = 0;
    d->param_begin = (int32_t)c->n_params;
    d->n_params = 0;
    d->value_text = -1;
    d->control = -1;
    d->src_file = cd->file;
    d->src_line = cd->line;
    d->value = NAN;
    *out = d;
    return CM_OK;
}

static cm_status add_terminal(ctx *x, const scope *sc, cm_device *d, slice t) {
    cm_circuit *c = x->c;
    int32_t net;
    cm_status st = resolve_net(x, sc, t, &net);
    if (st) return st;
    if (c->n_terms >= (int64_t)INT32_MAX) return nomem(x);
    CM_GROW(c->term_net, c->n_terms, c->cap_terms, 4096);
    c->term_net[c->n_terms++] = net;
    d->n_terms++;
    return CM_OK;
}

/* Instance parameters from tokens [from, n_toks): name = value triples. */
static cm_status add_params(ctx *x, const card *cd, cm_device *d, int32_t from, const char *devname_for_msg) {
    cm_circuit *c = x->c;
    int32_t i = from;
    while (i < x->n_toks) {
        slice k = x->toks[i];
        if (slice_is(k, "params:")) { i++; continue; }
        if (i + 2 >= x->n_toks + 0 && !(i + 2 < x->n_toks + 1 && i + 1 < x->n_toks && slice_is(x->toks[i + 1], "=")))
            return fail_at(x, cd, CM_ERR_PARSE, "unexpected '%.*s' in %s; expected name=value parameters",
                           tlen(k), k.s, devname_for_msg);
        if (i + 1 >= x->n_toks || !slice_is(x->toks[i + 1], "="))
            return fail_at(x, cd, CM_ERR_PARSE, "unexpected '%.*s' in %s; expected name=value parameters",
                           tlen(k), k.s, devname_for_msg);
        if (i + 2 >= x->n_toks || slice_is(x->toks[i + 2], "="))
            return fail_at(x, cd, CM_ERR_PARSE, "parameter '%.*s' of %s has no value", tlen(k), k.s,
                           devname_for_msg);
        if (k.s[0] == '{' || k.s[0] == '\'' || slice_is(k, "="))
            return fail_at(x, cd, CM_ERR_PARSE, "bad parameter name '%.*s' in %s", tlen(k), k.s, devname_for_msg);
        slice v = x->toks[i + 2];
        char what[200];
        snprintf(what, sizeof what, "parameter '%.*s' of %s", tlen(k), k.s, devname_for_msg);
        double val;
        int keep;
        cm_status st = eval_token(x, cd, v, what, &val, &keep);
        if (st) return st;
        CM_GROW(c->params, c->n_params, c->cap_params, 4096);
        cm_param *p = &c->params[c->n_params];
        p->name = intern(x, &c->strs, k.s, k.n);
        p->value = val;
        p->text = keep ? intern(x, &c->strs, v.s, v.n) : -1;
        if (p->name < 0 || (keep && p->text < 0)) return nomem(x);
        c->n_params++;
        d->n_params++;
        i += 3;
    }
    return CM_OK;
}

static int model_index(ctx *x, slice name) {
    return cm_strtab_find(&x->modelnames, name.s, name.n);
}

/* Model type of `name` ("nmos", "pmos", ...) from .model lines, then the caller's map. */
static const char *model_type(ctx *x, slice name) {
    int mi = model_index(x, name);
    if (mi >= 0) return cm_strtab_get(&x->c->strs, x->c->models[mi].type);
    for (int i = 0; i < x->opt->n_model_map; i++) {
        const char *m = x->opt->model_names[i];
        if (strlen(m) == name.n) {
            size_t k = 0;
            while (k < name.n && tolower((unsigned char)m[k]) == name.s[k]) k++;
            if (k == name.n) return x->opt->model_types[i];
        }
    }
    return NULL;
}

static int type_is(const char *t, const char *a) {
    if (!t) return 0;
    size_t n = strlen(a);
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)t[i]) != a[i]) return 0;
    return t[n] == 0;
}

static cm_status set_model(ctx *x, cm_device *d, slice m) {
    d->model = intern(x, &x->c->strs, m.s, m.n);
    return d->model < 0 ? nomem(x) : CM_OK;
}

static int is_param_start(ctx *x, int32_t i) {
    return i + 1 < x->n_toks && slice_is(x->toks[i + 1], "=");
}

static const char *kind_word(int kind) {
    switch (kind) {
    case CM_DEV_RES: return "resistor";
    case CM_DEV_CAP: return "capacitor";
    case CM_DEV_IND: return "inductor";
    default: return "device";
    }
}

static cm_status instantiate(ctx *x, const card *cd, const scope *sc);
static cm_status read_param_card(ctx *x, const card *cd, const char *s, size_t n, int top, scope *local);

/* Replace evaluable {expr} in a source spec by numbers, so the flat netlist stands alone. */
static cm_status substitute_exprs(ctx *x, const card *cd, const char *s, size_t n, int32_t *out) {
    char *buf = malloc(n * 2 + 64);
    if (!buf) return nomem(x);
    size_t cap = n * 2 + 64, bl = 0;
    size_t i = 0;
    cm_status st = CM_OK;
    while (i < n) {
        if (s[i] == '{') {
            size_t j = i, level = 0;
            for (; j < n; j++) {
                if (s[j] == '{') level++;
                else if (s[j] == '}' && --level == 0) break;
            }
            if (j >= n) { st = fail_at(x, cd, CM_ERR_PARSE, "unterminated '{' expression"); break; }
            double v;
            size_t where;
            cm_expr_result r = cm_expr_eval(s + i + 1, j - i - 1, frame_lookup, x, &v, &where);
            if (r == CM_EXPR_SYNTAX) {
                st = fail_at(x, cd, CM_ERR_PARSE, "bad expression '%.*s' in the source specification (near character %zu)",
                             (int)(j - i + 1 > 60 ? 60 : j - i + 1), s + i, where + 2);
                break;
            }
            if (r == CM_EXPR_OK && !isfinite(v)) {
                st = fail_at(x, cd, CM_ERR_PARSE, "expression '%.*s' in the source specification evaluates to %s",
                             (int)(j - i + 1 > 60 ? 60 : j - i + 1), s + i, isnan(v) ? "nan" : "infinity");
                break;
            }
            /* A number may be longer than the expression it replaces ({a} -> 24 digits): grow. */
            if (r == CM_EXPR_OK) {
                char num[40];
                int k = cm_format_number(v, num, sizeof num);
                if (ensure_scratch(&buf, &cap, bl + (size_t)k + 3)) { st = nomem(x); break; }
                /* {a}3 is two tokens: keep them apart once {a} is a number */
                if (bl && !isspace((unsigned char)buf[bl - 1]) && !strchr("(,=", buf[bl - 1])) buf[bl++] = ' ';
                memcpy(buf + bl, num, (size_t)k);
                bl += (size_t)k;
                if (j + 1 < n && !isspace((unsigned char)s[j + 1]) && !strchr("),", s[j + 1])) buf[bl++] = ' ';
            } else {
                size_t k = j - i + 1;
                if (ensure_scratch(&buf, &cap, bl + k + 1)) { st = nomem(x); break; }
                memcpy(buf + bl, s + i, k);
                bl += k;
            }
            i = j + 1;
        } else {
            if (ensure_scratch(&buf, &cap, bl + 2)) { st = nomem(x); break; }
            buf[bl++] = s[i++];
        }
    }
    if (!st) {
        *out = intern(x, &x->c->strs, buf, bl);
        if (*out < 0) st = nomem(x);
    }
    free(buf);
    return st;
}

static cm_status read_source_device(ctx *x, const card *cd, const scope *sc, slice name, int kind) {
    cm_device *d;
    const char *what = kind == CM_DEV_VSRC ? "voltage source" : "current source";
    if (x->n_toks < 3)
        return fail_at(x, cd, CM_ERR_PARSE, "%s '%.*s' needs two nets (n+ n-) and a value", what, tlen(name), name.s);
    cm_status st = new_device(x, cd, sc, name, kind, &d);
    if (st) return st;
    for (int k = 1; k <= 2; k++)
        if ((st = add_terminal(x, sc, d, x->toks[k]))) return st;
    /* The spec is everything after the two nets, kept as text; the DC value is parsed. */
    const char *cs = x->text + cd->off;
    const char *rest = x->toks[2].s + x->toks[2].n;
    size_t rn = (size_t)(cs + cd->len - rest);
    while (rn && isspace((unsigned char)*rest)) { rest++; rn--; }
    if (rn) {
        if ((st = substitute_exprs(x, cd, rest, rn, &d->value_text))) return st;
    }
    if (x->n_toks >= 4) {
        int32_t i = 3;
        if (slice_is(x->toks[3], "dc")) i = 4;
        if (i < x->n_toks) {
            slice t = x->toks[i];
            double v;
            int keep;
            int numeric = (t.s[0] == '{' || t.s[0] == '\'' || cm_parse_number(t.s, t.n, &v) == 0);
            if (numeric) {
                char w[120];
                snprintf(w, sizeof w, "the DC value of %s '%.*s'", what, tlen(name), name.s);
                if ((st = eval_token(x, cd, t, w, &v, &keep))) return st;
                d->value = v;
            } else if (i == 4) {
                return fail_at(x, cd, CM_ERR_PARSE, "expected a number after 'dc' in %s '%.*s', got '%.*s'", what,
                               tlen(name), name.s, tlen(t), t.s);
            } else if (!(slice_is(t, "ac") || (t.n >= 3 && (memcmp(t.s, "pulse", t.n < 5 ? t.n : 5) == 0 ||
                                                           memcmp(t.s, "sin", 3) == 0 || memcmp(t.s, "pwl", 3) == 0 ||
                                                           memcmp(t.s, "exp", 3) == 0 || memcmp(t.s, "sffm", t.n < 4 ? t.n : 4) == 0 ||
                                                           memcmp(t.s, "am", 2) == 0 || memcmp(t.s, "trrandom", t.n < 8 ? t.n : 8) == 0 ||
                                                           memcmp(t.s, "trnoise", t.n < 7 ? t.n : 7) == 0 ||
                                                           memcmp(t.s, "distof", t.n < 6 ? t.n : 6) == 0)))) {
                return fail_at(x, cd, CM_ERR_PARSE,
                               "unexpected '%.*s' in %s '%.*s'; expected a DC value, DC, AC, PULSE, SIN, PWL, EXP or SFFM",
                               tlen(t), t.s, what, tlen(name), name.s);
            }
        }
    }
    return CM_OK;
}

static cm_status instantiate_subckt(ctx *x, const card *cd, const scope *sc, slice name, int32_t si,
                                    int32_t first_param, int32_t n_nets);

static cm_status instantiate(ctx *x, const card *cd, const scope *sc) {
    const char *s = x->text + cd->off;
    x->cur = cd;
    x->cur_scope = sc;
    cm_status st = tokenize(x, cd, s, (size_t)cd->len, 1);
    if (st) return st;
    if (x->n_toks == 0) return CM_OK;
    slice name = x->toks[0];
    char letter = name.s[0];
    cm_device *d;
    switch (letter) {
    case 'r': case 'c': case 'l': {
        int kind = letter == 'r' ? CM_DEV_RES : letter == 'c' ? CM_DEV_CAP : CM_DEV_IND;
        if (x->n_toks < 3 || is_param_start(x, 1) || is_param_start(x, 2))
            return fail_at(x, cd, CM_ERR_PARSE, "%s '%.*s' needs two nets and a value", kind_word(kind), tlen(name), name.s);
        if ((st = new_device(x, cd, sc, name, kind, &d))) return st;
        for (int k = 1; k <= 2; k++)
            if ((st = add_terminal(x, sc, d, x->toks[k]))) return st;
        int32_t i = 3;
        char what[120];
        snprintf(what, sizeof what, "the value of %s '%.*s'", kind_word(kind), tlen(name), name.s);
        int have_value = 0;
        if (i < x->n_toks && !is_param_start(x, i)) {
            slice t = x->toks[i];
            double v;
            if (t.s[0] == '{' || t.s[0] == '\'' || cm_parse_number(t.s, t.n, &v) == 0 || (frame_lookup(x, t.s, t.n, &v) == 0)) {
                int keep;
                if ((st = eval_token(x, cd, t, what, &v, &keep))) return st;
                d->value = v;
                if (keep && (d->value_text = intern(x, &x->c->strs, t.s, t.n)) < 0) return nomem(x);
                have_value = 1;
                i++;
            } else if (isalpha((unsigned char)t.s[0])) {
                /* a model name (semiconductor R/C), maybe followed by a value */
                if ((st = set_model(x, d, t))) return st;
                i++;
                if (i < x->n_toks && !is_param_start(x, i)) {
                    int keep;
                    if ((st = eval_token(x, cd, x->toks[i], what, &v, &keep))) return st;
                    d->value = v;
                    if (keep && (d->value_text = intern(x, &x->c->strs, x->toks[i].s, x->toks[i].n)) < 0) return nomem(x);
                    have_value = 1;
                    i++;
                }
            } else {
                return fail_at(x, cd, CM_ERR_PARSE, "expected a number or {expression} for %s, got '%.*s'", what,
                               tlen(t), t.s);
            }
        }
        /* "r=1k" / "c=1p" / "l=1n" forms */
        if (!have_value && i + 2 < x->n_toks + 0 + 1 && i + 1 < x->n_toks && slice_is(x->toks[i + 1], "=") &&
            x->toks[i].n == 1 && x->toks[i].s[0] == letter && i + 2 < x->n_toks) {
            double v;
            int keep;
            if ((st = eval_token(x, cd, x->toks[i + 2], what, &v, &keep))) return st;
            d->value = v;
            if (keep && (d->value_text = intern(x, &x->c->strs, x->toks[i + 2].s, x->toks[i + 2].n)) < 0) return nomem(x);
            have_value = 1;
            i += 3;
        }
        if (!have_value && d->model < 0)
            return fail_at(x, cd, CM_ERR_PARSE, "%s '%.*s' has no value", kind_word(kind), tlen(name), name.s);
        return add_params(x, cd, d, i, what + 13);
    }
    case 'm': {
        int32_t npos = 0;
        while (npos < x->n_toks && !is_param_start(x, npos)) npos++;
        if (npos != 6)
            return fail_at(x, cd, CM_ERR_PARSE,
                           "MOSFET '%.*s' needs 4 nets (drain gate source bulk) and a model name; got %d item%s before the parameters",
                           tlen(name), name.s, npos - 1, npos - 1 == 1 ? "" : "s");
        slice m = x->toks[5];
        const char *type = model_type(x, m);
        if (!type)
            return fail_at(x, cd, CM_ERR_PARSE,
                           "MOSFET '%.*s': model '%.*s' has no .model line; add one or pass model_map={'%.*s': 'nmos' or 'pmos'}",
                           tlen(name), name.s, tlen(m), m.s, tlen(m), m.s);
        int kind;
        if (type_is(type, "nmos")) kind = CM_DEV_NMOS;
        else if (type_is(type, "pmos")) kind = CM_DEV_PMOS;
        else
            return fail_at(x, cd, CM_ERR_PARSE, "MOSFET '%.*s': model '%.*s' is of type '%s', expected nmos or pmos",
                           tlen(name), name.s, tlen(m), m.s, type);
        if ((st = new_device(x, cd, sc, name, kind, &d))) return st;
        for (int k = 1; k <= 4; k++)
            if ((st = add_terminal(x, sc, d, x->toks[k]))) return st;
        if ((st = set_model(x, d, m))) return st;
        char what[100];
        snprintf(what, sizeof what, "MOSFET '%.*s'", tlen(name), name.s);
        return add_params(x, cd, d, 6, what);
    }
    case 'd': {
        int32_t npos = 0;
        while (npos < x->n_toks && !is_param_start(x, npos)) npos++;
        if (npos < 4 || npos > 5)
            return fail_at(x, cd, CM_ERR_PARSE, "diode '%.*s' needs 2 nets (anode cathode), a model name and optionally an area",
                           tlen(name), name.s);
        slice m = x->toks[3];
        const char *type = model_type(x, m);
        if (!type)
            return fail_at(x, cd, CM_ERR_PARSE, "diode '%.*s': model '%.*s' has no .model line; add one or pass model_map={'%.*s': 'd'}",
                           tlen(name), name.s, tlen(m), m.s, tlen(m), m.s);
        if (!type_is(type, "d"))
            return fail_at(x, cd, CM_ERR_PARSE, "diode '%.*s': model '%.*s' is of type '%s', expected d", tlen(name), name.s,
                           tlen(m), m.s, type);
        if ((st = new_device(x, cd, sc, name, CM_DEV_DIODE, &d))) return st;
        for (int k = 1; k <= 2; k++)
            if ((st = add_terminal(x, sc, d, x->toks[k]))) return st;
        if ((st = set_model(x, d, m))) return st;
        char what[100];
        snprintf(what, sizeof what, "diode '%.*s'", tlen(name), name.s);
        if (npos == 5) {
            double v;
            int keep;
            if ((st = eval_token(x, cd, x->toks[4], "the diode area", &v, &keep))) return st;
            d->value = v;
            if (keep && (d->value_text = intern(x, &x->c->strs, x->toks[4].s, x->toks[4].n)) < 0) return nomem(x);
        }
        return add_params(x, cd, d, npos, what);
    }
    case 'q': {
        int32_t npos = 0;
        while (npos < x->n_toks && !is_param_start(x, npos)) npos++;
        /* q c b e [sub] model [area]: find the model among positions 4..5. */
        int mpos = -1;
        for (int k = 4; k <= 5 && k < npos; k++)
            if (model_type(x, x->toks[k])) { mpos = k; break; }
        if (npos < 5)
            return fail_at(x, cd, CM_ERR_PARSE,
                           "BJT '%.*s' needs 3 or 4 nets (collector base emitter [substrate]) and a model name",
                           tlen(name), name.s);
        if (mpos < 0) {
            /* name the likely model: the 5th item, or the 6th unless that is a number (an area) */
            double area;
            slice m = x->toks[npos >= 6 && cm_parse_number(x->toks[5].s, x->toks[5].n, &area) != 0 ? 5 : 4];
            return fail_at(x, cd, CM_ERR_PARSE,
                           "BJT '%.*s': model '%.*s' has no .model line; add one or pass model_map={'%.*s': 'npn' or 'pnp'}",
                           tlen(name), name.s, tlen(m), m.s, tlen(m), m.s);
        }
        slice m = x->toks[mpos];
        const char *type = model_type(x, m);
        int kind;
        if (type_is(type, "npn")) kind = CM_DEV_NPN;
        else if (type_is(type, "pnp")) kind = CM_DEV_PNP;
        else
            return fail_at(x, cd, CM_ERR_PARSE, "BJT '%.*s': model '%.*s' is of type '%s', expected npn or pnp", tlen(name),
                           name.s, tlen(m), m.s, type);
        if (npos > mpos + 2)
            return fail_at(x, cd, CM_ERR_PARSE, "unexpected '%.*s' in BJT '%.*s'", tlen(x->toks[mpos + 2]),
                           x->toks[mpos + 2].s, tlen(name), name.s);
        if ((st = new_device(x, cd, sc, name, kind, &d))) return st;
        for (int k = 1; k < mpos; k++)
            if ((st = add_terminal(x, sc, d, x->toks[k]))) return st;
        if ((st = set_model(x, d, m))) return st;
        if (npos == mpos + 2) {
            double v;
            int keep;
            if ((st = eval_token(x, cd, x->toks[mpos + 1], "the BJT area", &v, &keep))) return st;
            d->value = v;
            if (keep && (d->value_text = intern(x, &x->c->strs, x->toks[mpos + 1].s, x->toks[mpos + 1].n)) < 0)
                return nomem(x);
        }
        char what[100];
        snprintf(what, sizeof what, "BJT '%.*s'", tlen(name), name.s);
        return add_params(x, cd, d, npos, what);
    }
    case 'v': return read_source_device(x, cd, sc, name, CM_DEV_VSRC);
    case 'i': return read_source_device(x, cd, sc, name, CM_DEV_ISRC);
    case 'e': case 'g': case 'f': case 'h': {
        int voltage_ctrl = letter == 'e' || letter == 'g';
        int kind = letter == 'e' ? CM_DEV_VCVS : letter == 'g' ? CM_DEV_VCCS : letter == 'f' ? CM_DEV_CCCS : CM_DEV_CCVS;
        int need = voltage_ctrl ? 6 : 5;
        for (int k = 3; k < x->n_toks && k < 5; k++) {
            slice t = x->toks[k];
            if (slice_is(t, "value") || slice_is(t, "poly") || slice_is(t, "table") || slice_is(t, "vol") ||
                slice_is(t, "cur") || slice_is(t, "laplace"))
                return fail_at(x, cd, CM_ERR_UNSUPPORTED,
                               "controlled source '%.*s': the %.*s form is not supported; circml reads linear %c sources (%s)",
                               tlen(name), name.s, tlen(t), t.s, toupper((unsigned char)letter),
                               voltage_ctrl ? "n+ n- nc+ nc- gain" : "n+ n- vsense gain");
        }
        int32_t npos = 0;
        while (npos < x->n_toks && !is_param_start(x, npos)) npos++;
        if (npos != need)
            return fail_at(x, cd, CM_ERR_PARSE, "controlled source '%.*s' needs %s", tlen(name), name.s,
                           voltage_ctrl ? "4 nets (n+ n- nc+ nc-) and a gain" : "2 nets (n+ n-), a sensing V source and a gain");
        if ((st = new_device(x, cd, sc, name, kind, &d))) return st;
        int nn = voltage_ctrl ? 4 : 2;
        for (int k = 1; k <= nn; k++)
            if ((st = add_terminal(x, sc, d, x->toks[k]))) return st;
        if (!voltage_ctrl) {
            slice v = x->toks[3];
            if (v.s[0] != 'v')
                return fail_at(x, cd, CM_ERR_PARSE, "controlled source '%.*s': '%.*s' is not a voltage source name",
                               tlen(name), name.s, tlen(v), v.s);
            size_t fl = 0;
            if ((st = flat_name(x, sc, v, &fl))) return st;
            if ((d->control = intern(x, &x->c->strs, x->scratch2, fl)) < 0) return nomem(x);
        }
        char what[100];
        snprintf(what, sizeof what, "the gain of '%.*s'", tlen(name), name.s);
        double v;
        int keep;
        if ((st = eval_token(x, cd, x->toks[need - 1], what, &v, &keep))) return st;
        d->value = v;
        if (keep && (d->value_text = intern(x, &x->c->strs, x->toks[need - 1].s, x->toks[need - 1].n)) < 0) return nomem(x);
        return add_params(x, cd, d, need, what + 12);
    }
    case 'x': {
        int32_t npos = 0;
        while (npos < x->n_toks && !is_param_start(x, npos)) npos++;
        int32_t last = npos - 1;
        if (last >= 1 && slice_is(x->toks[last], "params:")) last--;
        if (last < 1)
            return fail_at(x, cd, CM_ERR_PARSE, "instance '%.*s' needs its nets and a subcircuit name", tlen(name), name.s);
        slice sub = x->toks[last];
        int32_t si = cm_strtab_find(&x->subnames, sub.s, sub.n);
        if (si < 0) {
            /* PDKs often wrap transistors in subcircuits: the caller's model map may say what it is. */
            const char *type = model_type(x, sub);
            int kind = !type ? -1 : type_is(type, "nmos") ? CM_DEV_NMOS : type_is(type, "pmos") ? CM_DEV_PMOS
                     : type_is(type, "npn") ? CM_DEV_NPN : type_is(type, "pnp") ? CM_DEV_PNP
                     : type_is(type, "d") ? CM_DEV_DIODE : -1;
            if (kind >= 0) {
                int nn = last - 1;
                int bjt = kind == CM_DEV_NPN || kind == CM_DEV_PNP;
                if (kind == CM_DEV_DIODE ? nn != 2 : bjt ? (nn != 3 && nn != 4) : nn != 4)
                    return fail_at(x, cd, CM_ERR_PARSE, "instance '%.*s' of '%.*s' (model type %s) connects %d net%s; it needs %s",
                                   tlen(name), name.s, tlen(sub), sub.s, type, nn, nn == 1 ? "" : "s",
                                   kind == CM_DEV_DIODE ? "2 (anode cathode)"
                                   : bjt ? "3 or 4 (collector base emitter [substrate])" : "4 (drain gate source bulk)");
                if ((st = new_device(x, cd, sc, name, kind, &d))) return st;
                for (int k = 1; k <= nn; k++)
                    if ((st = add_terminal(x, sc, d, x->toks[k]))) return st;
                if ((st = set_model(x, d, sub))) return st;
                char what[100];
                snprintf(what, sizeof what, "%s '%.*s'", kind == CM_DEV_DIODE ? "diode" : bjt ? "BJT" : "MOSFET",
                         tlen(name), name.s);
                return add_params(x, cd, d, npos, what);
            }
            return fail_at(x, cd, CM_ERR_PARSE,
                           "instance '%.*s' uses unknown subcircuit '%.*s' (no .subckt defines it and model_map does not name it)",
                           tlen(name), name.s, tlen(sub), sub.s);
        }
        return instantiate_subckt(x, cd, sc, name, si, npos, last - 1);
    }
    case 'b':
        return fail_at(x, cd, CM_ERR_UNSUPPORTED, "element '%.*s': behavioural sources (B) are not supported", tlen(name), name.s);
    case 'k':
        return fail_at(x, cd, CM_ERR_UNSUPPORTED, "element '%.*s': coupled inductors (K) are not supported", tlen(name), name.s);
    case 'j':
        return fail_at(x, cd, CM_ERR_UNSUPPORTED, "element '%.*s': JFETs (J) are not supported", tlen(name), name.s);
    case 's': case 'w':
        return fail_at(x, cd, CM_ERR_UNSUPPORTED, "element '%.*s': switches (S/W) are not supported", tlen(name), name.s);
    case 't': case 'o': case 'u': case 'y': case 'p':
        return fail_at(x, cd, CM_ERR_UNSUPPORTED, "element '%.*s': transmission lines are not supported", tlen(name), name.s);
    case 'a': case 'n': case 'z':
        return fail_at(x, cd, CM_ERR_UNSUPPORTED, "element '%.*s': XSPICE/OSDI/MESFET devices are not supported", tlen(name),
                       name.s);
    default:
        return fail_at(x, cd, CM_ERR_PARSE,
                       "expected a device (R C L D M Q V I E G F H X) or a dot-command, got '%.*s'", tlen(name), name.s);
    }
}

/* Tokens [0, n_nets] of the X card are name + nets; tokens from first_param are overrides. */
static cm_status instantiate_subckt(ctx *x, const card *cd, const scope *sc, slice name, int32_t si,
                                    int32_t first_param, int32_t n_nets) {
    subckt_def *def = &x->subs[si];
    const char *subname = cm_strtab_get(&x->c->strs, def->name);
    if (def->active)
        return fail_at(x, cd, CM_ERR_PARSE, "subcircuit '%s' instantiates itself (through instance '%.*s')", subname,
                       tlen(name), name.s);
    if (x->depth + 1 > (x->opt->max_depth > 0 ? x->opt->max_depth : 64))
        return fail_at(x, cd, CM_ERR_PARSE, "subcircuits nested deeper than %d", x->opt->max_depth > 0 ? x->opt->max_depth : 64);
    if (n_nets != def->n_ports)
        return fail_at(x, cd, CM_ERR_PARSE, "instance '%.*s' connects %d net%s but subcircuit '%s' has %d port%s (defined at %s:%d)",
                       tlen(name), name.s, n_nets, n_nets == 1 ? "" : "s", subname, def->n_ports,
                       def->n_ports == 1 ? "" : "s", file_name(x, def->file), def->line);
    cm_status st = CM_OK;
    /* Everything below outlives the token buffer, which nested cards reuse: copy out. */
    int32_t *port_nets = malloc(sizeof(int32_t) * (size_t)(n_nets ? n_nets : 1));
    char *path = malloc(sc->path_len + name.n + 2);
    if (!port_nets || !path) { free(port_nets); free(path); return nomem(x); }
    for (int32_t k = 0; k < n_nets && !st; k++) st = resolve_net(x, sc, x->toks[1 + k], &port_nets[k]);
    size_t pl = 0;
    if (sc->path_len) { memcpy(path, sc->path, sc->path_len); path[sc->path_len] = '.'; pl = sc->path_len + 1; }
    memcpy(path + pl, name.s, name.n);
    pl += name.n;
    int32_t frame_begin = x->n_frame;
    /* Instance overrides are evaluated in the caller's scope, before the new frame exists. */
    int32_t n_over = 0;
    for (int32_t i = first_param; i < x->n_toks && !st;) {
        slice k = x->toks[i];
        if (slice_is(k, "params:")) { i++; continue; }
        if (i + 2 >= x->n_toks || !slice_is(x->toks[i + 1], "=")) {
            st = fail_at(x, cd, CM_ERR_PARSE, "unexpected '%.*s' in instance '%.*s'; expected name=value parameters", tlen(k),
                         k.s, tlen(name), name.s);
            break;
        }
        double v;
        int keep;
        char what[120];
        snprintf(what, sizeof what, "parameter '%.*s' of instance '%.*s'", tlen(k), k.s, tlen(name), name.s);
        st = eval_token(x, cd, x->toks[i + 2], what, &v, &keep);
        if (st) break;
        if (x->n_frame >= x->cap_frame) {
            int32_t nc = x->cap_frame ? x->cap_frame * 2 : 64;
            frame_param *nf = realloc(x->frame, sizeof *nf * (size_t)nc);
            if (!nf) { st = nomem(x); break; }
            x->frame = nf;
            x->cap_frame = nc;
        }
        frame_param *fp = &x->frame[x->n_frame++];
        fp->name = intern(x, &x->c->strs, k.s, k.n);
        fp->value = v;
        fp->text = -1;
        if (fp->name < 0) { st = nomem(x); break; }
        n_over++;
        i += 3;
    }
    scope inner = {path, pl, x->sub_ports + def->port_begin, port_nets, def->n_ports, frame_begin, x->n_frame};
    /* Defaults not overridden, evaluated in the subcircuit's own scope (globals + earlier params). */
    for (int32_t p = 0; p < def->n_params && !st; p++) {
        name_text nt = x->sub_params[def->param_begin + p];
        int overridden = 0;
        for (int32_t q = frame_begin; q < frame_begin + n_over; q++)
            if (x->frame[q].name == nt.name) overridden = 1;
        if (overridden) continue;
        const char *tx = cm_strtab_get(&x->c->strs, nt.text);
        slice t = {tx, strlen(tx)};
        card dc = {0, 0, def->file, def->line};
        x->cur_scope = &inner;
        double v;
        int keep;
        char what[160];
        snprintf(what, sizeof what, "parameter '%s' of subcircuit '%s'", cm_strtab_get(&x->c->strs, nt.name), subname);
        st = eval_token(x, &dc, t, what, &v, &keep);
        if (st) break;
        if (x->n_frame >= x->cap_frame) {
            int32_t nc = x->cap_frame ? x->cap_frame * 2 : 64;
            frame_param *nf = realloc(x->frame, sizeof *nf * (size_t)nc);
            if (!nf) { st = nomem(x); break; }
            x->frame = nf;
            x->cap_frame = nc;
        }
        frame_param *fp = &x->frame[x->n_frame++];
        fp->name = nt.name;
        fp->value = v;
        fp->text = -1;
        inner.frame_end = x->n_frame;
    }
    if (!st) {
        def->active = 1;
        x->depth++;
        for (int32_t ci = def->card_begin; ci < def->card_end && !st; ci++) {
            const card *bc = &x->cards[ci];
            const char *bs = x->text + bc->off;
            if (bs[0] == '.') {
                /* .param inside a subcircuit: local parameters, evaluated per instance */
                size_t fw = first_word(bs, (size_t)bc->len);
                if (word_is(bs, fw, ".param") || word_is(bs, fw, ".params"))
                    st = read_param_card(x, bc, bs + fw, (size_t)bc->len - fw, 0, &inner);
                continue;
            }
            st = instantiate(x, bc, &inner);
        }
        x->depth--;
        def->active = 0;
    }
    x->n_frame = frame_begin;
    free(port_nets);
    free(path);
    x->cur_scope = sc;
    return st;
}

/* ------------------------------------------------------------------ stage 2: definitions */

static cm_status add_global_param(ctx *x, const card *cd, slice k, slice v) {
    cm_circuit *c = x->c;
    double val;
    int keep;
    x->cur_scope = NULL;
    char what[120];
    snprintf(what, sizeof what, ".param '%.*s'", tlen(k), k.s);
    cm_status st = eval_token(x, cd, v, what, &val, &keep);
    if (st) return st;
    for (int i = 0; i < x->opt->n_overrides; i++) {
        const char *o = x->opt->override_names[i];
        if (strlen(o) == k.n && memcmp(o, k.s, k.n) == 0) {
            val = x->opt->override_values[i];
            keep = 0;
            x->override_used[i] = 1;
        }
    }
    CM_GROW(c->globals, c->n_globals, c->cap_globals, 16);
    cm_param *p = &c->globals[c->n_globals];
    p->name = intern(x, &c->strs, k.s, k.n);
    p->value = val;
    p->text = keep ? intern(x, &c->strs, v.s, v.n) : -1;
    if (p->name < 0 || (keep && p->text < 0)) return nomem(x);
    c->n_globals++;
    return CM_OK;
}

/* A .param of a subcircuit body: evaluated per instance, in its scope, onto its frame. */
static cm_status add_local_param(ctx *x, const card *cd, scope *local, slice k, slice v) {
    double val;
    int keep;
    x->cur_scope = local;
    char what[120];
    snprintf(what, sizeof what, ".param '%.*s'", tlen(k), k.s);
    cm_status st = eval_token(x, cd, v, what, &val, &keep);
    if (st) return st;
    CM_GROW(x->frame, x->n_frame, x->cap_frame, 64);
    frame_param *fp = &x->frame[x->n_frame++];
    fp->name = intern(x, &x->c->strs, k.s, k.n);
    fp->value = val;
    fp->text = -1;
    if (fp->name < 0) return nomem(x);
    local->frame_end = x->n_frame;
    return CM_OK;
}

/* .param a=1 b={a*2} c = a*3 d=a*4: a value runs until the next "name =". top: define global
 * parameters; else with `local`, parameters of that subcircuit instance; else check syntax only. */
static cm_status read_param_card(ctx *x, const card *cd, const char *s, size_t n, int top, scope *local) {
    cm_status st = tokenize(x, cd, s, n, 0);
    if (st) return st;
    if (x->n_toks == 0) return fail_at(x, cd, CM_ERR_PARSE, ".param needs name=value");
    int32_t i = 0;
    while (i < x->n_toks) {
        if (i + 2 > x->n_toks || !slice_is(x->toks[i + 1], "=") || i + 2 >= x->n_toks)
            return fail_at(x, cd, CM_ERR_PARSE, "expected name=value in .param, got '%.*s'", tlen(x->toks[i]), x->toks[i].s);
        slice k = x->toks[i];
        if (!(isalpha((unsigned char)k.s[0]) || k.s[0] == '_'))
            return fail_at(x, cd, CM_ERR_PARSE, "bad parameter name '%.*s' in .param", tlen(k), k.s);
        int32_t j = i + 2;
        while (j + 1 < x->n_toks && !slice_is(x->toks[j + 1], "=")) j++;
        if (j + 1 < x->n_toks) j--;   /* toks[j+1] is the next name */
        if (j < i + 2)   /* ".param a= b =1": b is the next name, a has no value */
            return fail_at(x, cd, CM_ERR_PARSE, "parameter '%.*s' in .param has no value", tlen(k), k.s);
        slice v;
        v.s = x->toks[i + 2].s;
        v.n = (size_t)(x->toks[j].s + x->toks[j].n - v.s);
        double num;
        if (j > i + 2 || (v.s[0] != '{' && v.s[0] != '\'' && cm_parse_number(v.s, v.n, &num) != 0)) {
            /* a bare expression (a*2, or a * 2 over several tokens): evaluate as if braced */
            char *tmp = malloc(v.n + 3);
            if (!tmp) return nomem(x);
            tmp[0] = '{';
            memcpy(tmp + 1, v.s, v.n);
            tmp[v.n + 1] = '}';
            slice bv = {tmp, v.n + 2};
            st = top ? add_global_param(x, cd, k, bv) : local ? add_local_param(x, cd, local, k, bv) : CM_OK;
            free(tmp);
            if (st) return st;
            /* tokenize was clobbered by nothing: add_global_param does not tokenize */
        } else if (top) {
            if ((st = add_global_param(x, cd, k, v))) return st;
        } else if (local) {
            if ((st = add_local_param(x, cd, local, k, v))) return st;
        }
        i = j + 1;
    }
    return CM_OK;
}

static cm_status read_model_card(ctx *x, const card *cd, const char *s, size_t n) {
    cm_circuit *c = x->c;
    cm_status st = tokenize(x, cd, s, n, 1);
    if (st) return st;
    if (x->n_toks < 2) return fail_at(x, cd, CM_ERR_PARSE, ".model needs a name and a type (nmos, pmos, npn, pnp, d, ...)");
    slice name = x->toks[0], type = x->toks[1];
    if (is_param_start(x, 0) || is_param_start(x, 1))
        return fail_at(x, cd, CM_ERR_PARSE, ".model needs a name and a type (nmos, pmos, npn, pnp, d, ...)");
    int inserted;
    int32_t mi = cm_strtab_intern(&x->modelnames, name.s, name.n, &inserted);
    if (mi < 0) return nomem(x);
    if (!inserted)
        return fail_at(x, cd, CM_ERR_PARSE, "model '%.*s' defined twice (first at %s:%d)", tlen(name), name.s,
                       file_name(x, x->model_def_file[mi]), x->model_def_line[mi]);
    /* Normalise the parameters to "k=v k=v" so writing back is canonical. */
    size_t cap = n + 16, bl = 0;
    char *buf = malloc(cap);
    if (!buf) return nomem(x);
    for (int32_t i = 2; i < x->n_toks; i++) {
        slice t = x->toks[i];
        int is_eq = slice_is(t, "=");
        int next_eq = i + 1 < x->n_toks && slice_is(x->toks[i + 1], "=");
        if (bl && !is_eq && !(i > 2 && slice_is(x->toks[i - 1], "="))) buf[bl++] = ' ';
        memcpy(buf + bl, t.s, t.n);
        bl += t.n;
        (void)next_eq;
        if (is_eq && (i + 1 >= x->n_toks || slice_is(x->toks[i + 1], "="))) {
            free(buf);
            return fail_at(x, cd, CM_ERR_PARSE, "model '%.*s': a parameter has no value", tlen(name), name.s);
        }
    }
    CM_GROW(c->models, c->n_models, c->cap_models, 16);
    if (c->n_models + 1 > 0) {
        int32_t nm = c->cap_models;
        int32_t *f = realloc(x->model_def_file, sizeof *f * (size_t)nm);
        if (!f) { free(buf); return nomem(x); }
        x->model_def_file = f;
        int32_t *l = realloc(x->model_def_line, sizeof *l * (size_t)nm);
        if (!l) { free(buf); return nomem(x); }
        x->model_def_line = l;
    }
    cm_model *m = &c->models[c->n_models];
    m->name = intern(x, &c->strs, name.s, name.n);
    m->type = intern(x, &c->strs, type.s, type.n);
    m->text = intern(x, &c->strs, buf, bl);
    free(buf);
    if (m->name < 0 || m->type < 0 || m->text < 0) return nomem(x);
    x->model_def_file[c->n_models] = cd->file;
    x->model_def_line[c->n_models] = cd->line;
    c->n_models++;
    return CM_OK;
}

static cm_status read_subckt_header(ctx *x, const card *cd, const char *s, size_t n, int32_t body_begin) {
    cm_status st = tokenize(x, cd, s, n, 1);
    if (st) return st;
    if (x->n_toks < 1 || is_param_start(x, 0)) return fail_at(x, cd, CM_ERR_PARSE, ".subckt needs a name");
    slice name = x->toks[0];
    int inserted;
    int32_t si = cm_strtab_intern(&x->subnames, name.s, name.n, &inserted);
    if (si < 0) return nomem(x);
    if (!inserted)
        return fail_at(x, cd, CM_ERR_PARSE, "subcircuit '%.*s' defined twice (first at %s:%d)", tlen(name), name.s,
                       file_name(x, x->subs[si].file), x->subs[si].line);
    CM_GROW(x->subs, x->n_subs, x->cap_subs, 16);
    subckt_def *d = &x->subs[x->n_subs++];
    memset(d, 0, sizeof *d);
    d->name = intern(x, &x->c->strs, name.s, name.n);
    if (d->name < 0) return nomem(x);
    d->file = cd->file;
    d->line = cd->line;
    d->port_begin = x->n_sub_ports;
    d->param_begin = x->n_sub_params;
    d->card_begin = body_begin;
    int32_t i = 1;
    for (; i < x->n_toks; i++) {
        slice t = x->toks[i];
        if (slice_is(t, "params:") || is_param_start(x, i)) break;
        if (t.s[0] == '{' || t.s[0] == '\'')
            return fail_at(x, cd, CM_ERR_PARSE, "bad port name '%.*s' in .subckt %.*s", tlen(t), t.s, tlen(name), name.s);
        for (int32_t q = d->port_begin; q < x->n_sub_ports; q++) {
            const char *p = cm_strtab_get(&x->c->strs, x->sub_ports[q]);
            if (strlen(p) == t.n && memcmp(p, t.s, t.n) == 0)
                return fail_at(x, cd, CM_ERR_PARSE, "port '%.*s' listed twice in .subckt %.*s", tlen(t), t.s, tlen(name),
                               name.s);
        }
        CM_GROW(x->sub_ports, x->n_sub_ports, x->cap_sub_ports, 64);
        x->sub_ports[x->n_sub_ports] = intern(x, &x->c->strs, t.s, t.n);
        if (x->sub_ports[x->n_sub_ports] < 0) return nomem(x);
        x->n_sub_ports++;
        d->n_ports++;
    }
    for (; i < x->n_toks;) {
        slice t = x->toks[i];
        if (slice_is(t, "params:")) { i++; continue; }
        if (i + 2 >= x->n_toks || !slice_is(x->toks[i + 1], "=") || slice_is(x->toks[i + 2], "="))
            return fail_at(x, cd, CM_ERR_PARSE, "expected name=value parameters after the ports of .subckt %.*s, got '%.*s'",
                           tlen(name), name.s, tlen(t), t.s);
        CM_GROW(x->sub_params, x->n_sub_params, x->cap_sub_params, 64);
        name_text *nt = &x->sub_params[x->n_sub_params];
        nt->name = intern(x, &x->c->strs, t.s, t.n);
        nt->text = intern(x, &x->c->strs, x->toks[i + 2].s, x->toks[i + 2].n);
        if (nt->name < 0 || nt->text < 0) return nomem(x);
        x->n_sub_params++;
        d->n_params++;
        i += 3;
    }
    return CM_OK;
}

static int is_directive_kept(const char *w, size_t n) {
    static const char *const kept[] = {".option", ".options", ".opt", ".temp", ".op", ".ac", ".dc", ".tran", ".noise",
                                       ".save", ".print", ".plot", ".meas", ".measure", ".ic", ".nodeset", ".four",
                                       ".probe", ".tf", ".pz", ".disto", ".sens", ".width", ".func", ".csparam",
                                       ".title", ".step", ".data", ".endd", ".sp", NULL};
    for (int i = 0; kept[i]; i++)
        if (word_is(w, n, kept[i])) return 1;
    return 0;
}

static cm_status collect(ctx *x) {
    cm_circuit *c = x->c;
    int32_t open_sub = -1;       /* card index of the open .subckt */
    int32_t open_idx = -1;
    cm_status st;
    for (int32_t ci = 0; ci < x->n_cards; ci++) {
        const card *cd = &x->cards[ci];
        const char *s = x->text + cd->off;
        size_t n = (size_t)cd->len;
        x->cur = cd;
        if (s[0] != '.') {
            if (open_sub < 0) {
                CM_GROW(x->top_cards, x->n_top, x->cap_top, 1024);
                x->top_cards[x->n_top++] = ci;
            }
            continue;
        }
        size_t fw = first_word(s, n);
        const char *rest = s + fw;
        size_t rn = n - fw;
        if (word_is(s, fw, ".subckt") || word_is(s, fw, ".macro")) {
            if (open_sub >= 0)
                return fail_at(x, cd, CM_ERR_UNSUPPORTED,
                               "nested .subckt definitions are not supported (the .subckt at line %d is still open)",
                               x->cards[open_sub].line);
            if ((st = read_subckt_header(x, cd, rest, rn, ci + 1))) return st;
            open_sub = ci;
            open_idx = x->n_subs - 1;
        } else if (word_is(s, fw, ".ends") || word_is(s, fw, ".eom")) {
            if (open_sub < 0) return fail_at(x, cd, CM_ERR_PARSE, ".ends without a .subckt");
            x->subs[open_idx].card_end = ci;
            open_sub = -1;
        } else if (word_is(s, fw, ".model")) {
            if ((st = read_model_card(x, cd, rest, rn))) return st;
        } else if (word_is(s, fw, ".param") || word_is(s, fw, ".params")) {
            if (open_sub < 0) {
                if ((st = read_param_card(x, cd, rest, rn, 1, NULL))) return st;
            } else {
                if ((st = read_param_card(x, cd, rest, rn, 0, NULL))) return st;   /* syntax check; values per instance */
            }
        } else if (word_is(s, fw, ".global")) {
            if ((st = tokenize(x, cd, rest, rn, 1))) return st;
            if (x->n_toks == 0) return fail_at(x, cd, CM_ERR_PARSE, ".global needs at least one net name");
            for (int32_t i = 0; i < x->n_toks; i++) {
                int32_t net = intern(x, &c->nets, x->toks[i].s, x->toks[i].n);
                if (net < 0) return nomem(x);
                CM_GROW(c->global_nets, c->n_global_nets, c->cap_global_nets, 8);
                c->global_nets[c->n_global_nets++] = net;
            }
        } else if (word_is(s, fw, ".if") || word_is(s, fw, ".elseif") || word_is(s, fw, ".else") ||
                   word_is(s, fw, ".endif")) {
            return fail_at(x, cd, CM_ERR_UNSUPPORTED, "%.*s is not supported", (int)fw, s);
        } else if (is_directive_kept(s, fw)) {
            if (open_sub >= 0)
                return fail_at(x, cd, CM_ERR_UNSUPPORTED, "%.*s inside a .subckt is not supported", (int)fw, s);
            int32_t id = intern(x, &c->strs, s, n);
            if (id < 0) return nomem(x);
            CM_GROW(c->directives, c->n_directives, c->cap_directives, 8);
            c->directives[c->n_directives++] = id;
        } else {
            return fail_at(x, cd, CM_ERR_PARSE, "unknown dot-command '%.*s'", fw > 40 ? 40 : (int)fw, s);
        }
    }
    if (open_sub >= 0)
        return fail_at(x, &x->cards[open_sub], CM_ERR_PARSE, ".subckt %s has no matching .ends",
                       cm_strtab_get(&c->strs, x->subs[open_idx].name));
    return CM_OK;
}

/* ------------------------------------------------------------------ the fast reader
 *
 * The same reading, organised for large flat netlists and run on OpenMP threads. Sizes:
 * K chunks per round (one per thread), D devices, N nets.
 * 1. Lines. read_lines reads the title and every line that changes its state (.include,
 *    .lib, .endl, .control, .end, a stray '+', a NUL byte: fast_special); the plain lines
 *    between are read in rounds: the text is cut into K chunks at lines that start with a
 *    letter (each chunk starts with a card), and each chunk, in parallel, turns its lines into
 *    cards and lowercased text exactly as read_lines does, until its first state line. The
 *    element cards of the plain forms
 *      R/C/L name n1 n2 number [k=number ...]      M name d g s b model [k=number ...]
 *    are pre-read on the way: tokens, numbers, and ids of their nets, model and parameter
 *    names in tables of their chunk (first occurrence within the chunk).
 * 2. collect(), as in the reference.
 * 3. Top-level cards, in three passes. A (parallel over chunks): each chunk's top-level cards
 *    fall into runs of plain cards, each ended by one other card; per run, the chunk-local
 *    names that the run uses first. B (serial, card order): per run, those names get global
 *    ids (so ids are by first occurrence over the whole netlist) and the run its place among
 *    the devices; device names are inserted (duplicates checked); the other card is read by
 *    instantiate(). C (parallel): devices, terminals and parameters are written where B put
 *    them, while one thread inserts the device names of the runs after the last instantiate().
 * The result does not depend on K. Buffers are sized from counts of each chunk's lines and
 * '=' signs, not grown card by card; the parameters are written once, into what becomes
 * circuit.params when no card goes to instantiate() (fast_plan). On any failure
 * cm_circuit_parse reads the netlist again with the reference reader, so that errors are the
 * reference's, word for word.
 * Keep fast_card in step with instantiate() and add_params() for the forms it accepts. */

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct { uint32_t off, len, hash; } ftok;   /* a token: offset in its card's text, length, hash */

enum { FK_NONE = 0, FK_RES, FK_CAP, FK_IND, FK_MOS };

typedef struct {           /* a pre-read card: one per line, so kept to 32 bytes (no name hash) */
    uint8_t form;          /* FK_*; FK_NONE: instantiate() reads the card */
    uint8_t use;           /* pass A: a plain top-level card, for passes B and C */
    uint8_t n_nets;
    int8_t kind;           /* cm_device_kind, set by pass A */
    uint16_t n_params;     /* its parameters follow those of the cards before it in fchunk.prm */
    uint16_t name_len;     /* its name is its first token, at offset 0 of its text */
    int32_t net[4];        /* local ids in fchunk.nets */
    union {
        double value;      /* R, C, L */
        int32_t model;     /* MOS (value NaN): local id in fchunk.strs */
    } u;
} frec;
_Static_assert(sizeof(frec) == 32, "frec: one per line of the netlist, keep it small");


typedef struct {           /* a run of cards of one chunk, then maybe one card for instantiate() */
    int32_t card_end;      /* chunk-local cards [end of the previous run, card_end) */
    int32_t other;         /* global index of the card read by instantiate() after the run, or -1 */
    int32_t net_end, str_end;          /* the run's first-used local ids end here in fchunk.first_* */
    int32_t n_dev;
    int64_t n_term, n_param, name_bytes;
    int32_t dev_base;                  /* pass B: where the run's devices, terminals and */
    int64_t term_base, param_base;     /* parameters go */
} fseg;

typedef struct {
    size_t begin, end;     /* input bytes [begin, end) */
    size_t stop;           /* first byte not read here (end, or a line left to read_lines) */
    size_t out_end;        /* end of this chunk's lowercased text in ctx.text */
    int64_t max_lines, max_params;   /* counts of '\n' and '=' in the chunk, + 1 */
    int32_t lines;         /* lines read */
    cm_status st;
    card *cards;           /* [max_lines] in ctx.cards; lines counted from the chunk's start */
    int32_t n_cards;
    int32_t card_base;     /* global index of the chunk's first card (after compaction) */
    frec *recs;            /* [max_lines] */
    cm_param *prm;         /* [max_params] parameters, names as local ids in strs, in the round's
                           * buffer (see fast_round): where possible it becomes circuit.params */
    cm_param *prm_owner;   /* the round's buffer, held by the round's first chunk (else NULL) */
    int64_t prm_at;        /* where prm starts in the round's buffer */
    int64_t n_params;
    ftok *toks[2]; int32_t cap_toks[2], n_toks[2];   /* tokens of the last card and of the line being
                           * read (n_toks -1: the card holds a character left to the reference) */
    int cur;               /* toks[cur]: the line being read */
    int extended;          /* the last card took '+' lines: tokenise its whole text again */
    int64_t last_len;      /* length of the last card's text when pre-read: read_lines may extend it
                           * (a '+' line past an .endl); no other card changes after */
    cm_strtab nets, strs;  /* local tables: net names; models and parameter names */
    struct { const char *s; uint32_t len; int32_t id; } last[9];   /* model, parameter names of the last card */
    struct { int32_t card, n; const char *s[4]; uint32_t len[4], hash[4]; } pend;   /* nets of the last
                           * plain card: interned one card later, their slots prefetched meanwhile */
    int32_t *first_net, *first_str;   /* pass A: local ids in order of first use by plain top-level cards */
    int32_t *net_map, *str_map;       /* local id -> global id (pass B); pass A: -1 = not used yet */
    fseg *segs; int32_t n_segs, cap_segs;
} fchunk;

typedef struct {
    uint8_t lower[256];    /* tolower and isspace of the current locale, as the reference uses */
    uint8_t space[256];
    uint8_t cls[256];      /* tokens: 0 plain, 1 separator, 2 '=', 3 a character left to the reference */
    int ascii_lower;       /* tolower maps ASCII as in the C locale (the copy may then skip the table) */
    int c_space;           /* isspace is the C locale's (\t \n \v \f \r and ' ', no byte >= 0x80):
                            * tokens may then be found 16 bytes at a time */
    uint32_t ground_hash;
} ftables;

typedef struct {
    fchunk *ch; int n_ch;  /* in card order; cards between chunks were read by read_lines */
    int defer_chunk, defer_seg;   /* device names from this run (and card) on: inserted with pass C */
    int32_t defer_card, last_other;
    int c_in_order;        /* pass C over the chunks one after the other (parameters in place) */
    ftables tb;
} fast_state;

static void fast_tables(ftables *tb) {
    for (int c = 0; c < 256; c++) {
        tb->lower[c] = (uint8_t)tolower(c);
        tb->space[c] = isspace(c) != 0;
        tb->cls[c] = tb->space[c] || c == '(' || c == ')' || c == ',' ? 1 : c == '=' ? 2
                   : c == '{' || c == '}' || c == '\'' ? 3 : 0;
    }
    tb->ascii_lower = 1;
    for (int c = 0; c < 128; c++)
        if (tb->lower[c] != (c >= 'A' && c <= 'Z' ? c + 32 : c)) tb->ascii_lower = 0;
    tb->c_space = 1;
    for (int c = 0; c < 256; c++)
        if (tb->space[c] != ((c >= 9 && c <= 13) || c == ' ')) tb->c_space = 0;
    tb->ground_hash = cm_hash_bytes("0", 1);
}

/* o[0:n] = w[0:n] lowercased, as append_text does. ASCII text (nearly always) takes a loop
 * the compiler vectorises; other bytes go through the locale's table. */
static void fast_lower(char *o, const char *w, size_t n, const ftables *tb) {
    if (tb->ascii_lower) {
        unsigned char high = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)w[i];
            high |= c;
            o[i] = (char)(c + ((unsigned char)(c - 'A') < 26 ? 32 : 0));
        }
        if (high < 0x80) return;
    }
    for (size_t i = 0; i < n; i++) o[i] = (char)tb->lower[(uint8_t)w[i]];
}

static void fast_free(fast_state *f) {
    for (int k = 0; k < f->n_ch; k++) {
        fchunk *ch = &f->ch[k];
        free(ch->recs); free(ch->prm_owner); free(ch->toks[0]); free(ch->toks[1]);
        cm_strtab_free(&ch->nets); cm_strtab_free(&ch->strs);
        free(ch->first_net); free(ch->first_str); free(ch->net_map); free(ch->str_map); free(ch->segs);
    }
    free(f->ch);
    memset(f, 0, sizeof *f);
}

/* Is the first word of a card line one that changes read_lines' state? */
static int fast_special(const char *w, size_t fw) {
    return word_is(w, fw, ".end") || word_is(w, fw, ".endl") || word_is(w, fw, ".control") ||
           word_is(w, fw, ".include") || word_is(w, fw, ".inc") || word_is(w, fw, ".lib");
}

/* Room for one more token in buffer b. */
static int fast_tok_room(fchunk *ch, int b, int32_t nt) {
    if (nt < ch->cap_toks[b]) return 0;
    int32_t nc = ch->cap_toks[b] ? ch->cap_toks[b] * 2 : 64;   /* amortised: the longest card so far */
    while (nc <= nt) nc *= 2;
    ftok *t = realloc(ch->toks[b], sizeof *t * (size_t)nc);
    if (!t) return -1;
    ch->toks[b] = t;
    ch->cap_toks[b] = nc;
    return 0;
}

/* Split s[0:n] into tokens (buffer b) as tokenize(parens_split = 1) does; -1 when the card
 * holds '{', '}' or a quote (expressions: left to the reference), -2 when out of memory.
 * Byte by byte through the class table: the reference of fast_tokens_simd. */
static int32_t fast_tokens_ref(fchunk *ch, int b, const char *s, size_t n, const ftables *tb) {
    int32_t nt = 0;
    size_t i = 0;
    while (i < n) {
        uint8_t c = tb->cls[(uint8_t)s[i]];
        if (c == 1) { i++; continue; }
        if (c == 3) return -1;
        size_t st = i++;
        if (c == 0) {
            while (i < n && (c = tb->cls[(uint8_t)s[i]]) == 0) i++;
            if (i < n && c == 3) return -1;
        }
        if (fast_tok_room(ch, b, nt)) return -2;
        ch->toks[b][nt].off = (uint32_t)st;
        ch->toks[b][nt].len = (uint32_t)(i - st);
        nt++;
    }
    return nt;
}

#if defined(__SSE2__)
#include <emmintrin.h>
/* Bit i of the result: byte i of s[0:16] is a separator (*sep), '=' (*eq), or one of '{' '}'
 * '\'' (*bad). Bytes from `avail` on read as spaces (the line ends there). */
static inline void fast_classify16(const char *s, size_t avail, uint32_t *sep, uint32_t *eq, uint32_t *bad) {
    __m128i v;
    if (avail >= 16) {
        v = _mm_loadu_si128((const __m128i *)s);
    } else {
        char tmp[16];
        memset(tmp, ' ', sizeof tmp);
        memcpy(tmp, s, avail);
        v = _mm_loadu_si128((const __m128i *)tmp);
    }
    __m128i t = _mm_sub_epi8(v, _mm_set1_epi8(9));   /* \t .. \r: t <= 4 unsigned */
    __m128i ws = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(4)), t);
    __m128i paren = _mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(1)), _mm_set1_epi8(')'));   /* ( or ) */
    __m128i sp = _mm_or_si128(_mm_or_si128(ws, paren),
                              _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8(','))));
    __m128i bd = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('{')), _mm_cmpeq_epi8(v, _mm_set1_epi8('}'))),
                              _mm_cmpeq_epi8(v, _mm_set1_epi8('\'')));
    *sep = (uint32_t)_mm_movemask_epi8(sp);
    *eq = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('=')));
    *bad = (uint32_t)_mm_movemask_epi8(bd);
}

/* fast_tokens_ref for the C locale's spaces, 64 bytes a step: masks of separators and '='
 * give the bytes where tokens start and stop, and only those are visited. */
static int32_t fast_tokens_simd(fchunk *ch, int b, const char *s, size_t n) {
    int32_t nt = 0;
    uint64_t prev_plain = 0, prev_eq = 0;   /* the byte before this window: in a plain token, '=' */
    size_t open = 0;                        /* start of the token being read */
    int inside = 0;                         /* ... when there is one */
    for (size_t base = 0; base < n; base += 64) {
        uint64_t sep = 0, eq = 0, bad = 0;
        for (int k = 0; k < 4; k++) {
            size_t o = base + 16 * (size_t)k;
            uint32_t ms = 0xffff, me = 0, mb = 0;
            if (o < n) fast_classify16(s + o, n - o, &ms, &me, &mb);
            sep |= (uint64_t)ms << (16 * k);
            eq |= (uint64_t)me << (16 * k);
            bad |= (uint64_t)mb << (16 * k);
        }
        if (bad) return -1;
        uint64_t plain = ~(sep | eq);
        /* a token starts at '=' and at a plain byte after a non-plain one; it stops before the
         * byte after '=' and before a non-plain byte after a plain one. Starts and stops
         * alternate (a stop first where both fall on one byte), so they pair up in order. */
        uint64_t starts = eq | (plain & ~((plain << 1) | prev_plain));
        uint64_t stops = (eq << 1) | prev_eq | (~plain & ((plain << 1) | prev_plain));
        if (nt + 65 > ch->cap_toks[b] && fast_tok_room(ch, b, nt + 64)) return -2;   /* <= 65 tokens per window */
        ftok *tk = ch->toks[b];
        for (;;) {
            if (!inside) {
                if (!starts) break;
                open = base + (size_t)__builtin_ctzll(starts);
                starts &= starts - 1;
                inside = 1;
            }
            if (!stops) break;
            tk[nt].off = (uint32_t)open;
            tk[nt].len = (uint32_t)(base + (size_t)__builtin_ctzll(stops) - open);
            stops &= stops - 1;
            nt++;
            inside = 0;
        }
        prev_plain = plain >> 63;
        prev_eq = eq >> 63;
    }
    if (inside) {   /* a token runs to the end (n is a multiple of 64) */
        if (fast_tok_room(ch, b, nt)) return -2;
        ch->toks[b][nt].off = (uint32_t)open;
        ch->toks[b][nt].len = (uint32_t)(n - open);
        nt++;
    }
    return nt;
}
#endif

static int32_t fast_tokens(fchunk *ch, int b, const char *s, size_t n, const ftables *tb) {
#if defined(__SSE2__)
    if (tb->c_space) return fast_tokens_simd(ch, b, s, n);
#endif
    return fast_tokens_ref(ch, b, s, n, tb);
}

/* Local ids of the pending card's nets. */
static cm_status fast_flush(fchunk *ch) {
    frec *r = &ch->recs[ch->pend.card];
    for (int k = 0; k < ch->pend.n; k++)
        if ((r->net[k] = cm_strtab_intern_h(&ch->nets, ch->pend.s[k], ch->pend.len[k], ch->pend.hash[k], NULL)) < 0)
            return CM_ERR_NOMEM;
    ch->pend.n = 0;
    return CM_OK;
}

/* The nets of plain card i become pending (ground names are the net "0", as resolve_net has
 * it); those of the card before get their ids. */
static cm_status fast_nets(fchunk *ch, int32_t i, const char *s, const ftok *t, int n, const ftables *tb) {
    cm_status st = fast_flush(ch);
    if (st) return st;
    ch->pend.card = i;
    for (int k = 0; k < n; k++) {
        if ((t[k].len == 1 && s[t[k].off] == '0') || (t[k].len == 3 && memcmp(s + t[k].off, "gnd", 3) == 0)) {
            ch->pend.s[k] = "0";
            ch->pend.len[k] = 1;
            ch->pend.hash[k] = tb->ground_hash;
        } else {
            ch->pend.s[k] = s + t[k].off;
            ch->pend.len[k] = t[k].len;
            ch->pend.hash[k] = cm_hash_bytes(s + t[k].off, t[k].len);
        }
        cm_strtab_prefetch(&ch->nets, ch->pend.hash[k]);
    }
    ch->pend.n = n;
    return CM_OK;
}

/* Local id in ch->strs of s[0:n], a model (slot 0) or the name of parameter slot - 1. Cards
 * tend to repeat them: compare with the last card's before hashing. */
static int32_t fast_str(fchunk *ch, int slot, const char *s, uint32_t n) {
    if (slot < 9 && ch->last[slot].len == n && ch->last[slot].s) {
        const char *l = ch->last[slot].s;
        uint32_t k = 0;
        while (k < n && l[k] == s[k]) k++;
        if (k == n) return ch->last[slot].id;
    }
    int32_t id = cm_strtab_intern(&ch->strs, s, n, NULL);
    if (slot < 9 && id >= 0) { ch->last[slot].s = s; ch->last[slot].len = n; ch->last[slot].id = id; }
    return id;
}

/* cm_parse_number for the forms netlisters write, on lowercased text: digits, an optional
 * fraction, an optional SI suffix and unit letters ("2.5u", "83.3k", "703f", "7"), at most 15
 * digits. The value is cm_parse_number's to the bit: the same mantissa and power of ten go
 * through the same correctly rounded operation. Anything else (signs, exponents, "meg", "mil",
 * more digits, other bytes) goes to cm_parse_number itself, which parses about 4x slower. */
static int fast_number(const char *s, size_t len, double *value) {
    static const int8_t SX[26] = {   /* suffix exponent of 'a' .. 'z'; 'm' is -3 unless "meg" */
        ['a' - 'a'] = -18, ['f' - 'a'] = -15, ['g' - 'a'] = 9, ['k' - 'a'] = 3, ['m' - 'a'] = -3,
        ['n' - 'a'] = -9, ['p' - 'a'] = -12, ['t' - 'a'] = 12, ['u' - 'a'] = -6, ['x' - 'a'] = 6};
    static const double P10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    uint64_t mant = 0;
    int frac = 0;
    while (i < len && (unsigned)(s[i] - '0') < 10) mant = mant * 10 + (uint64_t)(s[i++] - '0');
    size_t int_digits = i;
    if (i < len && s[i] == '.') {
        size_t f0 = ++i;
        while (i < len && (unsigned)(s[i] - '0') < 10) mant = mant * 10 + (uint64_t)(s[i++] - '0');
        frac = (int)(i - f0);
    }
    if (int_digits + (size_t)frac == 0 || int_digits + (size_t)frac > 15) return cm_parse_number(s, len, value);
    int sx = 0;
    if (i < len) {
        unsigned c0 = (unsigned)(unsigned char)s[i] - 'a';
        if (c0 >= 26 || c0 == 'e' - 'a') return cm_parse_number(s, len, value);   /* exponent, or a non-letter */
        if (c0 == 'm' - 'a' && i + 2 < len && ((s[i + 1] == 'e' && s[i + 2] == 'g') || (s[i + 1] == 'i' && s[i + 2] == 'l')))
            return cm_parse_number(s, len, value);
        sx = SX[c0];
        for (size_t j = i + 1; j < len; j++)   /* unit letters */
            if ((unsigned)(unsigned char)s[j] - 'a' >= 26) return cm_parse_number(s, len, value);
    }
    int total = sx - frac;
    if (total < -22 || total > 22) return cm_parse_number(s, len, value);
    *value = total >= 0 ? (double)mant * P10[total] : (double)mant / P10[-total];
    return 0;
}

/* Pre-read card i of the chunk, text s[0:n] (lowercased), tokens t[0:nt] (nt -1: none to
 * read). Leaves form FK_NONE for anything but the plain forms; the reference reads those,
 * errors included. */
static cm_status fast_card(fchunk *ch, int32_t i, const char *s, size_t n, const ftok *t, int32_t nt,
                           const ftables *tb) {
    frec *r = &ch->recs[i];
    r->form = FK_NONE;
    r->use = 0;
    r->n_params = 0;
    if (n >= UINT32_MAX || nt < 1 || t[0].off != 0 || t[0].len > UINT16_MAX) return CM_OK;
#define FEQ(j) (t[j].len == 1 && s[t[j].off] == '=')
    int form, from;
    char letter = s[t[0].off];
    if (letter == 'r' || letter == 'c' || letter == 'l') {
        /* name n1 n2 value, value a finite number (instantiate: case 'r') */
        if (nt < 4 || FEQ(1) || FEQ(2) || FEQ(3) || (nt > 4 && FEQ(4))) return CM_OK;
        double v;
        if (fast_number(s + t[3].off, t[3].len, &v) || !isfinite(v)) return CM_OK;
        form = letter == 'r' ? FK_RES : letter == 'c' ? FK_CAP : FK_IND;
        r->n_nets = 2;
        r->u.value = v;
        from = 4;
    } else if (letter == 'm') {
        /* name d g s b model: six items before the parameters (instantiate: case 'm') */
        if (nt < 6) return CM_OK;
        for (int32_t j = 1; j <= 6 && j < nt; j++)
            if (FEQ(j)) return CM_OK;
        if (nt > 6 && !(nt > 7 && FEQ(7))) return CM_OK;
        form = FK_MOS;
        r->n_nets = 4;
        from = 6;
    } else {
        return CM_OK;
    }
    /* name = number triples (add_params); at most one per '=' of the chunk */
    int64_t p0 = ch->n_params;
    for (int32_t j = from; j < nt; j += 3) {
        if (j + 2 >= nt || FEQ(j) || !FEQ(j + 1) || FEQ(j + 2)) { ch->n_params = p0; return CM_OK; }
        if (t[j].len == 7 && memcmp(s + t[j].off, "params:", 7) == 0) { ch->n_params = p0; return CM_OK; }
        double v;
        if (fast_number(s + t[j + 2].off, t[j + 2].len, &v) || !isfinite(v)) { ch->n_params = p0; return CM_OK; }
        if (ch->n_params >= ch->max_params) return CM_ERR_NOMEM;   /* cannot happen */
        ch->prm[ch->n_params].text = -1;
        ch->prm[ch->n_params++].value = v;
    }
    if (ch->n_params - p0 > UINT16_MAX) { ch->n_params = p0; return CM_OK; }
    /* A plain card: intern its names in the chunk's tables while its text is at hand. */
    r->n_params = (uint16_t)(ch->n_params - p0);
    for (uint32_t p = 0; p < r->n_params; p++) {
        const ftok *k = &t[from + 3 * (int32_t)p];
        if ((ch->prm[p0 + p].name = fast_str(ch, 1 + (int)p, s + k->off, k->len)) < 0) return CM_ERR_NOMEM;
    }
#undef FEQ
    if (form == FK_MOS) {
        if ((r->u.model = fast_str(ch, 0, s + t[5].off, t[5].len)) < 0) return CM_ERR_NOMEM;
    }
    cm_status st = fast_nets(ch, i, s, t + 1, r->n_nets, tb);
    if (st) return st;
    r->name_len = (uint16_t)t[0].len;
    r->form = (uint8_t)form;
    return CM_OK;
}

/* Upper bounds for a chunk's buffers: its lines and its '=' signs. */
static void fast_count(fchunk *ch, const char *text) {
    const unsigned char *p = (const unsigned char *)text + ch->begin;
    size_t n = ch->end - ch->begin;
    int64_t nl = 0, eq = 0;
    size_t i = 0;
    for (; i + 240 <= n; i += 240) {   /* byte counters over fixed blocks: the compiler vectorises this */
        uint8_t a = 0, b = 0;
        for (size_t j = 0; j < 240; j++) {
            a += p[i + j] == '\n';
            b += p[i + j] == '=';
        }
        nl += a;
        eq += b;
    }
    for (; i < n; i++) {
        nl += p[i] == '\n';
        eq += p[i] == '=';
    }
    ch->max_lines = nl + 1;
    ch->max_params = eq + 1;
}

/* Pre-read the chunk's last card, complete now: from its line's tokens, or from its whole
 * text when '+' lines extended it. */
static cm_status fast_last_card(ctx *x, fchunk *ch, const ftables *tb) {
    int32_t i = ch->n_cards - 1;
    const card *cd = &ch->cards[i];
    const char *s = x->text + cd->off;
    int b = ch->cur ^ 1;   /* its tokens */
    int32_t nt = ch->n_toks[b];
    if (ch->extended && cd->len < UINT32_MAX) nt = fast_tokens(ch, b, s, (size_t)cd->len, tb);
    if (nt == -2) return CM_ERR_NOMEM;
    ch->last_len = cd->len;
    return fast_card(ch, i, s, (size_t)cd->len, ch->toks[b], nt, tb);
}

/* Stage 1 over one chunk: read_lines' work for lines in the plain state. Writes lowercased
 * card text into x->text from offset ch->begin + shift on (it never outruns the input) and
 * cards into ch->cards. */
static cm_status fast_lines(ctx *x, fchunk *ch, const char *text, size_t shift, const ftables *tb, int32_t file) {
    size_t pos = ch->begin, end = ch->end;
    char *out = x->text + ch->begin + shift;   /* shift: from input to text offsets (mod 2^N) */
    const char *nul = memchr(text + pos, '\0', end - pos);
    int have_card = 0;     /* chunk 0 starts after the title; others start with a card */
    int32_t line = 0;
    cm_status st;
    ch->stop = end;
    ch->recs = cm_mem_alloc(sizeof *ch->recs * (size_t)ch->max_lines);
    if (!ch->recs) return CM_ERR_NOMEM;
    /* a net per two lines (most netlists have fewer): grown by doubling beyond */
    if (cm_strtab_init(&ch->nets, (int32_t)(ch->max_lines / 2 + 16)) || cm_strtab_init(&ch->strs, 64)) return CM_ERR_NOMEM;
    while (pos < end) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', end - pos);
        size_t n = nl ? (size_t)(nl - s) : end - pos;
        size_t next = nl ? pos + n + 1 : end;
        if (n && s[n - 1] == '\r') n--;
        if (nul && nul < s + n) break;   /* read_lines reports it */
        size_t a = 0;
        while (a < n && tb->space[(uint8_t)s[a]]) a++;
        const char *w = s + a;
        size_t wn = n - a;
        if (wn == 0 || w[0] == '*') { line++; pos = next; continue; }
        int plus = w[0] == '+';
        if (plus) {
            if (!have_card) break;
            w++;
            wn--;
        }
        /* comment_cut cuts only at ';' or '$': most lines have neither */
        if (memchr(w, ';', wn) || memchr(w, '$', wn)) wn = comment_cut(w, wn);
        while (wn && tb->space[(uint8_t)w[wn - 1]]) wn--;
        if (plus) {
            if (wn) {   /* " " and the line, lowercased, as append_text */
                out[0] = ' ';
                fast_lower(out + 1, w, wn, tb);
                out += 1 + wn;
                ch->cards[ch->n_cards - 1].len += (int64_t)(1 + wn);
                ch->extended = 1;
            }
            line++;
            pos = next;
            continue;
        }
        if (wn == 0) { line++; pos = next; continue; }
        if (w[0] == '.' && fast_special(w, first_word(w, wn))) break;
        line++;
        /* The line's tokens go into the buffer not holding the last card's. */
        int b = ch->cur;
        fast_lower(out, w, wn, tb);
        int32_t nt = wn < UINT32_MAX ? fast_tokens(ch, b, out, wn, tb) : -1;
        if (nt == -2) return CM_ERR_NOMEM;
        if (ch->n_cards && (st = fast_last_card(x, ch, tb))) return st;
        if (ch->n_cards >= ch->max_lines) return CM_ERR_NOMEM;   /* cannot happen: a card per line at most */
        card *cd = &ch->cards[ch->n_cards++];
        cd->off = out - x->text;
        cd->len = (int64_t)wn;
        cd->file = file;
        cd->line = line;
        out += wn;
        have_card = 1;
        ch->n_toks[b] = wn >= UINT32_MAX ? -1 : nt;
        ch->cur = b ^ 1;
        ch->extended = 0;
        pos = next;
    }
    if (pos < end) ch->stop = pos;
    ch->lines = line;
    ch->out_end = (size_t)(out - x->text);
    if (ch->n_cards && (st = fast_last_card(x, ch, tb))) return st;
    return fast_flush(ch);
}

#ifndef FAST_SPLIT_BYTES
#define FAST_SPLIT_BYTES ((size_t)1 << 20)   /* smaller texts are read in one chunk */
#endif

static int fast_threads(size_t len) {
#ifdef _OPENMP
    if (len >= FAST_SPLIT_BYTES) return omp_get_max_threads();
#endif
    (void)len;
    return 1;
}

/* One round of stage 1: chunks over text[pos, len) in parallel, from a line that starts with a
 * letter, until the first line a chunk leaves to read_lines (returned in *stop). *line: lines
 * before pos, then before *stop. */
static cm_status fast_round(ctx *x, fast_state *f, const char *text, size_t len, int32_t file, size_t pos,
                            int *line, size_t *stop) {
    int K = fast_threads(len - pos);
    if (K < 1) K = 1;
    fchunk *chs = realloc(f->ch, sizeof *chs * (size_t)(f->n_ch + K));
    if (!chs) return nomem(x);
    f->ch = chs;
    fchunk *ch = f->ch + f->n_ch;
    memset(ch, 0, sizeof *ch * (size_t)K);
    f->n_ch += K;
    /* Chunk k starts at the first line, from its share of the bytes on, that starts with a letter. */
    size_t prev = pos;
    for (int k = 0; k < K; k++) {
        size_t b = k == 0 ? pos : pos + (len - pos) / (size_t)K * (size_t)k;
        if (b < prev) b = prev;
        if (k > 0) {
            for (;;) {
                while (b < len && text[b - 1] != '\n') b++;
                if (b >= len) break;
                unsigned char c = (unsigned char)(text[b] | 0x20);
                if (c >= 'a' && c <= 'z') break;
                b++;
            }
        }
        ch[k].begin = b;
        if (k > 0) ch[k - 1].end = b;
        prev = b;
    }
    ch[K - 1].end = len;
    #pragma omp parallel for schedule(static, 1) if (K > 1)
    for (int k = 0; k < K; k++) fast_count(&ch[k], text);
    /* Room: chunk k writes its text from text_len + (begin_k - pos) on (never past its input), its
     * cards from n_cards + the line counts of the chunks before it; both are packed after. */
    int64_t need = (int64_t)x->n_cards + 256;
    for (int k = 0; k < K; k++) need += ch[k].max_lines;
    if (need > INT32_MAX / 2) return nomem(x);
    if (need > x->cap_cards) {
        card *c = cm_mem_realloc(x->cards, sizeof *c * (size_t)need);
        if (!c) return nomem(x);
        x->cards = c;
        x->cap_cards = (int32_t)need;
    }
    size_t base = x->text_len;
    if (base + (len - pos) + 1 > x->text_cap) {
        char *t = cm_mem_realloc(x->text, base + (len - pos) + 1);
        if (!t) return nomem(x);
        x->text = t;
        x->text_cap = base + (len - pos) + 1;
    }
    int64_t at = x->n_cards;
    for (int k = 0; k < K; k++) {
        ch[k].cards = x->cards + at;
        at += ch[k].max_lines;
    }
    /* The parameters of the round's chunks go into one buffer, chunk k's from the '=' counts of
     * the chunks before it on: when the netlist leaves instantiate() nothing to read, the
     * buffer becomes circuit.params and pass C moves them down in place (fast_plan). */
    int64_t n_prm = 0;
    for (int k = 0; k < K; k++) n_prm += ch[k].max_params;
    if (!(ch[0].prm_owner = cm_mem_alloc(sizeof *ch[0].prm_owner * (size_t)n_prm))) return nomem(x);
    n_prm = 0;
    for (int k = 0; k < K; k++) {
        ch[k].prm = ch[0].prm_owner + n_prm;
        ch[k].prm_at = n_prm;
        n_prm += ch[k].max_params;
    }
    const ftables *tb = &f->tb;
    #pragma omp parallel for schedule(static, 1) if (K > 1)
    for (int k = 0; k < K; k++) ch[k].st = fast_lines(x, &ch[k], text, base - pos, tb, file);
    for (int k = 0; k < K; k++)
        if (ch[k].st) return nomem(x);
    /* Chunks after the first that stopped early are read again. */
    int used = 0;
    while (used < K && ch[used].stop == ch[used].end) used++;
    *stop = used < K ? ch[used].stop : len;
    if (used < K) used++;
    int32_t n_cards = x->n_cards, first = x->n_cards;
    for (int k = 0; k < K; k++) {
        if (k >= used) ch[k].n_cards = 0;
        card *d = x->cards + n_cards;
        for (int32_t i = 0; i < ch[k].n_cards; i++) {   /* in order: a chunk moves only into space already freed */
            d[i] = ch[k].cards[i];
            d[i].line += *line;
        }
        ch[k].cards = NULL;
        ch[k].card_base = n_cards;
        n_cards += ch[k].n_cards;
        if (k < used) *line += ch[k].lines;
    }
    x->n_cards = n_cards;
    /* The text ends with the last card's: a '+' line read by read_lines may extend it (past an
     * .endl); pass A leaves a card whose length changed to the reference. */
    if (n_cards > first) {
        const card *last = &x->cards[n_cards - 1];
        x->text_len = (size_t)(last->off + last->len);
    }
    return CM_OK;
}

/* Stage 1 for the top-level text: read_lines reads the title and every state line (.include,
 * .lib, .control, ...); the plain lines in between are read in rounds of parallel chunks. */
static cm_status fast_read_source(ctx *x, fast_state *f, const char *text, size_t len, int32_t file) {
    fast_tables(&f->tb);
    read_at at = {0, 0, 0, 1};
    for (;;) {
        cm_status st = read_lines(x, text, len, file, 0, 1, NULL, &at);
        if (st) return st;
        if (at.pos >= len) return CM_OK;
        size_t stop = len;
        int32_t before = x->n_cards;
        if ((st = fast_round(x, f, text, len, file, at.pos, &at.line, &stop))) return st;
        if (stop >= len) return CM_OK;
        at.pos = stop;
        if (x->n_cards > before) at.have_card = 1;
    }
}

/* Pass A over one chunk: runs of plain top-level cards, and the local names each run uses first. */
static cm_status fast_pass_a(ctx *x, fchunk *ch) {
    const int32_t *top = x->top_cards;
    int32_t n_top = x->n_top, lo = 0, hi = n_top;
    while (lo < hi) {   /* first top-level card of the chunk */
        int32_t mid = lo + (hi - lo) / 2;
        if (top[mid] < ch->card_base) lo = mid + 1; else hi = mid;
    }
    int32_t tp = lo, nf = 0, sf = 0;
    ch->first_net = malloc(sizeof *ch->first_net * (size_t)(ch->nets.n + 1));
    ch->first_str = malloc(sizeof *ch->first_str * (size_t)(ch->strs.n + 1));
    ch->net_map = malloc(sizeof *ch->net_map * (size_t)(ch->nets.n + 1));
    ch->str_map = malloc(sizeof *ch->str_map * (size_t)(ch->strs.n + 1));
    int8_t *kind_of = malloc((size_t)ch->strs.n + 1);   /* device kind of a model: -2 unknown, -1 none */
    if (!ch->first_net || !ch->first_str || !ch->net_map || !ch->str_map || !kind_of) { free(kind_of); return CM_ERR_NOMEM; }
    for (int32_t i = 0; i < ch->nets.n; i++) ch->net_map[i] = -1;
    for (int32_t i = 0; i < ch->strs.n; i++) { ch->str_map[i] = -1; kind_of[i] = -2; }
    int64_t pb = 0;   /* parameters of card i start here */
    fseg seg;
    memset(&seg, 0, sizeof seg);
    cm_status st = CM_OK;
    for (int32_t i = 0; i <= ch->n_cards; pb += i < ch->n_cards ? ch->recs[i].n_params : 0, i++) {
        int32_t g = ch->card_base + i;
        frec *r = i < ch->n_cards ? &ch->recs[i] : NULL;
        if (r) {
            r->use = 0;
            if (!(tp < n_top && top[tp] == g)) continue;   /* in a .subckt body, or a dot card */
            tp++;
        }
        if (r && r->form != FK_NONE && i == ch->n_cards - 1 && ch->last_len != x->cards[g].len) r->form = FK_NONE;
        if (r && r->form == FK_MOS) {
            int8_t *k = &kind_of[r->u.model];
            if (*k == -2) {
                slice ms = {cm_strtab_get(&ch->strs, r->u.model), (size_t)ch->strs.lens[r->u.model]};
                const char *type = model_type(x, ms);
                *k = (int8_t)(type_is(type, "nmos") ? CM_DEV_NMOS : type_is(type, "pmos") ? CM_DEV_PMOS : -1);
            }
            if (*k < 0) r->form = FK_NONE;
            else r->kind = *k;
        } else if (r && r->form != FK_NONE) {
            r->kind = (int8_t)(r->form == FK_RES ? CM_DEV_RES : r->form == FK_CAP ? CM_DEV_CAP : CM_DEV_IND);
        }
        if (!r || r->form == FK_NONE) {   /* the run ends; card i (if any) goes to instantiate() */
            if (ch->n_segs == ch->cap_segs) {
                int32_t nc = ch->cap_segs ? ch->cap_segs * 2 : 16;
                fseg *sg = realloc(ch->segs, sizeof *sg * (size_t)nc);
                if (!sg) { st = CM_ERR_NOMEM; break; }
                ch->segs = sg;
                ch->cap_segs = nc;
            }
            seg.card_end = i;
            seg.other = r ? g : -1;
            seg.net_end = nf;
            seg.str_end = sf;
            ch->segs[ch->n_segs++] = seg;
            memset(&seg, 0, sizeof seg);
            continue;
        }
        r->use = 1;
        /* In the reference's order: nets, model, parameter names (separate tables, so only the
         * order within each matters). net_map/str_map mark ids already listed. */
        for (int k = 0; k < r->n_nets; k++)
            if (ch->net_map[r->net[k]] < 0) { ch->net_map[r->net[k]] = 0; ch->first_net[nf++] = r->net[k]; }
        if (r->form == FK_MOS && ch->str_map[r->u.model] < 0) { ch->str_map[r->u.model] = 0; ch->first_str[sf++] = r->u.model; }
        for (uint32_t p = 0; p < r->n_params; p++) {
            int32_t id = ch->prm[pb + p].name;
            if (ch->str_map[id] < 0) { ch->str_map[id] = 0; ch->first_str[sf++] = id; }
        }
        seg.n_dev++;
        seg.n_term += r->n_nets;
        seg.n_param += r->n_params;
        seg.name_bytes += r->name_len;
    }
    free(kind_of);
    return st;
}

/* Local ids first[from, to) of table t get their global ids in g (interned in that order). */
static cm_status fast_map(cm_strtab *g, const cm_strtab *t, const int32_t *first, int32_t from, int32_t to,
                          int32_t *map) {
    for (int32_t j = from; j < to; j++) {
        if (j + 8 < to) cm_strtab_prefetch(g, t->hashes[first[j + 8]]);
        int32_t i = first[j];
        map[i] = cm_strtab_intern_h(g, cm_strtab_get(t, i), (size_t)t->lens[i], t->hashes[i], NULL);
        if (map[i] < 0) return CM_ERR_NOMEM;
    }
    return CM_OK;
}

/* Room for n_dev more devices, n_term terminals and n_param parameters (n_param < 0: the
 * parameters are in place already, their array must not move). */
static cm_status fast_reserve(ctx *x, int64_t n_dev, int64_t n_term, int64_t n_param) {
    cm_circuit *c = x->c;
    int64_t d = c->n_devices + n_dev + 1024, t = c->n_terms + n_term + 4096, p = c->n_params + n_param + 4096;
    if (d > INT32_MAX || t > INT32_MAX) return CM_ERR_NOMEM;
    if (d > c->cap_devices) {
        cm_device *nd = cm_mem_realloc(c->devices, sizeof *nd * (size_t)d);
        if (!nd) return CM_ERR_NOMEM;
        c->devices = nd;
        c->cap_devices = (int32_t)d;
    }
    if (t > c->cap_terms) {
        int32_t *nt = cm_mem_realloc(c->term_net, sizeof *nt * (size_t)t);
        if (!nt) return CM_ERR_NOMEM;
        c->term_net = nt;
        c->cap_terms = t;
    }
    if (n_param >= 0 && p > c->cap_params) {
        cm_param *np = cm_mem_realloc(c->params, sizeof *np * (size_t)p);
        if (!np) return CM_ERR_NOMEM;
        c->params = np;
        c->cap_params = p;
    }
    return CM_OK;
}

/* Room for one run's plain devices, terminals and parameters before pass B gives them their
 * places. fast_plan reserved room for every plain card with some slack, but the cards pass B
 * hands to instantiate() (those between chunks, e.g. after a mid-file .include) add devices
 * of their own and may use up that slack: then grow, by half again at least. */
static cm_status fast_room(ctx *x, int64_t n_dev, int64_t n_term, int64_t n_param) {
    const cm_circuit *c = x->c;
    if (c->n_devices + n_dev <= c->cap_devices && c->n_terms + n_term <= c->cap_terms &&
        c->n_params + n_param <= c->cap_params)
        return CM_OK;
    return fast_reserve(x, n_dev + c->cap_devices / 2, n_term + c->cap_terms / 2, n_param + c->cap_params / 2);
}

/* Device names of the run's plain cards [i, seg->card_end) of chunk ch, in order; ids must
 * come out as the device indices pass B gave them. A duplicate is an error (the reference
 * words it). The devices get their file and line now: a later card read by instantiate()
 * may name one of them in a "duplicate device name" message before pass C writes the rest. */
static cm_status fast_names(ctx *x, const fchunk *ch, const fseg *seg, int32_t i) {
    cm_strtab *t = &x->c->devnames;
    if (t->n != seg->dev_base) return CM_ERR_NOMEM;   /* cannot happen */
    uint32_t hash[16] = {0};   /* of the names of cards i .. i + 15 (by i mod 16), their slots prefetched */
#define NAME_HASH(j) cm_hash_bytes(x->text + x->cards[ch->card_base + (j)].off, ch->recs[j].name_len)
    for (int32_t j = i; j < seg->card_end && j < i + 16; j++)
        if (ch->recs[j].use) cm_strtab_prefetch(t, hash[j & 15] = NAME_HASH(j));
    for (; i < seg->card_end; i++) {
        const frec *r = &ch->recs[i];
        uint32_t h = hash[i & 15];
        if (i + 16 < seg->card_end && ch->recs[i + 16].use) cm_strtab_prefetch(t, hash[i & 15] = NAME_HASH(i + 16));
        if (!r->use) continue;
        int inserted;
        int32_t id = cm_strtab_intern_h(t, x->text + x->cards[ch->card_base + i].off, r->name_len, h, &inserted);
        if (id < 0) return CM_ERR_NOMEM;
        if (!inserted) return CM_ERR_PARSE;
        const card *cd = &x->cards[ch->card_base + i];
        x->c->devices[id].src_file = cd->file;
        x->c->devices[id].src_line = cd->line;
    }
#undef NAME_HASH
    return t->n == seg->dev_base + seg->n_dev ? CM_OK : CM_ERR_NOMEM;
}

/* Room for the plain devices, and the last top-level card for instantiate() (f->last_other;
 * -1: none, and then every device name can go in beside passes B and C). */
static cm_status fast_plan(ctx *x, fast_state *f) {
    cm_circuit *c = x->c;
    int64_t n_dev = 0, n_term = 0, n_param = 0, bytes = 0;
    int32_t most_nets = 0, last_other = -1;   /* the last card for instantiate() */
    for (int k = 0; k < f->n_ch; k++) {
        const fchunk *ch = &f->ch[k];
        for (int32_t s = 0; s < ch->n_segs; s++) {
            n_dev += ch->segs[s].n_dev;
            n_term += ch->segs[s].n_term;
            n_param += ch->segs[s].n_param;
            bytes += ch->segs[s].name_bytes;
            if (ch->segs[s].other > last_other) last_other = ch->segs[s].other;
        }
        if (ch->nets.n > most_nets) most_nets = ch->nets.n;
    }
    {   /* top-level cards outside the chunks, read by read_lines */
        int k = 0;
        for (int32_t t = 0; t < x->n_top; t++) {
            int32_t g = x->top_cards[t];
            while (k < f->n_ch && g >= f->ch[k].card_base + f->ch[k].n_cards) k++;
            if ((k == f->n_ch || g < f->ch[k].card_base) && g > last_other) last_other = g;
        }
    }
    /* No card for instantiate(), and the chunks read in one round: the parameters of the plain
     * cards are all there is, in the round's buffer in card order, each at or after where it
     * belongs (chunk k's start from the '=' counts of the chunks before it, its final place
     * from the parameters they use). The buffer becomes circuit.params and pass C moves them
     * down in place, rather than copying them into a second array. */
    int in_place = last_other < 0 && c->n_params == 0 && f->n_ch > 0 && f->ch[0].prm_owner;
    for (int k = 1; k < f->n_ch && in_place; k++) in_place = !f->ch[k].prm_owner;
    f->c_in_order = 0;
    if (in_place) {
        int64_t cap = f->ch[f->n_ch - 1].prm_at + f->ch[f->n_ch - 1].max_params;
        free(c->params);
        c->params = f->ch[0].prm_owner;
        c->cap_params = cap;
        f->ch[0].prm_owner = NULL;
        /* Chunks may move their parameters at once unless one's destination covers parameters
         * of an earlier chunk (one that wrote more than it uses): then in card order. */
        int64_t dest = 0;
        for (int k = 0; k < f->n_ch; k++) {
            int64_t used = 0;
            for (int32_t s = 0; s < f->ch[k].n_segs; s++) used += f->ch[k].segs[s].n_param;
            for (int j = 0; j < k && used > 0; j++)
                if (dest < f->ch[j].prm_at + f->ch[j].n_params && dest + used > f->ch[j].prm_at) f->c_in_order = 1;
            dest += used;
        }
    }
    if (fast_reserve(x, n_dev, n_term, in_place ? -1 : n_param) || cm_strtab_reserve(&c->devnames, n_dev, (size_t)bytes) ||
        cm_strtab_reserve(&c->nets, most_nets, 0))
        return nomem(x);
    f->last_other = last_other;
    f->defer_chunk = f->n_ch;
    if (last_other < 0 && f->n_ch > 0) f->defer_chunk = f->defer_seg = f->defer_card = 0;
    return CM_OK;
}

/* Pass B: global ids in card order, device names, and every other top-level card. Device
 * names of runs after the last card for instantiate() are left to fast_instantiate_top
 * (f->defer_*), which inserts them while pass C runs. */
static cm_status fast_pass_b(ctx *x, fast_state *f, const scope *top) {
    cm_circuit *c = x->c;
    int32_t last_other = f->last_other;
    cm_status st;
    int32_t t = 0;   /* next top-level card; those outside chunks go to instantiate() */
    for (int k = 0; k < f->n_ch; k++) {
        fchunk *ch = &f->ch[k];
        for (; t < x->n_top && x->top_cards[t] < ch->card_base; t++)
            if ((st = instantiate(x, &x->cards[x->top_cards[t]], top))) return st;
        for (; t < x->n_top && x->top_cards[t] < ch->card_base + ch->n_cards; t++) {}
        int32_t net0 = 0, str0 = 0, i = 0;
        for (int32_t sg = 0; sg < ch->n_segs; sg++) {
            fseg *seg = &ch->segs[sg];
            if (fast_map(&c->nets, &ch->nets, ch->first_net, net0, seg->net_end, ch->net_map) ||
                fast_map(&c->strs, &ch->strs, ch->first_str, str0, seg->str_end, ch->str_map))
                return nomem(x);
            net0 = seg->net_end;
            str0 = seg->str_end;
            if ((int64_t)c->n_devices + seg->n_dev > INT32_MAX || c->n_terms + seg->n_term > INT32_MAX) return nomem(x);
            /* only with cards for instantiate(): without them the plan's room is exact, the
             * parameters may live in place, and pass C may already be writing */
            if (last_other >= 0 && fast_room(x, seg->n_dev, seg->n_term, seg->n_param)) return nomem(x);
            seg->dev_base = c->n_devices;
            seg->term_base = c->n_terms;
            seg->param_base = c->n_params;
            if (f->defer_chunk == f->n_ch && ch->card_base + i > last_other) {
                f->defer_chunk = k;   /* no instantiate() from here on */
                f->defer_seg = sg;
                f->defer_card = i;
            }
            if (seg->n_dev && f->defer_chunk == f->n_ch) {
                if ((st = fast_names(x, ch, seg, i)) == CM_ERR_PARSE)
                    return fail_at(x, NULL, st, "duplicate device name");   /* the reference words it */
                if (st) return nomem(x);
            }
            c->n_devices += seg->n_dev;
            c->n_terms += seg->n_term;
            c->n_params += seg->n_param;
            i = seg->card_end;
            if (seg->other >= 0) {
                if ((st = instantiate(x, &x->cards[seg->other], top))) return st;
                i++;
            }
        }
    }
    for (; t < x->n_top; t++)
        if ((st = instantiate(x, &x->cards[x->top_cards[t]], top))) return st;
    return CM_OK;
}

/* The device names pass B left: those of the plain cards from f->defer_* on, in order. */
typedef struct { ctx *x; const fast_state *f; int k; int32_t i; } fname_iter;

static const char *fast_next_name(void *arg, size_t *len, uint32_t *hash) {
    fname_iter *it = arg;
    for (;;) {
        const fchunk *ch = &it->f->ch[it->k];
        if (it->i >= ch->n_cards) { it->k++; it->i = 0; continue; }   /* cannot run past: n is exact */
        const frec *r = &ch->recs[it->i++];
        if (!r->use) continue;
        const char *s = it->x->text + it->x->cards[ch->card_base + it->i - 1].off;
        *len = r->name_len;
        *hash = cm_hash_bytes(s, r->name_len);
        return s;
    }
}

static cm_status fast_deferred_names(ctx *x, const fast_state *f) {
    int64_t n = 0;
    for (int k = f->defer_chunk; k < f->n_ch; k++)
        for (int32_t sg = k == f->defer_chunk ? f->defer_seg : 0; sg < f->ch[k].n_segs; sg++) n += f->ch[k].segs[sg].n_dev;
    if (n == 0) return CM_OK;
    fname_iter it = {x, f, f->defer_chunk, f->defer_card};
    int r = cm_strtab_append_new(&x->c->devnames, n, fast_next_name, &it);
    return r < 0 ? CM_ERR_NOMEM : r ? CM_ERR_PARSE : CM_OK;
}

/* Pass C over one chunk: write its plain devices where pass B placed them. */
static void fast_pass_c(ctx *x, const fchunk *ch) {
    cm_circuit *c = x->c;
    int32_t i = 0;
    int64_t pb = 0;   /* the chunk's parameters of card i start here */
    for (int32_t sg = 0; sg < ch->n_segs; sg++) {
        const fseg *seg = &ch->segs[sg];
        int32_t dv = seg->dev_base;
        int64_t tm = seg->term_base, pm = seg->param_base;
        for (; i < seg->card_end; pb += ch->recs[i].n_params, i++) {
            const frec *r = &ch->recs[i];
            if (!r->use) continue;
            const card *cd = &x->cards[ch->card_base + i];
            cm_device *d = &c->devices[dv];
            d->kind = r->kind;
            d->name = dv;
            d->model = r->form == FK_MOS ? ch->str_map[r->u.model] : -1;
            d->term_begin = (int32_t)tm;
            d->n_terms = r->n_nets;
            d->param_begin = (int32_t)pm;
            d->n_params = (int32_t)r->n_params;
            d->value_text = -1;
            d->control = -1;
            d->src_file = cd->file;
            d->src_line = cd->line;
            d->value = r->form == FK_MOS ? NAN : r->u.value;
            for (int k = 0; k < r->n_nets; k++) c->term_net[tm + k] = ch->net_map[r->net[k]];
            for (uint32_t p = 0; p < r->n_params; p++) {
                cm_param *q = &c->params[pm + p];
                /* q may be where the parameter is, or before it (in place: see fast_plan) */
                int32_t name = ch->str_map[ch->prm[pb + p].name];
                double value = ch->prm[pb + p].value;
                q->name = name;
                q->text = -1;
                q->value = value;
            }
            dv++;
            tm += r->n_nets;
            pm += r->n_params;
        }
        if (seg->other >= 0) { pb += ch->recs[i].n_params; i++; }
    }
}

/* Stage 3 of the fast reader: all top-level cards. */
static cm_status fast_instantiate_top(ctx *x, fast_state *f, const scope *top) {
    cm_status st = CM_OK;
    int K = f->n_ch;
    #pragma omp parallel for schedule(static, 1) if (K > 1)
    for (int k = 0; k < K; k++) f->ch[k].st = fast_pass_a(x, &f->ch[k]);
    for (int k = 0; k < K; k++)
        if (f->ch[k].st) return nomem(x);
    if ((st = fast_plan(x, f))) return st;
    cm_status names = CM_OK;
    if (f->last_other < 0) {
        /* No card for instantiate(): one thread inserts every device name while pass B and
         * then pass C run. */
        #pragma omp parallel if (K > 1)
        #pragma omp single
        {
            #pragma omp task shared(names)
            names = fast_deferred_names(x, f);
            st = fast_pass_b(x, f, top);
            if (!st && f->c_in_order) {
                #pragma omp task
                for (int k = 0; k < K; k++) fast_pass_c(x, &f->ch[k]);
            }
            for (int k = 0; k < K && !st && !f->c_in_order; k++) {
                #pragma omp task
                fast_pass_c(x, &f->ch[k]);
            }
            #pragma omp taskwait
        }
        if (st) return st;
    } else {
        if ((st = fast_pass_b(x, f, top))) return st;
        /* One thread inserts the last device names while the others write the devices. */
        #pragma omp parallel if (K > 1)
        {
            #pragma omp single nowait
            names = fast_deferred_names(x, f);
            #pragma omp for schedule(dynamic, 1) nowait
            for (int k = 0; k < K; k++) fast_pass_c(x, &f->ch[k]);
        }
    }
    if (names == CM_ERR_PARSE) return fail_at(x, NULL, names, "duplicate device name");   /* the reference words it */
    if (names || x->c->devnames.n != x->c->n_devices) return nomem(x);
    return CM_OK;
}

/* ------------------------------------------------------------------ entry points */

void cm_parse_options_default(cm_parse_options *opt) {
    memset(opt, 0, sizeof *opt);
}

/* Nets no terminal uses (an instance port its subcircuit leaves unconnected) cannot be
 * written back, so the reader drops them; ground and .global nets stay. Net ids change only
 * when something is dropped. */
static cm_status prune_unused_nets(cm_circuit *c) {
    int32_t N = c->nets.n;
    int32_t *map = calloc((size_t)N + 1, sizeof *map);   /* [N] new id + 1, 0 = dropped */
    if (!map) return CM_ERR_NOMEM;
    for (int64_t t = 0; t < c->n_terms; t++) map[c->term_net[t]] = 1;
    for (int32_t i = 0; i < c->n_global_nets; i++) map[c->global_nets[i]] = 1;
    int32_t g = cm_strtab_find(&c->nets, "0", 1);
    if (g >= 0) map[g] = 1;
    int32_t kept = 0;
    for (int32_t i = 0; i < N; i++) kept += map[i];
    if (kept == N) { free(map); return CM_OK; }
    cm_strtab nt;
    if (cm_strtab_init(&nt, kept + 16)) { free(map); return CM_ERR_NOMEM; }
    for (int32_t i = 0; i < N; i++) {
        if (!map[i]) continue;
        int32_t id = cm_strtab_intern(&nt, cm_strtab_get(&c->nets, i), (size_t)c->nets.lens[i], NULL);
        if (id < 0) { cm_strtab_free(&nt); free(map); return CM_ERR_NOMEM; }
        map[i] = id + 1;
    }
    for (int64_t t = 0; t < c->n_terms; t++) c->term_net[t] = map[c->term_net[t]] - 1;
    for (int32_t i = 0; i < c->n_global_nets; i++) c->global_nets[i] = map[c->global_nets[i]] - 1;
    cm_strtab_free(&c->nets);
    c->nets = nt;
    free(map);
    return CM_OK;
}

static cm_circuit *circuit_new(size_t text_len, int fast) {
    cm_circuit *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    /* the fast reader sizes the tables once it has counted */
    int32_t guess = fast ? 256 : (int32_t)(text_len / 40 < 1000000000 ? text_len / 40 : 1000000000);
    if (cm_strtab_init(&c->strs, 256) || cm_strtab_init(&c->nets, guess / 2 + 16) ||
        cm_strtab_init(&c->devnames, guess + 16) || cm_strtab_init(&c->files, 4)) {
        cm_circuit_free(c);
        return NULL;
    }
    c->title = -1;
    c->control_block = -1;
    return c;
}

static void ctx_free(ctx *x) {
    free(x->text); free(x->cards); free(x->control); free(x->subs);
    cm_strtab_free(&x->subnames); cm_strtab_free(&x->modelnames);
    free(x->sub_ports); free(x->sub_params); free(x->model_def_file); free(x->model_def_line);
    free(x->override_used);
    free(x->top_cards); free(x->frame); free(x->toks); free(x->scratch); free(x->scratch2);
    for (int i = 0; i < x->n_allowed; i++) free(x->allowed[i]);
    free(x->allowed);
}

static cm_status add_allowed(ctx *x, const char *dir) {
    char *r = realpath(dir, NULL);
    if (!r) return CM_OK;   /* a folder that does not exist allows nothing */
    char **a = realloc(x->allowed, sizeof *a * (size_t)(x->n_allowed + 1));
    if (!a) { free(r); return CM_ERR_NOMEM; }
    x->allowed = a;
    x->allowed[x->n_allowed++] = r;
    return CM_OK;
}

static cm_status parse_text(const char *text, size_t len, const char *filename, const cm_parse_options *opt,
                            cm_circuit **out, cm_error *err, int fast) {
    *out = NULL;
    cm_parse_options defaults;
    if (!opt) { cm_parse_options_default(&defaults); opt = &defaults; }
    if (err) { err->status = CM_OK; err->line = 0; err->file[0] = 0; err->msg[0] = 0; }
    ctx x;
    memset(&x, 0, sizeof x);
    x.err = err;
    x.opt = opt;
    fast_state fs;
    memset(&fs, 0, sizeof fs);
    x.c = circuit_new(len, fast);
    cm_status st = CM_OK;
    if (!x.c) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
    if (cm_strtab_init(&x.subnames, 16) || cm_strtab_init(&x.modelnames, 16)) { st = nomem(&x); goto done; }
    int32_t fid = -1;
    if (filename && filename[0] != '<') {
        char *real = realpath(filename, NULL);
        const char *fname = real ? real : filename;
        fid = intern(&x, &x.c->files, fname, strlen(fname));
        /* The including file's own folder is always allowed. */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", fname);
        char *slash = strrchr(dir, '/');
        if (slash) { if (slash == dir) slash[1] = 0; else *slash = 0; } else snprintf(dir, sizeof dir, ".");
        free(real);
        if (fid < 0 || add_allowed(&x, dir)) { st = nomem(&x); goto done; }
    } else {
        fid = intern(&x, &x.c->files, filename ? filename : "<string>", strlen(filename ? filename : "<string>"));
        if (fid < 0 || add_allowed(&x, ".")) { st = nomem(&x); goto done; }
    }
    for (int i = 0; i < opt->n_include_dirs; i++)
        if (add_allowed(&x, opt->include_dirs[i])) { st = nomem(&x); goto done; }
    if (opt->n_overrides > 0 && !(x.override_used = calloc((size_t)opt->n_overrides, 1))) { st = nomem(&x); goto done; }
    if ((st = fast ? fast_read_source(&x, &fs, text, len, fid) : read_source(&x, text, len, fid, 0, 1, NULL))) goto done;
    if ((st = collect(&x))) goto done;
    for (int i = 0; i < opt->n_overrides; i++)
        if (!x.override_used[i]) {
            st = cm_error_set(err, CM_ERR_VALUE, file_name(&x, fid), 0,
                              "parameter '%s' is not defined by a top-level .param of this netlist",
                              opt->override_names[i]);
            goto done;
        }
    scope top = {"", 0, NULL, NULL, 0, 0, 0};
    if (fast) {
        if ((st = fast_instantiate_top(&x, &fs, &top))) goto done;
    } else {
        for (int32_t i = 0; i < x.n_top; i++)
            if ((st = instantiate(&x, &x.cards[x.top_cards[i]], &top))) goto done;
    }
    if (x.control_len) {
        x.c->control_block = intern(&x, &x.c->strs, x.control, x.control_len);
        if (x.c->control_block < 0) { st = nomem(&x); goto done; }
    }
    if (x.c->title < 0 && (x.c->title = intern(&x, &x.c->strs, "", 0)) < 0) { st = nomem(&x); goto done; }
    /* Make sure the ground net exists so roles and graphs always have it. */
    if (intern(&x, &x.c->nets, "0", 1) < 0) { st = nomem(&x); goto done; }
    if (prune_unused_nets(x.c)) { st = nomem(&x); goto done; }
done:
    if (st) {
        cm_circuit_free(x.c);
        x.c = NULL;
        if (err && err->status == CM_OK) cm_error_set(err, st, "", 0, "out of memory");
    }
    ctx_free(&x);
    fast_free(&fs);
    *out = x.c;
    return st;
}

cm_status cm_circuit_parse(const char *text, size_t len, const char *filename, const cm_parse_options *opt,
                           cm_circuit **out, cm_error *err) {
    if (opt && opt->reference_reader) return parse_text(text, len, filename, opt, out, err, 0);
    cm_status st = parse_text(text, len, filename, opt, out, err, 1);
    if (st == CM_OK) return st;
    /* Errors are rare and the reference words them: read again with it. */
    return parse_text(text, len, filename, opt, out, err, 0);
}

cm_status cm_circuit_read(const char *path, const cm_parse_options *opt, cm_circuit **out, cm_error *err) {
    *out = NULL;
    char *buf = NULL;
    size_t n = 0;
    const char *mapped;
    if (cm_mem_map_file(path, (size_t)1 << 20, &mapped, &n) == 0) {   /* a large netlist: no copy */
        cm_status st = cm_circuit_parse(mapped, n, path, opt, out, err);
        cm_mem_unmap_file(mapped, n);
        return st;
    }
    cm_status st = read_file_bytes(path, &buf, &n);
    if (st == CM_ERR_NOMEM) return cm_error_set(err, st, path, 0, "out of memory");
    if (st) return cm_error_set(err, st, path, 0, "cannot read netlist file: %s", strerror(errno));
    st = cm_circuit_parse(buf, n, path, opt, out, err);
    free(buf);
    return st;
}
