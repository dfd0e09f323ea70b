/* ngspice.h: libngspice, loaded at run time with dlopen, driven in memory.
 *
 * One simulator per process: libngspice keeps global state and is not thread-safe. A run
 * loads a netlist from memory (ngSpice_Circ), runs its analyses (in ngspice's background
 * thread when a time limit is asked for, else in the caller's) and leaves the result plots
 * readable until cm_spice_reset.
 * Output lines arrive through ngspice's print callback and are kept to build messages.
 * A fatal error inside ngspice calls our exit callback instead of exiting the process; the
 * instance is then marked dead (CM_ERR_DEAD) and must be closed and opened again, which
 * loads a fresh private copy of the library (the dead one stays mapped, unused). */
#ifndef CIRCML_NGSPICE_H
#define CIRCML_NGSPICE_H
#include <stddef.h>
#include "../util/status.h"

typedef struct cm_spice cm_spice;

/* Load libngspice from `libpath` (NULL: $CIRCML_NGSPICE_LIBRARY, else libngspice.so.0) and
 * initialise it. Fails with CM_ERR_LIBRARY and an install hint when it cannot be loaded. */
cm_status cm_spice_open(const char *libpath, cm_spice **out, cm_error *err);
/* Release the instance. The library stays loaded (unloading ngspice is not safe): a healthy
 * instance is kept for the next cm_spice_open of the same library; `s` must not be used after. */
void cm_spice_close(cm_spice *s);

/* Load a netlist (text, lines separated by '\n'; title first; analyses as dot-cards). */
cm_status cm_spice_load(cm_spice *s, const char *text, size_t len, cm_error *err);
/* Run the loaded circuit's analyses ("run"). timeout > 0: in ngspice's background thread,
 * halted after `timeout` seconds; timeout <= 0: in the calling thread, no limit (faster: no
 * thread; callers that need a limit then enforce it from outside, e.g. a parent process). */
cm_status cm_spice_run(cm_spice *s, double timeout, cm_error *err);
/* Any other ngspice command, in the calling thread. */
cm_status cm_spice_command(cm_spice *s, const char *cmd, cm_error *err);
/* Free all plots and the circuit ("destroy all", "remcirc"), and clear the captured output. */
cm_status cm_spice_reset(cm_spice *s, cm_error *err);

/* NULL-terminated names of the result plots (ngspice owns them; valid until the next call). */
char **cm_spice_plots(cm_spice *s);
/* NULL-terminated vector names of a plot. */
char **cm_spice_vectors(cm_spice *s, const char *plot);
/* Data of vector "plot.name": *re (real data) or *cx (interleaved re, im pairs), length. */
int cm_spice_vector(cm_spice *s, const char *plot_dot_name, const double **re, const double **cx, int *len);

/* Output captured since the last reset, one line per '\n'. */
const char *cm_spice_output(cm_spice *s, size_t *len);
int cm_spice_is_dead(const cm_spice *s);
const char *cm_spice_library_path(const cm_spice *s);

#endif
