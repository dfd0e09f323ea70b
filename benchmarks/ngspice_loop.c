/* ngspice_loop.c: the plain C baseline of bench_spice.py. Loads libngspice with dlopen and
 * simulates one netlist file N times (ngSpice_Circ, "run" in the calling thread, read every
 * vector of every plot, "destroy all", "remcirc"), then prints simulations per second.
 * Build: cc -O2 ngspice_loop.c -ldl -o ngspice_loop; run: ./ngspice_loop netlist.sp N [threads] [lib]
 * threads: ngspice's OpenMP threads ("set num_threads=..."); 0 keeps ngspice's default (2). */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { double re, im; } cplx;
typedef struct { char *name; int type; short flags; double *real; cplx *comp; int length; } vec_info;
typedef int(cb_char)(char *, int, void *);
typedef int(cb_exit)(int, bool, bool, int, void *);

static int quiet(char *s, int id, void *u) { (void)s; (void)id; (void)u; return 0; }
static int on_exit_cb(int st, bool a, bool b, int id, void *u) { (void)a; (void)b; (void)id; (void)u; fprintf(stderr, "ngspice exited (%d)\n", st); exit(2); }

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s netlist.sp N [threads] [libngspice]\n", argv[0]); return 1; }
    void *lib = dlopen(argc > 4 ? argv[4] : "libngspice.so.0", RTLD_NOW);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    int (*init)(cb_char *, cb_char *, cb_exit *, void *, void *, void *, void *) = (void *)dlsym(lib, "ngSpice_Init");
    int (*command)(char *) = (void *)dlsym(lib, "ngSpice_Command");
    int (*circ)(char **) = (void *)dlsym(lib, "ngSpice_Circ");
    char **(*plots)(void) = (void *)dlsym(lib, "ngSpice_AllPlots");
    char **(*vecs)(char *) = (void *)dlsym(lib, "ngSpice_AllVecs");
    vec_info *(*info)(char *) = (void *)dlsym(lib, "ngGet_Vec_Info");
    init(quiet, quiet, on_exit_cb, NULL, NULL, NULL, NULL);
    if (argc > 3 && atoi(argv[3]) > 0) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "set num_threads=%d", atoi(argv[3]));
        command(cmd);
    }

    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 1; }
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *lines[4096];
    int nl = 0;
    for (char *p = strtok(text, "\n"); p && nl < 4095; p = strtok(NULL, "\n")) lines[nl++] = p;
    lines[nl] = NULL;
    char **copy = malloc(sizeof(char *) * (size_t)(nl + 1));

    int N = atoi(argv[2]);
    double checksum = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        memcpy(copy, lines, sizeof(char *) * (size_t)(nl + 1));   /* ngSpice_Circ may keep pointers */
        circ(copy);
        command("run");
        char **ps = plots();
        for (int p = 0; ps && ps[p]; p++) {
            if (!strcmp(ps[p], "const")) continue;
            char plot[256];
            snprintf(plot, sizeof plot, "%s", ps[p]);
            char **vs = vecs(plot);
            for (int v = 0; vs && vs[v]; v++) {
                char full[512];
                snprintf(full, sizeof full, "%s.%s", plot, vs[v]);
                vec_info *vi = info(full);
                if (vi && vi->length) checksum += vi->real ? vi->real[0] : vi->comp[0].re;
            }
        }
        command("destroy all");
        command("remcirc");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("{\"simulations\": %d, \"seconds\": %.6f, \"per_second\": %.3f, \"checksum\": %.6g}\n", N, s, N / s, checksum);
    return 0;
}
