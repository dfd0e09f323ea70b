/* build.h: building and editing circuits in C (augmentation, generated netlists).
 * A new circuit starts empty or with a copy of another's header (title, models, .param
 * values, directives, .global nets); devices are then added one by one. */
#ifndef CIRCML_BUILD_H
#define CIRCML_BUILD_H
#include "circuit.h"

/* An empty circuit sized for about `expected_devices` devices; NULL when out of memory. */
cm_circuit *cm_circuit_new(int32_t expected_devices);

/* Copy src's title, models, top-level params, directives, .global nets and control block. */
cm_status cm_circuit_copy_header(cm_circuit *dst, const cm_circuit *src);

/* Net id of `name` in c, created when new; -1 when out of memory. */
int32_t cm_circuit_net(cm_circuit *c, const char *name);

/* A device to add. Parameter names/texts are plain strings (texts NULL when numeric). */
typedef struct {
    int kind;
    const char *name;
    const int32_t *nets;      /* [n_nets] net ids of the destination circuit */
    int n_nets;
    const char *model;        /* NULL when none */
    double value;             /* NAN when none */
    const char *value_text;   /* NULL when none */
    const char *control;      /* F/H sensing source, NULL otherwise */
    const char *const *param_names;
    const double *param_values;
    const char *const *param_texts;
    int n_params;
    int32_t src_file, src_line;
} cm_device_spec;

/* Add a device. CM_ERR_VALUE when the name is taken. */
cm_status cm_circuit_add_device(cm_circuit *c, const cm_device_spec *d);

/* Copy device `i` of src into dst with its nets mapped through net_map ([src N] -> dst ids),
 * optionally renamed (new_name NULL keeps it) and with value / parameter `scale_param`
 * (e.g. "w", NULL for none) multiplied by the given factors. */
cm_status cm_circuit_copy_device(cm_circuit *dst, const cm_circuit *src, int32_t i, const int32_t *net_map,
                                 const char *new_name, const int32_t *new_nets, double value_scale,
                                 const char *scale_param, double param_scale);

#endif
