/* ngspice.c: the in-memory ngspice driver (see ngspice.h). POSIX: dlopen, pthreads. */
#include "ngspice.h"
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The part of sharedspice.h we use, declared here so nothing links at build time. */
typedef struct { double re, im; } ng_complex;
typedef struct {
    char *v_name;
    int v_type;
    short v_flags;
    double *v_realdata;
    ng_complex *v_compdata;
    int v_length;
} ng_vector_info;
typedef int(ng_send_char)(char *, int, void *);
typedef int(ng_send_stat)(char *, int, void *);
typedef int(ng_controlled_exit)(int, bool, bool, int, void *);
typedef int(ng_send_data)(void *, int, int, void *);
typedef int(ng_send_init_data)(void *, int, void *);
typedef int(ng_bg_running)(bool, int, void *);

struct cm_spice {
    void *lib;
    char path[1024];
    int (*init)(ng_send_char *, ng_send_stat *, ng_controlled_exit *, ng_send_data *, ng_send_init_data *,
                ng_bg_running *, void *);
    int (*command)(char *);
    ng_vector_info *(*vec_info)(char *);
    int (*circ)(char **);
    char **(*all_plots)(void);
    char **(*all_vecs)(char *);
    bool (*running)(void);

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int bg_running;        /* ngspice's background thread is running */
    int dead;              /* ngspice called the exit callback */
    int exit_status;
    char *out;             /* captured output */
    size_t out_len, out_cap;
    int n_errors;          /* "error" lines seen since the last reset */
    int context_lines;     /* lines still to append to first_error (ngspice splits messages) */
    int singular_pending;  /* a singular matrix not yet followed by successful gmin/source stepping */
    char singular_msg[256];
    char first_error[1024];
    char **lines;          /* scratch for ngSpice_Circ */
    size_t lines_cap;
    char *text;            /* scratch copy of the netlist */
    size_t text_cap;
};

/* Only one instance may be live: ngspice's state is global. The library is never unloaded
 * (dlclose leaves ngspice's threads and exit handlers pointing at unmapped code): a healthy
 * instance is parked on close and handed to the next open; a dead one stays loaded, unused. */
static cm_spice *g_live = NULL;
static cm_spice *g_parked = NULL;

static int is_error_line(const char *s) {
    /* ngspice marks errors in several ways; warnings are not errors. */
    const char *p = s;
    while (*p && isspace((unsigned char)*p)) p++;
    /* ngspice warns, then often recovers (gmin or source stepping): not an error by itself */
    if (strncasecmp(p, "warning", 7) == 0 || strncasecmp(p, "note", 4) == 0) return 0;
    /* ngspice echoes the netlist's title as "Circuit: <title>": a title is not an error, even
     * one that mentions "singular matrix" or "unknown model" */
    if (strncmp(p, "Circuit:", 8) == 0) return 0;
    if (strncasecmp(p, "error", 5) == 0) return 1;
    /* "singular matrix" alone is not an error: ngspice often recovers by gmin or source
     * stepping. cb_print tracks it and cm_spice_run decides at the end (see singular_pending). */
    if (strstr(s, "Timestep too small") || strstr(s, "timestep too small") ||
        strstr(s, "simulation(s) aborted") || strstr(s, "iteration limit reached") ||
        strstr(s, "DC solution failed") || strstr(s, "unknown subckt") ||
        strstr(s, "could not find a valid modelname") || strstr(s, "unknown model") ||
        strstr(s, "Too few parameters") || strstr(s, "no circuit loaded"))
        return 1;
    return 0;
}

static int cb_print(char *text, int id, void *user) {
    (void)id;
    cm_spice *s = user;
    if (!text) return 0;
    /* ngspice prefixes each line with "stdout " or "stderr " */
    const char *line = text;
    int is_err = 0;
    if (strncmp(line, "stdout ", 7) == 0) line += 7;
    else if (strncmp(line, "stderr ", 7) == 0) { line += 7; is_err = 1; }
    size_t n = strlen(line);
    pthread_mutex_lock(&s->mu);
    if (s->out_len + n + 2 > s->out_cap && s->out_len < ((size_t)1 << 24)) {
        size_t nc = s->out_cap ? s->out_cap * 2 : 4096;
        while (nc < s->out_len + n + 2) nc *= 2;
        char *b = realloc(s->out, nc);
        if (b) { s->out = b; s->out_cap = nc; }
    }
    if (s->out_len + n + 2 <= s->out_cap) {
        memcpy(s->out + s->out_len, line, n);
        s->out_len += n;
        s->out[s->out_len++] = '\n';
        s->out[s->out_len] = 0;
    }
    (void)is_err;   /* ngspice prints some errors on stdout: classify by content */
    if (s->context_lines > 0 && n > 0) {
        size_t used = strlen(s->first_error);
        snprintf(s->first_error + used, sizeof s->first_error - used, " %s", line);
        s->context_lines--;
    }
    if (strstr(line, "singular matrix")) {
        if (!s->singular_pending) {
            const char *w = strstr(line, "singular matrix");
            snprintf(s->singular_msg, sizeof s->singular_msg, "%s", w);
        }
        s->singular_pending = 1;
    }
    if (strstr(line, "stepping completed")) s->singular_pending = 0;
    if (is_error_line(line)) {
        if (s->n_errors == 0) {
            snprintf(s->first_error, sizeof s->first_error, "%s", line);
            s->context_lines = 2;
        }
        s->n_errors++;
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int cb_exit(int status, bool immediate, bool quit, int id, void *user) {
    (void)immediate; (void)quit; (void)id;
    cm_spice *s = user;
    pthread_mutex_lock(&s->mu);
    s->dead = 1;
    s->exit_status = status;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int cb_bg(bool not_running, int id, void *user) {
    (void)id;
    cm_spice *s = user;
    pthread_mutex_lock(&s->mu);
    s->bg_running = !not_running;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Copy a file (to load a private, fresh copy of the library after a fatal error). */
static int copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY), out = -1, ok = -1;
    if (in < 0) return -1;
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0700);
    if (out >= 0) {
        char buf[1 << 16];
        ssize_t r;
        ok = 0;
        while ((r = read(in, buf, sizeof buf)) > 0)
            if (write(out, buf, (size_t)r) != r) { ok = -1; break; }
        if (r < 0) ok = -1;
        close(out);
    }
    close(in);
    return ok;
}

static int g_generation = 0;   /* how many instances were opened in this process */

cm_status cm_spice_open(const char *libpath, cm_spice **out, cm_error *err) {
    *out = NULL;
    if (g_live)
        return cm_error_set(err, CM_ERR_VALUE, "", 0,
                            "a simulator is already open in this process (ngspice keeps global state); close it first");
    if (!libpath || !*libpath) libpath = getenv("CIRCML_NGSPICE_LIBRARY");
    if (!libpath || !*libpath) libpath = "libngspice.so.0";
    if (g_parked && strcmp(g_parked->path, libpath) == 0) {
        cm_spice *s = g_parked;
        g_parked = NULL;
        pthread_mutex_lock(&s->mu);
        s->out_len = 0;
        if (s->out) s->out[0] = 0;
        s->n_errors = 0;
        s->context_lines = 0;
        s->first_error[0] = 0;
        pthread_mutex_unlock(&s->mu);
        g_live = s;
        *out = s;
        return CM_OK;
    }
    cm_spice *s = calloc(1, sizeof *s);
    if (!s) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->path, sizeof s->path, "%s", libpath);
    const char *load = libpath;
    char copy[256];
    if (g_generation > 0) {
        /* The library was loaded before in this process and its statics may be spent (a fatal
         * error): a private copy under another name gets fresh ones. */
        void *probe = dlopen(libpath, RTLD_NOW | RTLD_LOCAL);
        Dl_info info;
        const char *real = NULL;
        if (probe) {
            void *sym = dlsym(probe, "ngSpice_Init");
            if (sym && dladdr(sym, &info) && info.dli_fname) real = info.dli_fname;
        }
        snprintf(copy, sizeof copy, "/tmp/circml-ngspice-%d-%d.so", (int)getpid(), g_generation);
        if (real && copy_file(real, copy) == 0) load = copy;
        if (probe) dlclose(probe);
    }
    s->lib = dlopen(load, RTLD_NOW | RTLD_LOCAL);
    if (load != libpath) unlink(copy);   /* the mapping stays valid */
    if (!s->lib) {
        const char *why = dlerror();
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        cm_error_set(err, CM_ERR_LIBRARY, "", 0,
                     "cannot load the ngspice shared library '%s' (%s). Install it: Debian/Ubuntu "
                     "'apt-get install libngspice0', macOS 'brew install libngspice', conda "
                     "'conda install -c conda-forge ngspice-lib'; or set CIRCML_NGSPICE_LIBRARY to its path",
                     libpath, why ? why : "unknown reason");
        free(s);
        return CM_ERR_LIBRARY;
    }
#define SYM(field, name)                                                                      \
    do {                                                                                      \
        *(void **)(&s->field) = dlsym(s->lib, name);                                          \
        if (!s->field) {                                                                      \
            free(s);                                                                          \
            return cm_error_set(err, CM_ERR_LIBRARY, "", 0, "'%s' lacks %s: not libngspice?", \
                                libpath, name);                                               \
        }                                                                                     \
    } while (0)
    SYM(init, "ngSpice_Init");
    SYM(command, "ngSpice_Command");
    SYM(vec_info, "ngGet_Vec_Info");
    SYM(circ, "ngSpice_Circ");
    SYM(all_plots, "ngSpice_AllPlots");
    SYM(all_vecs, "ngSpice_AllVecs");
    SYM(running, "ngSpice_running");
#undef SYM
    g_generation++;
    g_live = s;
    /* No status callback: with one, ngspice times and locks around every step of a run. */
    s->init(cb_print, NULL, cb_exit, NULL, NULL, cb_bg, s);
    if (s->dead) {
        g_live = NULL;
        return cm_error_set(err, CM_ERR_LIBRARY, "", 0, "ngspice exited during initialisation");
    }
    /* ngspice evaluates devices with OpenMP, 2 threads unless told otherwise, and each run in
     * its background thread would start a new thread team: 3-6x slower for small circuits.
     * circml parallelises over processes, so one thread each. */
    char threads[] = "set num_threads=1";
    s->command(threads);
    *out = s;
    return CM_OK;
}

void cm_spice_close(cm_spice *s) {
    if (!s) return;
    if (g_live == s) g_live = NULL;
    if (s->dead) return;   /* ngspice may still call back into it: leave it be */
    if (s->running && s->running()) {
        char halt[] = "bg_halt";
        s->command(halt);
    }
    char a[] = "destroy all", b[] = "remcirc";
    s->command(a);
    s->command(b);
    if (g_parked && g_parked != s) return;   /* cannot happen: one live instance at a time */
    g_parked = s;
}

static cm_status check_dead(cm_spice *s, cm_error *err) {
    if (s->dead)
        return cm_error_set(err, CM_ERR_DEAD, "", 0,
                            "ngspice exited with a fatal error (status %d); the simulator must be reopened",
                            s->exit_status);
    return CM_OK;
}

static cm_status errors_since(cm_spice *s, int before, cm_error *err, const char *what) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_errors;
    char first[1024];
    snprintf(first, sizeof first, "%s", s->first_error);
    pthread_mutex_unlock(&s->mu);
    if (n > before) return cm_error_set(err, CM_ERR_SIMULATION, "", 0, "%s: %s", what, first);
    return CM_OK;
}

cm_status cm_spice_load(cm_spice *s, const char *text, size_t len, cm_error *err) {
    cm_status st = check_dead(s, err);
    if (st) return st;
    if (len + 1 > s->text_cap) {
        char *t = realloc(s->text, len + 1);
        if (!t) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
        s->text = t;
        s->text_cap = len + 1;
    }
    memcpy(s->text, text, len);
    s->text[len] = 0;
    size_t n = 1;
    for (size_t i = 0; i < len; i++) n += s->text[i] == '\n';
    if (n + 2 > s->lines_cap) {
        char **l = realloc(s->lines, sizeof *l * (n + 2));
        if (!l) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
        s->lines = l;
        s->lines_cap = n + 2;
    }
    size_t k = 0;
    char *p = s->text;
    s->lines[k++] = p;
    for (size_t i = 0; i < len; i++)
        if (s->text[i] == '\n') {
            s->text[i] = 0;
            if (i > 0 && s->text[i - 1] == '\r') s->text[i - 1] = 0;
            if (i + 1 < len) s->lines[k++] = s->text + i + 1;
        }
    s->lines[k] = NULL;
    pthread_mutex_lock(&s->mu);
    int before = s->n_errors;
    pthread_mutex_unlock(&s->mu);
    int rc = s->circ(s->lines);
    if ((st = check_dead(s, err))) return st;
    if ((st = errors_since(s, before, err, "ngspice could not load the netlist"))) return st;
    if (rc != 0) return cm_error_set(err, CM_ERR_SIMULATION, "", 0, "ngspice could not load the netlist (code %d)", rc);
    return CM_OK;
}

/* After a run: ngspice's errors, or a singular matrix it never recovered from. */
static cm_status run_outcome(cm_spice *s, int before, cm_error *err) {
    cm_status st;
    if ((st = check_dead(s, err))) return st;
    if ((st = errors_since(s, before, err, "simulation failed"))) return st;
    pthread_mutex_lock(&s->mu);
    int singular = s->singular_pending;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", s->singular_msg);
    pthread_mutex_unlock(&s->mu);
    if (singular)
        return cm_error_set(err, CM_ERR_SIMULATION, "", 0,
                            "simulation failed: %s (neither gmin nor source stepping found an operating point)", msg);
    return CM_OK;
}

/* "run" in the calling thread: what a plain C loop does. No second thread is ever created,
 * so the process keeps glibc's single-threaded fast paths (measured: 12 % of a small OTA's
 * simulation time went to bg_run's thread start, hand-offs and locked mallocs). */
static cm_status run_foreground(cm_spice *s, cm_error *err) {
    pthread_mutex_lock(&s->mu);
    int before = s->n_errors;
    s->singular_pending = 0;
    pthread_mutex_unlock(&s->mu);
    char cmd[] = "run";
    s->command(cmd);
    return run_outcome(s, before, err);
}

cm_status cm_spice_run(cm_spice *s, double timeout, cm_error *err) {
    cm_status st = check_dead(s, err);
    if (st) return st;
    if (!(timeout > 0)) return run_foreground(s, err);
    pthread_mutex_lock(&s->mu);
    int before = s->n_errors;
    s->singular_pending = 0;
    s->bg_running = 1;   /* set before the thread starts, so a fast run cannot be missed */
    pthread_mutex_unlock(&s->mu);
    char cmd[] = "bg_run";
    if (s->command(cmd) != 0) {
        pthread_mutex_lock(&s->mu);
        s->bg_running = 0;
        pthread_mutex_unlock(&s->mu);
        if ((st = check_dead(s, err))) return st;
        return errors_since(s, -1, err, "ngspice could not start the simulation");
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    double whole = (double)(long)timeout;
    deadline.tv_sec += (time_t)whole;
    deadline.tv_nsec += (long)((timeout - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
    int timed_out = 0;
    pthread_mutex_lock(&s->mu);
    while (s->bg_running && !s->dead) {
        int rc = pthread_cond_timedwait(&s->cv, &s->mu, &deadline);
        if (rc == ETIMEDOUT) { timed_out = 1; break; }
    }
    pthread_mutex_unlock(&s->mu);
    if (timed_out) {
        char halt[] = "bg_halt";
        s->command(halt);
        /* wait (bounded) for the thread to stop */
        struct timespec d2;
        clock_gettime(CLOCK_REALTIME, &d2);
        d2.tv_sec += 10;
        pthread_mutex_lock(&s->mu);
        while (s->bg_running && !s->dead)
            if (pthread_cond_timedwait(&s->cv, &s->mu, &d2) == ETIMEDOUT) break;
        int still = s->bg_running;
        pthread_mutex_unlock(&s->mu);
        if (still) {
            s->dead = 1;
            return cm_error_set(err, CM_ERR_DEAD, "", 0, "the simulation ignored the halt request; the simulator must be reopened");
        }
        return cm_error_set(err, CM_ERR_TIMEOUT, "", 0, "simulation halted after its %.3g s time limit", timeout);
    }
    /* ngspice's thread may report "not running" just before it returns: wait until it has. */
    while (s->running()) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    return run_outcome(s, before, err);
}

cm_status cm_spice_command(cm_spice *s, const char *cmd, cm_error *err) {
    cm_status st = check_dead(s, err);
    if (st) return st;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", cmd);
    pthread_mutex_lock(&s->mu);
    int before = s->n_errors;
    pthread_mutex_unlock(&s->mu);
    s->command(buf);
    if ((st = check_dead(s, err))) return st;
    return errors_since(s, before, err, "ngspice command failed");
}

cm_status cm_spice_reset(cm_spice *s, cm_error *err) {
    cm_status st = check_dead(s, err);
    if (st) return st;
    char a[] = "destroy all", b[] = "remcirc";
    s->command(a);
    s->command(b);
    pthread_mutex_lock(&s->mu);
    s->out_len = 0;
    if (s->out) s->out[0] = 0;
    s->n_errors = 0;
    s->context_lines = 0;
    s->first_error[0] = 0;
    pthread_mutex_unlock(&s->mu);
    return check_dead(s, err);
}

char **cm_spice_plots(cm_spice *s) { return s->dead ? NULL : s->all_plots(); }

char **cm_spice_vectors(cm_spice *s, const char *plot) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", plot);
    return s->dead ? NULL : s->all_vecs(buf);
}

int cm_spice_vector(cm_spice *s, const char *name, const double **re, const double **cx, int *len) {
    *re = NULL;
    *cx = NULL;
    *len = 0;
    if (s->dead) return -1;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    ng_vector_info *v = s->vec_info(buf);
    if (!v) return -1;
    *len = v->v_length;
    if (v->v_compdata) *cx = (const double *)v->v_compdata;
    else *re = v->v_realdata;
    return 0;
}

const char *cm_spice_output(cm_spice *s, size_t *len) {
    *len = s->out_len;
    return s->out ? s->out : "";
}

int cm_spice_is_dead(const cm_spice *s) { return s->dead; }
const char *cm_spice_library_path(const cm_spice *s) { return s->path; }
