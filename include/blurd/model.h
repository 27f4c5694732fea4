/* model.h - the model file: a safetensors file holding the network's parameter tensors
 * and, in "__metadata__", the layer spec, the preprocessing, class names, the decision
 * threshold and training provenance.  A model records its own architecture, so any spec
 * blurd can build loads without code changes.
 *
 * File layout (safetensors): 8-byte little-endian header length N, N bytes of JSON
 * {"NAME": {"dtype": "F32"|"F16", "shape": [...], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string", ...}}, then the raw little-endian tensor bytes.
 *
 * Metadata keys blurd reads (all string values, as safetensors requires):
 *   blurd.spec           layer spec (net.h); required
 *   blurd.input          "tiles" or "resize"                      (default "tiles")
 *   blurd.tile_size      model input side in pixels               (default: input height)
 *   blurd.tile_count     tiles scored per image in tiles mode     (default 8)
 *   blurd.analysis_size  long side of the analysis image, 0 = native (default 0)
 *   blurd.classes        "blurred,clear": output order            (default)
 *   blurd.threshold      p(blurred) at or above which an image is blurred (default 0.5)
 *   blurd.name           a short human name                       (default: file name)
 * Any other keys (training provenance, metrics) are kept and written back unchanged.
 */
#ifndef BLURD_MODEL_H
#define BLURD_MODEL_H

#include "blurd/net.h"

#include <stddef.h>

typedef struct blurd_model blurd_model;

enum blurd_input_mode {
    BLURD_INPUT_TILES,
    BLURD_INPUT_RESIZE,
};

/* How images are turned into network inputs, as the model prescribes. */
struct blurd_preprocess {
    enum blurd_input_mode input;
    int tile_size;     /* == the net's input height == width */
    int tile_count;    /* >= 1 */
    int analysis_size; /* 0 = native resolution */
    float threshold;   /* in (0, 1) */
};

/* Opens, validates and loads `path` (mmap'd while reading; the parameters are copied into
 * the net, so nothing stays mapped).  Every problem - truncated file, header length or
 * offsets past the end, overlapping tensors or data bytes no tensor covers, a missing,
 * extra or misshapen tensor, a dtype other than F32/F16, an invalid spec or metadata value,
 * a NaN or infinite weight - returns BLURD_EMODEL (BLURD_ENOENT/BLURD_EACCES for an
 * unopenable file, BLURD_EISDIR for a folder) with a one-line message in `err` naming the
 * file and the problem.  Tensors may appear in any order in the file.  On failure *out is
 * NULL. */
int blurd_model_load(blurd_model **out, const char *path, char *err);

/* A new model for `spec` with He-initialised parameters from `seed` and metadata holding
 * the canonical spec and every default above except blurd.name.  BLURD_ESPEC for a spec
 * blurd_net_create rejects or one a blurd model cannot use (a non-square input, other than
 * 2 outputs).  On failure *out is NULL. */
int blurd_model_create(blurd_model **out, const char *spec, uint64_t seed, char *err);

/* Writes the model as F32 safetensors (F16 when `half` is non-zero), to a temporary file
 * "PATH.tmp-XXXXXX" in the same folder that is fsync'd and renamed over `path` (then the
 * folder fsync'd), so a crash never leaves a half-written model.  The header lists
 * __metadata__ then the tensors in spec order, padded so the data starts 8-byte aligned.
 * On success the model's hash and file name become those of the saved file (hence the
 * non-const model).  BLURD_EINVAL, writing nothing, for a NaN or infinite weight or (F16)
 * one beyond half precision's range, as such a file would not load; write errors return
 * the errno's code (BLURD_EIO for a full disk) and leave `path` as it was. */
int blurd_model_save(blurd_model *model, const char *path, int half, char *err);

void blurd_model_free(blurd_model *model); /* NULL is a no-op */

/* Writes into `path` (PATH_MAX bytes) the model used when none is named: $BLURD_MODEL, else
 * models/default.safetensors in the current folder, else the installed one under the
 * data directory.  Returns 0 if one exists, BLURD_ENOENT (with the places looked in, in
 * `err`) if none does. */
int blurd_model_find_default(char *path, char *err);

/* Loads `path`, or when it is NULL the default model (blurd_model_find_default). */
int blurd_model_load_or_default(blurd_model **out, const char *path, char *err);

/* ---- checkpoints: a model file that also carries other tensors ---- */

/* A flat F32 tensor stored after the network's, such as an optimizer's state.  `name` must
 * differ from every tensor name of the net (which are "LAYER.kernel"/"LAYER.bias"). */
struct blurd_model_extra {
    const char *name;
    float *data; /* count floats: written from on save, read into on load (borrowed) */
    size_t count;
};

/* blurd_model_save in F32 with the extras written, with shape [count], after the net's
 * tensors.  Such a file is refused by blurd_model_load ("extra tensor"): a checkpoint is
 * not a model to classify with. */
int blurd_model_save_extras(blurd_model *model, const char *path,
                            const struct blurd_model_extra *extras, int extra_count, char *err);

/* blurd_model_load for a file written by blurd_model_save_extras: every extra must be
 * present with shape [count] (F32 or F16, finite) and is copied into its data; any other
 * tensor, missing or misshapen extra is refused like a bad model tensor.  An extra given
 * with data NULL (its size unknown before the file's spec is read) is allocated by the
 * load with the net's parameter count, the size of an optimizer's state, for the caller to
 * free; on failure such extras are freed and set back to NULL. */
int blurd_model_load_extras(blurd_model **out, const char *path, struct blurd_model_extra *extras,
                            int extra_count, char *err);

/* The network (owned by the model). */
blurd_net *blurd_model_net(const blurd_model *model);

/* The preprocessing parsed from the metadata at load or create time and kept current by
 * blurd_model_meta_set (owned by the model). */
const struct blurd_preprocess *blurd_model_preprocess(const blurd_model *model);

/* Metadata: the value for `key` or NULL (owned by the model, valid until it changes). */
const char *blurd_model_meta_get(const blurd_model *model, const char *key);
/* Sets (copies) a metadata value, or removes the key when `value` is NULL; blurd.* keys
 * are re-validated and re-parsed into the preprocessing.  BLURD_EINVAL, leaving the model
 * unchanged, for an invalid value (with `err` naming the key), a key that is empty or not
 * UTF-8, or a blurd.spec that does not describe the model's present network (it may only
 * be respelled, e.g. canonicalised). */
int blurd_model_meta_set(blurd_model *model, const char *key, const char *value, char *err);
int blurd_model_meta_count(const blurd_model *model);
/* The index-th key and value, in sorted (strcmp) key order (both owned by the model,
 * valid until the metadata changes).  An index outside [0, count) aborts. */
void blurd_model_meta_at(const blurd_model *model, int index, const char **key, const char **value);

/* SHA-256 of the model file's bytes as 64 lowercase hex digits ("" for a model never
 * loaded or saved; computed on the first call, thread-safely, from the file as it was
 * opened by the load, so only callers who need it pay for it) and its name (blurd.name, else the
 * file's base name without a
 * ".safetensors" suffix, "" for a model never loaded or saved).  Both owned by the model,
 * valid until it is next saved or its metadata changes. */
const char *blurd_model_hash(const blurd_model *model);
const char *blurd_model_name(const blurd_model *model);

#endif
