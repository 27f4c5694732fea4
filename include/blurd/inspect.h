/* inspect.h - the human-readable description of a model (`blurd model info`): its layers
 * with output shapes, parameters and cost, the totals, and its metadata. */
#ifndef BLURD_INSPECT_H
#define BLURD_INSPECT_H

#include "blurd/model.h"

#include <stdio.h>

/* Prints `model` to `out`; with `from_file` also its name and SHA-256. */
void blurd_inspect_print(FILE *out, const blurd_model *model, int from_file);

#endif
