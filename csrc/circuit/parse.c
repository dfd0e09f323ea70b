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

#define GROW(ptr, n, cap, init)                                                          \
    do {                                                                                 \
        if ((n) >= (cap)) {                                                              \
            size_t nc_ = (cap) ? (size_t)(cap) * 2 : (size_t)(init);                     \
            void *np_ = realloc((ptr), nc_ * sizeof *(ptr));                             \
            if (!np_) return CM_ERR_NOMEM;                                               \
            (ptr) = np_;                                                                 \
            (cap) = nc_;                                                                 \
        }                                                                                \
    } while (0)

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
    GROW(x->cards, x->n_cards, x->cap_cards, 256);
    card *cd = &x->cards[x->n_cards++];
    cd->off = off;
    cd->len = 0;
    cd->file = file;
    cd->line = line;
    return CM_OK;
}

/* Read one source text into cards. `section`: for .lib file section, only the lines between
 * ".lib section" and ".endl" are read. read_lines starts at byte `pos`, after `line` lines,
 * with `have_card` telling whether a '+' line may continue the last card (the fast reader
 * hands the rest of a file over to it). */
static cm_status read_lines(ctx *x, const char *text, size_t len, int32_t file, int depth, int top,
                            const char *section, size_t pos, int line, int have_card) {
    int in_control = 0, control_line = 0;
    int in_section = section ? 0 : 1, skipping_lib = 0, section_found = section ? 0 : 1;
    card here = {0, 0, file, 0};
    while (pos < len) {
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
        /* Strip end-of-line comments: ';' anywhere, '$' at the start of a word (ngspice) - and
         * of a token: after {..}, ')' ... a '$' would start a name that reads back as a comment. */
        size_t cut = wn;
        for (size_t i = 0; i < wn; i++) {
            if (w[i] == ';' || (w[i] == '$' && (i == 0 || isspace((unsigned char)w[i - 1]) || strchr("}()=,'", w[i - 1])))) {
                cut = i;
                break;
            }
        }
        wn = cut;
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
    return CM_OK;
}

static cm_status read_source(ctx *x, const char *text, size_t len, int32_t file, int depth, int top,
                             const char *section) {
    return read_lines(x, text, len, file, depth, top, section, 0, 0, 0);
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
        GROW(x->toks, x->n_toks, x->cap_toks, 32);
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
    size_t fl;
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
    GROW(c->devices, c->n_devices, c->cap_devices, 1024);
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
    GROW(c->term_net, c->n_terms, c->cap_terms, 4096);
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
        GROW(c->params, c->n_params, c->cap_params, 4096);
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
            size_t fl;
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
    GROW(c->globals, c->n_globals, c->cap_globals, 16);
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
    GROW(x->frame, x->n_frame, x->cap_frame, 64);
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
    GROW(c->models, c->n_models, c->cap_models, 16);
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
    GROW(x->subs, x->n_subs, x->cap_subs, 16);
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
        GROW(x->sub_ports, x->n_sub_ports, x->cap_sub_ports, 64);
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
        GROW(x->sub_params, x->n_sub_params, x->cap_sub_params, 64);
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
                GROW(x->top_cards, x->n_top, x->cap_top, 1024);
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
                GROW(c->global_nets, c->n_global_nets, c->cap_global_nets, 8);
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
            GROW(c->directives, c->n_directives, c->cap_directives, 8);
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

static cm_circuit *circuit_new(size_t text_len) {
    cm_circuit *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    int32_t guess = (int32_t)(text_len / 40 < 1000000000 ? text_len / 40 : 1000000000);
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

cm_status cm_circuit_parse(const char *text, size_t len, const char *filename, const cm_parse_options *opt,
                           cm_circuit **out, cm_error *err) {
    *out = NULL;
    cm_parse_options defaults;
    if (!opt) { cm_parse_options_default(&defaults); opt = &defaults; }
    if (err) { err->status = CM_OK; err->line = 0; err->file[0] = 0; err->msg[0] = 0; }
    ctx x;
    memset(&x, 0, sizeof x);
    x.err = err;
    x.opt = opt;
    x.c = circuit_new(len);
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
    if ((st = read_source(&x, text, len, fid, 0, 1, NULL))) goto done;
    if ((st = collect(&x))) goto done;
    for (int i = 0; i < opt->n_overrides; i++)
        if (!x.override_used[i]) {
            st = cm_error_set(err, CM_ERR_VALUE, file_name(&x, fid), 0,
                              "parameter '%s' is not defined by a top-level .param of this netlist",
                              opt->override_names[i]);
            goto done;
        }
    scope top = {"", 0, NULL, NULL, 0, 0, 0};
    for (int32_t i = 0; i < x.n_top; i++)
        if ((st = instantiate(&x, &x.cards[x.top_cards[i]], &top))) goto done;
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
    *out = x.c;
    return st;
}

cm_status cm_circuit_read(const char *path, const cm_parse_options *opt, cm_circuit **out, cm_error *err) {
    *out = NULL;
    char *buf = NULL;
    size_t n = 0;
    cm_status st = read_file_bytes(path, &buf, &n);
    if (st == CM_ERR_NOMEM) return cm_error_set(err, st, path, 0, "out of memory");
    if (st) return cm_error_set(err, st, path, 0, "cannot read netlist file: %s", strerror(errno));
    st = cm_circuit_parse(buf, n, path, opt, out, err);
    free(buf);
    return st;
}
