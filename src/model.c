/* model.c - reads and writes blurd's model files (safetensors: a JSON header naming each
 * parameter tensor, then the raw little-endian data) and keeps their metadata.
 *
 * Workload: a handful of loads per process (start-up, reloads) and a save per training
 * epoch, of files up to a few tens of megabytes.  Files are untrusted input, so every
 * number in the header is checked against the file and the network before it is used,
 * and a file is only ever replaced by an fsync'd, renamed complete copy.
 */
#include "blurd/model.h"

#include "blurd/error.h"
#include "blurd/files.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef BLURD_DATADIR
#define BLURD_DATADIR "/usr/local/share/blurd"
#endif

/* The safetensors reference implementation refuses larger headers; so do we, so a hostile
 * length cannot make us parse hundreds of megabytes of JSON. */
#define MAX_HEADER_BYTES (100u * 1000u * 1000u)

/* Tensors are written after the header padded to this alignment, so a mapped file's
 * floats are naturally aligned. */
#define DATA_ALIGNMENT 8

#define WRITE_BUFFER_BYTES (1u << 20)

#define DEFAULT_TILE_COUNT 8
#define MAX_TILE_COUNT     64
#define MAX_ANALYSIS_SIZE  65536
#define DEFAULT_CLASSES    "blurred,clear"

enum dtype {
    DTYPE_F32,
    DTYPE_F16,
};

struct meta_entry {
    char *key;   /* owned */
    char *value; /* owned */
};

struct blurd_model {
    blurd_net *net; /* owned */
    struct blurd_preprocess preprocess;
    struct meta_entry *meta; /* sorted by strcmp of the keys, no duplicates */
    int meta_count;
    int meta_capacity;
    char *file_name; /* base name of the file last loaded or saved; "" if none (owned) */
    /* The SHA-256 costs more than the rest of a load (74 ms for the default model), and
     * only the database and `model info` need it, so it is computed on first request from
     * the loaded file, kept open until then: a model replaced by rename meanwhile is still
     * the one hashed. */
    pthread_mutex_t hash_lock;
    int hash_fd;   /* the loaded file until hashed, else -1 (owned) */
    char hash[65]; /* lowercase hex SHA-256 of that file; "" if none */
};

/* Writes "PATH: reason" into err and returns code. */
static int fail(char *err, int code, const char *path, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, int code, const char *path, const char *format, ...)
{
    char reason[BLURD_ERR_LEN];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    return blurd_error_set(err, code, "%s: %s", path, reason);
}

/* ---- little-endian bytes and half precision ---- */

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void store_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static float load_f32(const unsigned char *p)
{
    uint32_t bits =
        (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static void store_f32(unsigned char *p, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(bits >> (8 * i));
}

/* IEEE 754 binary16 to float; exact for every half, including subnormals, infinities and
 * NaNs (whose payload is kept). */
static float half_to_float(uint16_t half)
{
    uint32_t sign = (uint32_t)(half & 0x8000u) << 16;
    uint32_t exponent = (half >> 10) & 0x1fu;
    uint32_t mantissa = half & 0x3ffu;
    uint32_t bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | mantissa << 13;
    } else if (exponent != 0) {
        /* rebias from 15 to 127 */
        bits = sign | (exponent + 112) << 23 | mantissa << 13;
    } else {
        /* zero or subnormal: mantissa x 2^-24, exactly representable as a float */
        float magnitude = (float)mantissa * 0x1p-24f;
        return sign ? -magnitude : magnitude;
    }
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* float to binary16, rounding to nearest with ties to even; values from 65520 up become
 * infinity, NaNs stay (quiet) NaNs. */
static uint16_t float_to_half(float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u | ((magnitude >> 13) & 0x1ffu));
    if (magnitude >= 0x477ff000u) /* 65520, halfway between 65504 and 65536 */
        return (uint16_t)(sign | 0x7c00u);
    if (magnitude < 0x38800000u) {
        /* below 2^-14, the smallest normal half: count units of 2^-24.  The scaling is
         * exact and nearbyintf rounds ties to even in the default rounding mode; a result
         * of 1024 is the bit pattern of 2^-14, so rounding up into the normals is right. */
        float units = fabsf(value) * 0x1p24f;
        return (uint16_t)(sign | (uint16_t)nearbyintf(units));
    }
    uint32_t half = ((magnitude >> 23) - 112) << 10 | (magnitude >> 13 & 0x3ffu);
    uint32_t rest = magnitude & 0x1fffu;
    /* a carry out of the mantissa correctly bumps the exponent */
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
        half++;
    return (uint16_t)(sign | half);
}

/* ---- metadata: a sorted array of owned strings ---- */

/* Index of `key`, or -(insertion point) - 1 when absent. */
static int meta_search(const blurd_model *model, const char *key)
{
    int low = 0, high = model->meta_count - 1;
    while (low <= high) {
        int middle = low + (high - low) / 2;
        int order = strcmp(model->meta[middle].key, key);
        if (order == 0)
            return middle;
        if (order < 0)
            low = middle + 1;
        else
            high = middle - 1;
    }
    return -low - 1;
}

static const char *meta_value(const blurd_model *model, const char *key)
{
    int index = meta_search(model, key);
    return index >= 0 ? model->meta[index].value : NULL;
}

/* Sets key to a copy of value without validation.  Returns 0 or BLURD_ENOMEM. */
static int meta_put(blurd_model *model, const char *key, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return BLURD_ENOMEM;
    int index = meta_search(model, key);
    if (index >= 0) {
        free(model->meta[index].value);
        model->meta[index].value = copy;
        return 0;
    }
    index = -index - 1;
    if (model->meta_count == model->meta_capacity) {
        int capacity = model->meta_capacity ? 2 * model->meta_capacity : 16;
        struct meta_entry *grown = realloc(model->meta, (size_t)capacity * sizeof *grown);
        if (grown == NULL) {
            free(copy);
            return BLURD_ENOMEM;
        }
        model->meta = grown;
        model->meta_capacity = capacity;
    }
    char *key_copy = strdup(key);
    if (key_copy == NULL) {
        free(copy);
        return BLURD_ENOMEM;
    }
    memmove(&model->meta[index + 1], &model->meta[index],
            (size_t)(model->meta_count - index) * sizeof *model->meta);
    model->meta[index].key = key_copy;
    model->meta[index].value = copy;
    model->meta_count++;
    return 0;
}

static void meta_remove(blurd_model *model, int index)
{
    free(model->meta[index].key);
    free(model->meta[index].value);
    memmove(&model->meta[index], &model->meta[index + 1],
            (size_t)(model->meta_count - index - 1) * sizeof *model->meta);
    model->meta_count--;
}

/* ---- preprocessing: parsing and validating the blurd.* keys ---- */

/* Parses a plain decimal integer in [low, high]; no sign, spaces or other characters,
 * so that "8 " or "0x8" in a hand-edited file are reported rather than half-read. */
static bool parse_int(const char *text, int low, int high, int *out)
{
    if (*text == '\0')
        return false;
    long long value = 0;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return false;
        value = value * 10 + (*c - '0');
        if (value > high)
            return false;
    }
    if (value < low)
        return false;
    *out = (int)value;
    return true;
}

/* Parses a decimal fraction the same way in every locale. */
static bool parse_number(const char *text, double *out)
{
    if (*text == '\0' || strspn(text, "0123456789.eE+-") != strlen(text))
        return false;
    char *end;
    double value = g_ascii_strtod(text, &end);
    if (*end != '\0' || !isfinite(value))
        return false;
    *out = value;
    return true;
}

/* Fills `out` from the model's metadata, checked against `net`.  On failure writes a
 * reason that starts with the offending key into `reason` and returns -1. */
static int parse_preprocess(const blurd_model *model, const blurd_net *net,
                            struct blurd_preprocess *out, char *reason, size_t size)
{
    struct blurd_shape input = blurd_net_input_shape(net);
    const char *value;
    if (input.height != input.width) {
        snprintf(reason, size, "blurd.spec: input %dx%d is not square, as blurd's inputs are",
                 input.height, input.width);
        return -1;
    }
    if (input.channels != 3) {
        /* images are always decoded to RGB, so any other input cannot be fed */
        snprintf(reason, size, "blurd.spec: input has %d channels; blurd feeds RGB (3)",
                 input.channels);
        return -1;
    }

    value = meta_value(model, "blurd.input");
    if (value == NULL || strcmp(value, "tiles") == 0) {
        out->input = BLURD_INPUT_TILES;
    } else if (strcmp(value, "resize") == 0) {
        out->input = BLURD_INPUT_RESIZE;
    } else {
        snprintf(reason, size, "blurd.input is \"%s\", expected \"tiles\" or \"resize\"", value);
        return -1;
    }

    out->tile_size = input.height;
    value = meta_value(model, "blurd.tile_size");
    if (value != NULL) {
        int tile_size;
        if (!parse_int(value, 1, INT32_MAX, &tile_size) || tile_size != input.height) {
            snprintf(reason, size,
                     "blurd.tile_size is \"%s\", but the net's input is %dx%d: expected \"%d\"",
                     value, input.height, input.width, input.height);
            return -1;
        }
    }

    out->tile_count = DEFAULT_TILE_COUNT;
    value = meta_value(model, "blurd.tile_count");
    if (value != NULL && !parse_int(value, 1, MAX_TILE_COUNT, &out->tile_count)) {
        snprintf(reason, size, "blurd.tile_count is \"%s\", expected an integer from 1 to %d",
                 value, MAX_TILE_COUNT);
        return -1;
    }

    out->analysis_size = 0;
    value = meta_value(model, "blurd.analysis_size");
    if (value != NULL && (!parse_int(value, 0, MAX_ANALYSIS_SIZE, &out->analysis_size) ||
                          (out->analysis_size != 0 && out->analysis_size < out->tile_size))) {
        snprintf(reason, size,
                 "blurd.analysis_size is \"%s\", expected 0 (native) or a side from %d to %d",
                 value, out->tile_size, MAX_ANALYSIS_SIZE);
        return -1;
    }

    value = meta_value(model, "blurd.classes");
    if (value != NULL && strcmp(value, DEFAULT_CLASSES) != 0) {
        snprintf(reason, size, "blurd.classes is \"%s\", expected \"" DEFAULT_CLASSES "\"", value);
        return -1;
    }
    if (blurd_net_output_count(net) != 2) {
        snprintf(reason, size, "blurd.classes names 2 classes, but the net has %d outputs",
                 blurd_net_output_count(net));
        return -1;
    }

    out->threshold = 0.5f;
    value = meta_value(model, "blurd.threshold");
    if (value != NULL) {
        double threshold;
        if (!parse_number(value, &threshold) || !(threshold > 0.0 && threshold < 1.0) ||
            !((float)threshold > 0.0f && (float)threshold < 1.0f)) {
            snprintf(reason, size,
                     "blurd.threshold is \"%s\", expected a number strictly between 0 and 1",
                     value);
            return -1;
        }
        out->threshold = (float)threshold;
    }
    return 0;
}

/* ---- the model object ---- */

static blurd_model *model_new(void)
{
    blurd_model *model = calloc(1, sizeof *model);
    if (model == NULL)
        return NULL;
    model->hash_fd = -1;
    pthread_mutex_init(&model->hash_lock, NULL);
    model->file_name = strdup("");
    if (model->file_name == NULL) {
        free(model);
        return NULL;
    }
    return model;
}

/* Records `path` as the model's file: its base name without a ".safetensors" suffix. */
static int set_file_name(blurd_model *model, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t n = strlen(base);
    const char *suffix = ".safetensors";
    size_t suffix_length = strlen(suffix);
    if (n > suffix_length && strcmp(base + n - suffix_length, suffix) == 0)
        n -= suffix_length;
    char *name = strndup(base, n);
    if (name == NULL)
        return BLURD_ENOMEM;
    free(model->file_name);
    model->file_name = name;
    return 0;
}

void blurd_model_free(blurd_model *model)
{
    if (model == NULL)
        return;
    blurd_net_free(model->net);
    for (int i = 0; i < model->meta_count; i++) {
        free(model->meta[i].key);
        free(model->meta[i].value);
    }
    free(model->meta);
    free(model->file_name);
    if (model->hash_fd >= 0)
        close(model->hash_fd);
    pthread_mutex_destroy(&model->hash_lock);
    free(model);
}

int blurd_model_create(blurd_model **out, const char *spec, uint64_t seed, char *err)
{
    *out = NULL;
    blurd_model *model = model_new();
    if (model == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "model: out of memory");
    int rc = blurd_net_create(&model->net, spec, err);
    if (rc != 0) {
        blurd_model_free(model);
        return rc;
    }
    blurd_net_init_he(model->net, seed);

    struct blurd_shape input = blurd_net_input_shape(model->net);
    char tile_size[16];
    snprintf(tile_size, sizeof tile_size, "%d", input.height);
    char tile_count[16];
    snprintf(tile_count, sizeof tile_count, "%d", DEFAULT_TILE_COUNT);
    const char *defaults[][2] = {
        {"blurd.spec", blurd_net_spec(model->net)},
        {"blurd.input", "tiles"},
        {"blurd.tile_size", tile_size},
        {"blurd.tile_count", tile_count},
        {"blurd.analysis_size", "0"},
        {"blurd.classes", DEFAULT_CLASSES},
        {"blurd.threshold", "0.5"},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        if (meta_put(model, defaults[i][0], defaults[i][1]) != 0) {
            blurd_model_free(model);
            return blurd_error_set(err, BLURD_ENOMEM, "model: out of memory");
        }
    }
    char reason[BLURD_ERR_LEN];
    if (parse_preprocess(model, model->net, &model->preprocess, reason, sizeof reason) != 0) {
        blurd_model_free(model);
        return blurd_error_set(err, BLURD_ESPEC, "%s: %s", spec, reason);
    }
    *out = model;
    return 0;
}

/* ---- loading ---- */

/* One tensor's place in the data buffer, for the overlap and coverage checks. */
struct range {
    uint64_t begin, end;
    int tensor; /* index in the net */
};

/* Every tensor a file holds: the net's, in spec order, then the caller's extras (a
 * checkpoint's optimizer state) as rank-1 tensors.  Returns a malloc'd array of
 * *count entries, or NULL when out of memory. */
static struct blurd_tensor *list_tensors(const blurd_net *net,
                                         const struct blurd_model_extra *extras, int extra_count,
                                         int *count)
{
    int net_count = blurd_net_tensor_count(net);
    struct blurd_tensor *all = calloc((size_t)(net_count + extra_count) + 1, sizeof *all);
    if (all == NULL)
        return NULL;
    for (int t = 0; t < net_count; t++)
        blurd_net_tensor(net, t, &all[t]);
    for (int e = 0; e < extra_count; e++) {
        struct blurd_tensor *tensor = &all[net_count + e];
        snprintf(tensor->name, sizeof tensor->name, "%s", extras[e].name);
        tensor->rank = 1;
        tensor->dims[0] = (int)extras[e].count;
        tensor->count = extras[e].count;
        tensor->data = extras[e].data;
    }
    *count = net_count + extra_count;
    return all;
}

static int compare_ranges(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int compare_meta(const void *a, const void *b)
{
    return strcmp(((const struct meta_entry *)a)->key, ((const struct meta_entry *)b)->key);
}

/* Formats a JSON shape array as "[3,3,3,16]" (elements that are not integers as "?"). */
static void format_json_shape(const json_t *shape, char *buffer, size_t size)
{
    size_t used = (size_t)snprintf(buffer, size, "[");
    for (size_t i = 0; i < json_array_size(shape) && used < size; i++) {
        const json_t *dim = json_array_get(shape, i);
        if (json_is_integer(dim))
            used += (size_t)snprintf(buffer + used, size - used, "%s%" JSON_INTEGER_FORMAT,
                                     i ? "," : "", json_integer_value(dim));
        else
            used += (size_t)snprintf(buffer + used, size - used, "%s?", i ? "," : "");
    }
    if (used < size)
        snprintf(buffer + used, size - used, "]");
}

static void format_dims(const struct blurd_tensor *tensor, char *buffer, size_t size)
{
    size_t used = (size_t)snprintf(buffer, size, "[");
    for (int i = 0; i < tensor->rank && used < size; i++)
        used += (size_t)snprintf(buffer + used, size - used, "%s%d", i ? "," : "", tensor->dims[i]);
    if (used < size)
        snprintf(buffer + used, size - used, "]");
}

/* Checks one header entry against the net's tensor; fills its dtype and byte range. */
static int check_entry(const json_t *entry, const struct blurd_tensor *tensor, uint64_t data_size,
                       enum dtype *dtype, struct range *range, const char *path, char *err)
{
    const char *name = tensor->name;
    if (!json_is_object(entry))
        return fail(err, BLURD_EMODEL, path, "tensor %s: header entry is not an object", name);

    const json_t *dtype_json = json_object_get(entry, "dtype");
    const char *dtype_name = json_string_value(dtype_json);
    if (dtype_name == NULL)
        return fail(err, BLURD_EMODEL, path, "tensor %s has no dtype string", name);
    if (strcmp(dtype_name, "F32") == 0)
        *dtype = DTYPE_F32;
    else if (strcmp(dtype_name, "F16") == 0)
        *dtype = DTYPE_F16;
    else
        return fail(err, BLURD_EMODEL, path, "tensor %s has dtype %s, expected F32 or F16", name,
                    dtype_name);

    const json_t *shape = json_object_get(entry, "shape");
    if (!json_is_array(shape))
        return fail(err, BLURD_EMODEL, path, "tensor %s has no shape array", name);
    bool same = json_array_size(shape) == (size_t)tensor->rank;
    for (int i = 0; same && i < tensor->rank; i++) {
        const json_t *dim = json_array_get(shape, (size_t)i);
        same = json_is_integer(dim) && json_integer_value(dim) == tensor->dims[i];
    }
    if (!same) {
        char got[128], expected[128];
        format_json_shape(shape, got, sizeof got);
        format_dims(tensor, expected, sizeof expected);
        return fail(err, BLURD_EMODEL, path, "tensor %s has shape %s, expected %s", name, got,
                    expected);
    }

    const json_t *offsets = json_object_get(entry, "data_offsets");
    const json_t *begin_json = json_array_get(offsets, 0);
    const json_t *end_json = json_array_get(offsets, 1);
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 || !json_is_integer(begin_json) ||
        !json_is_integer(end_json) || json_integer_value(begin_json) < 0 ||
        json_integer_value(end_json) < 0)
        return fail(err, BLURD_EMODEL, path,
                    "tensor %s: data_offsets is not a pair of non-negative integers", name);
    uint64_t begin = (uint64_t)json_integer_value(begin_json);
    uint64_t end = (uint64_t)json_integer_value(end_json);
    if (end < begin)
        return fail(err, BLURD_EMODEL, path, "tensor %s: data_offsets [%llu,%llu] end before begin",
                    name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return fail(err, BLURD_EMODEL, path,
                    "tensor %s: data_offsets [%llu,%llu] past the end of the %llu-byte data", name,
                    (unsigned long long)begin, (unsigned long long)end,
                    (unsigned long long)data_size);
    uint64_t expected_bytes = (uint64_t)tensor->count * (*dtype == DTYPE_F32 ? 4 : 2);
    if (end - begin != expected_bytes)
        return fail(err, BLURD_EMODEL, path,
                    "tensor %s: data_offsets [%llu,%llu] hold %llu bytes, its shape and "
                    "dtype %s need %llu (size mismatch)",
                    name, (unsigned long long)begin, (unsigned long long)end,
                    (unsigned long long)(end - begin), dtype_name,
                    (unsigned long long)expected_bytes);
    range->begin = begin;
    range->end = end;
    return 0;
}

/* safetensors requires the tensors to tile the data buffer exactly: no two share a byte
 * and no byte belongs to none, so a file cannot hide data or alias one tensor in another.
 * Overlaps are looked for first, as aliasing is the graver fault. */
static int check_coverage(const struct blurd_tensor *tensors, struct range *ranges, int count,
                          uint64_t data_size, const char *path, char *err)
{
    qsort(ranges, (size_t)count, sizeof *ranges, compare_ranges);
    uint64_t covered = 0;
    int last = -1; /* the range that reaches `covered` */
    for (int i = 0; i < count; i++) {
        if (ranges[i].begin == ranges[i].end)
            continue; /* an empty tensor owns no bytes */
        if (ranges[i].begin < covered)
            return fail(err, BLURD_EMODEL, path, "tensors %s and %s overlap in the data",
                        tensors[ranges[last].tensor].name, tensors[ranges[i].tensor].name);
        covered = ranges[i].end;
        last = i;
    }
    covered = 0;
    for (int i = 0; i < count; i++) {
        if (ranges[i].begin > covered)
            return fail(err, BLURD_EMODEL, path,
                        "hole in the data: bytes %llu to %llu belong to no tensor",
                        (unsigned long long)covered, (unsigned long long)ranges[i].begin);
        if (ranges[i].end > covered)
            covered = ranges[i].end;
    }
    if (covered != data_size)
        return fail(err, BLURD_EMODEL, path,
                    "hole in the data: its last %llu bytes belong to no tensor",
                    (unsigned long long)(data_size - covered));
    return 0;
}

/* Copies one tensor from the file into the net, converting and rejecting non-finite
 * values: a NaN or infinite weight would poison every score silently. */
static int copy_tensor(const unsigned char *data, enum dtype dtype,
                       const struct blurd_tensor *tensor, const char *path, char *err)
{
    for (size_t i = 0; i < tensor->count; i++) {
        float value;
        if (dtype == DTYPE_F32) {
            value = load_f32(data + 4 * i);
        } else {
            uint16_t half = (uint16_t)(data[2 * i] | data[2 * i + 1] << 8);
            value = half_to_float(half);
        }
        if (!isfinite(value))
            return fail(err, BLURD_EMODEL, path, "tensor %s has %s weight at index %zu",
                        tensor->name, isnan(value) ? "a NaN" : "an infinite", i);
        tensor->data[i] = value;
    }
    return 0;
}

/* Builds the model (and fills the extras) from the mapped bytes of a file of `size` (>= 8)
 * bytes. */
static int load_mapped(blurd_model *model, const unsigned char *bytes, uint64_t size,
                       struct blurd_model_extra *extras, int extra_count, const char *path,
                       char *err)
{
    uint64_t header_size = load_le64(bytes);
    if (header_size > MAX_HEADER_BYTES)
        return fail(err, BLURD_EMODEL, path,
                    "header length %llu exceeds the %u-byte limit (corrupt or not safetensors)",
                    (unsigned long long)header_size, MAX_HEADER_BYTES);
    if (header_size > size - 8)
        return fail(err, BLURD_EMODEL, path,
                    "truncated: header length %llu exceeds the %llu bytes after it",
                    (unsigned long long)header_size, (unsigned long long)(size - 8));
    const unsigned char *data = bytes + 8 + header_size;
    uint64_t data_size = size - 8 - header_size;

    json_error_t json_error;
    json_t *header = json_loadb((const char *)bytes + 8, (size_t)header_size,
                                JSON_REJECT_DUPLICATES, &json_error);
    if (header == NULL)
        return fail(err, BLURD_EMODEL, path, "header is not valid JSON: %s (column %d)",
                    json_error.text, json_error.column);

    int rc = 0;
    struct range *ranges = NULL;
    enum dtype *dtypes = NULL;
    struct blurd_tensor *tensors = NULL;
    if (!json_is_object(header)) {
        rc = fail(err, BLURD_EMODEL, path, "header is not a JSON object");
        goto done;
    }

    /* metadata first: the spec decides which tensors to expect */
    json_t *metadata = json_object_get(header, "__metadata__");
    if (!json_is_object(metadata)) {
        rc = fail(err, BLURD_EMODEL, path, "%s (blurd.spec is required)",
                  metadata ? "__metadata__ is not an object" : "header has no __metadata__");
        goto done;
    }
    size_t meta_count = json_object_size(metadata);
    if (meta_count > INT32_MAX / 2) {
        rc = fail(err, BLURD_EMODEL, path, "__metadata__ has too many keys");
        goto done;
    }
    model->meta = calloc(meta_count ? meta_count : 1, sizeof *model->meta);
    if (model->meta == NULL) {
        rc = fail(err, BLURD_ENOMEM, path, "out of memory");
        goto done;
    }
    model->meta_capacity = (int)(meta_count ? meta_count : 1);
    const char *key;
    json_t *value;
    json_object_foreach(metadata, key, value)
    {
        if (!json_is_string(value)) {
            rc = fail(err, BLURD_EMODEL, path, "__metadata__ value of %s is not a string", key);
            goto done;
        }
        struct meta_entry *entry = &model->meta[model->meta_count];
        entry->key = strdup(key);
        entry->value = strdup(json_string_value(value));
        model->meta_count++;
        if (entry->key == NULL || entry->value == NULL) {
            rc = fail(err, BLURD_ENOMEM, path, "out of memory");
            goto done;
        }
    }
    qsort(model->meta, (size_t)model->meta_count, sizeof *model->meta, compare_meta);

    const char *spec = meta_value(model, "blurd.spec");
    if (spec == NULL) {
        rc = fail(err, BLURD_EMODEL, path, "__metadata__ has no blurd.spec");
        goto done;
    }
    char net_err[BLURD_ERR_LEN];
    if (blurd_net_create(&model->net, spec, net_err) != 0) {
        rc = fail(err, BLURD_EMODEL, path, "blurd.spec: %s", net_err);
        goto done;
    }
    char reason[BLURD_ERR_LEN];
    if (parse_preprocess(model, model->net, &model->preprocess, reason, sizeof reason) != 0) {
        rc = fail(err, BLURD_EMODEL, path, "%s", reason);
        goto done;
    }

    /* extras the caller could not size are the size of the net's parameters */
    for (int e = 0; e < extra_count; e++) {
        if (extras[e].data != NULL)
            continue;
        extras[e].count = blurd_net_parameter_count(model->net);
        extras[e].data = malloc(extras[e].count * sizeof(float) + 1);
        if (extras[e].data == NULL) {
            rc = fail(err, BLURD_ENOMEM, path, "out of memory");
            goto done;
        }
    }

    /* every header entry must be one of the net's tensors (or an expected extra) */
    int tensor_count;
    tensors = list_tensors(model->net, extras, extra_count, &tensor_count);
    if (tensors == NULL) {
        rc = fail(err, BLURD_ENOMEM, path, "out of memory");
        goto done;
    }
    json_object_foreach(header, key, value)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        bool known = false;
        for (int t = 0; t < tensor_count && !known; t++)
            known = strcmp(tensors[t].name, key) == 0;
        if (!known && extra_count == 0 && meta_value(model, "checkpoint.version") != NULL) {
            /* written by `blurd train` (see train.c), which saves the best model apart */
            rc = fail(err, BLURD_EMODEL, path,
                      "a training checkpoint, not a model: continue it with `blurd train "
                      "--resume`, or use the model that training saved");
            goto done;
        }
        if (!known) {
            rc = fail(err, BLURD_EMODEL, path, "extra tensor %s: the spec has no such parameter",
                      key);
            goto done;
        }
    }

    ranges = calloc((size_t)tensor_count + 1, sizeof *ranges);
    dtypes = calloc((size_t)tensor_count + 1, sizeof *dtypes);
    if (ranges == NULL || dtypes == NULL) {
        rc = fail(err, BLURD_ENOMEM, path, "out of memory");
        goto done;
    }
    for (int t = 0; t < tensor_count; t++) {
        const json_t *entry = json_object_get(header, tensors[t].name);
        if (entry == NULL) {
            rc = fail(err, BLURD_EMODEL, path, "missing tensor %s", tensors[t].name);
            goto done;
        }
        rc = check_entry(entry, &tensors[t], data_size, &dtypes[t], &ranges[t], path, err);
        if (rc != 0)
            goto done;
        ranges[t].tensor = t;
    }
    struct range *sorted = calloc((size_t)tensor_count + 1, sizeof *sorted);
    if (sorted == NULL) {
        rc = fail(err, BLURD_ENOMEM, path, "out of memory");
        goto done;
    }
    memcpy(sorted, ranges, (size_t)tensor_count * sizeof *sorted);
    rc = check_coverage(tensors, sorted, tensor_count, data_size, path, err);
    free(sorted);
    if (rc != 0)
        goto done;

    for (int t = 0; t < tensor_count; t++) {
        rc = copy_tensor(data + ranges[t].begin, dtypes[t], &tensors[t], path, err);
        if (rc != 0)
            goto done;
    }

done:
    free(tensors);
    free(ranges);
    free(dtypes);
    json_decref(header);
    return rc;
}

static int load_file(blurd_model **out, const char *path, struct blurd_model_extra *extras,
                     int extra_count, char *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int saved = errno;
        return fail(err, blurd_error_from_errno(saved), path, "%s", strerror(saved));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        return fail(err, blurd_error_from_errno(saved), path, "%s", strerror(saved));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return fail(err, BLURD_EISDIR, path, "is a directory, not a model file");
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, BLURD_EMODEL, path, "not a regular file");
    }
    if (st.st_size < 8) {
        close(fd);
        return fail(err, BLURD_EMODEL, path,
                    "truncated: %lld bytes, shorter than the 8-byte header length",
                    (long long)st.st_size);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size > SIZE_MAX) {
        close(fd);
        return fail(err, BLURD_EMODEL, path, "too large to map");
    }
    /* MAP_POPULATE: every page is read anyway, and one call is cheaper than a fault each */
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    int map_errno = errno;
    if (map == MAP_FAILED) {
        close(fd);
        return fail(err, blurd_error_from_errno(map_errno), path, "cannot map: %s",
                    strerror(map_errno));
    }

    blurd_model *model = model_new();
    int rc = model ? load_mapped(model, map, size, extras, extra_count, path, err)
                   : fail(err, BLURD_ENOMEM, path, "out of memory");
    munmap(map, (size_t)size);
    if (rc == 0)
        model->hash_fd = fd; /* hashed on first request (blurd_model_hash) */
    else
        close(fd);
    if (rc == 0 && set_file_name(model, path) != 0)
        rc = fail(err, BLURD_ENOMEM, path, "out of memory");
    if (rc != 0) {
        blurd_model_free(model);
        return rc;
    }
    *out = model;
    return 0;
}

int blurd_model_load(blurd_model **out, const char *path, char *err)
{
    return load_file(out, path, NULL, 0, err);
}

int blurd_model_load_extras(blurd_model **out, const char *path, struct blurd_model_extra *extras,
                            int extra_count, char *err)
{
    bool *allocated = calloc((size_t)extra_count + 1, sizeof *allocated);
    if (allocated == NULL)
        return fail(err, BLURD_ENOMEM, path, "out of memory");
    for (int e = 0; e < extra_count; e++)
        allocated[e] = extras[e].data == NULL;
    int rc = load_file(out, path, extras, extra_count, err);
    for (int e = 0; rc != 0 && e < extra_count; e++) {
        if (allocated[e]) {
            free(extras[e].data);
            extras[e].data = NULL;
            extras[e].count = 0;
        }
    }
    free(allocated);
    return rc;
}

/* ---- saving ---- */

/* Buffered writes to a file descriptor that also feed the SHA-256 of what is written. */
struct writer {
    int fd;
    GChecksum *checksum;
    unsigned char *buffer;
    size_t used;
    int error; /* first errno, 0 if none */
};

static void writer_flush(struct writer *w)
{
    size_t done = 0;
    while (w->error == 0 && done < w->used) {
        ssize_t n = write(w->fd, w->buffer + done, w->used - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            w->error = n < 0 ? errno : EIO;
        else
            done += (size_t)n;
    }
    w->used = 0;
}

static void writer_put(struct writer *w, const void *bytes, size_t n)
{
    g_checksum_update(w->checksum, bytes, (gssize)n);
    const unsigned char *p = bytes;
    while (n > 0) {
        if (w->used == WRITE_BUFFER_BYTES)
            writer_flush(w);
        size_t chunk = WRITE_BUFFER_BYTES - w->used;
        if (chunk > n)
            chunk = n;
        memcpy(w->buffer + w->used, p, chunk);
        w->used += chunk;
        p += chunk;
        n -= chunk;
    }
}

/* The JSON header: __metadata__ in sorted key order, then the tensors in spec order with
 * contiguous data offsets.  Returns a malloc'd string or NULL when out of memory. */
static char *build_header(const blurd_model *model, const struct blurd_tensor *tensors,
                          int tensor_count, size_t element_size)
{
    json_t *root = json_object();
    json_t *metadata = json_object();
    int bad = root == NULL || metadata == NULL;
    for (int i = 0; !bad && i < model->meta_count; i++)
        bad |= json_object_set_new(metadata, model->meta[i].key, json_string(model->meta[i].value));
    if (!bad)
        bad |= json_object_set(root, "__metadata__", metadata);
    uint64_t offset = 0;
    for (int t = 0; !bad && t < tensor_count; t++) {
        const struct blurd_tensor tensor = tensors[t];
        json_t *entry = json_object();
        json_t *shape = json_array();
        json_t *offsets = json_array();
        bad |= json_object_set_new(root, tensor.name, entry);
        bad |= json_object_set_new(entry, "dtype", json_string(element_size == 4 ? "F32" : "F16"));
        bad |= json_object_set_new(entry, "shape", shape);
        for (int d = 0; d < tensor.rank; d++)
            bad |= json_array_append_new(shape, json_integer(tensor.dims[d]));
        uint64_t end = offset + tensor.count * element_size;
        bad |= json_array_append_new(offsets, json_integer((json_int_t)offset));
        bad |= json_array_append_new(offsets, json_integer((json_int_t)end));
        bad |= json_object_set_new(entry, "data_offsets", offsets);
        offset = end;
    }
    char *text = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(metadata);
    json_decref(root);
    return text;
}

/* Opens a new file "PATH.tmp-XXXXXX" beside `path`; O_EXCL with a random suffix rather
 * than mkstemp, so the file gets the usual 0666-minus-umask permissions of a saved file. */
static int create_temporary(const char *path, char **tmp_path)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t n = strlen(path) + sizeof ".tmp-XXXXXX";
    char *name = malloc(n);
    if (name == NULL) {
        errno = ENOMEM;
        return -1;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned char random_bytes[6];
        if (getrandom(random_bytes, sizeof random_bytes, 0) != (ssize_t)sizeof random_bytes) {
            uint64_t mix = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)attempt;
            for (size_t i = 0; i < sizeof random_bytes; i++)
                random_bytes[i] = (unsigned char)(mix >> (8 * i));
        }
        char suffix[7];
        for (size_t i = 0; i < 6; i++)
            suffix[i] = letters[random_bytes[i] % (sizeof letters - 1)];
        suffix[6] = '\0';
        snprintf(name, n, "%s.tmp-%s", path, suffix);
        int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *tmp_path = name;
            return fd;
        }
        if (errno != EEXIST)
            break;
    }
    int saved = errno;
    free(name);
    errno = saved;
    return -1;
}

/* fsyncs the folder holding `path`, so the rename that put the file there is durable. */
static int sync_parent(const char *path)
{
    char dir[PATH_MAX];
    blurd_files_parent(path, dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    /* some file systems cannot sync a directory; the data itself is already durable */
    return rc == EINVAL ? 0 : rc;
}

/* Refuses to write what blurd_model_load would reject or could not read back. */
static int check_savable(const struct blurd_tensor *tensors, int tensor_count, int half,
                         const char *path, char *err)
{
    for (int t = 0; t < tensor_count; t++) {
        const struct blurd_tensor tensor = tensors[t];
        for (size_t i = 0; i < tensor.count; i++) {
            float value = tensor.data[i];
            if (!isfinite(value))
                return fail(err, BLURD_EINVAL, path,
                            "not saved: tensor %s has %s weight at index %zu", tensor.name,
                            isnan(value) ? "a NaN" : "an infinite", i);
            if (half && fabsf(value) >= 65520.0f)
                return fail(err, BLURD_EINVAL, path,
                            "not saved: tensor %s holds %g, beyond half precision's range",
                            tensor.name, (double)value);
        }
    }
    return 0;
}

static int save_file(blurd_model *model, const char *path, int half,
                     const struct blurd_model_extra *extras, int extra_count, char *err)
{
    int tensor_count;
    struct blurd_tensor *tensors = list_tensors(model->net, extras, extra_count, &tensor_count);
    if (tensors == NULL)
        return fail(err, BLURD_ENOMEM, path, "out of memory");
    int rc = check_savable(tensors, tensor_count, half, path, err);
    if (rc != 0) {
        free(tensors);
        return rc;
    }
    size_t element_size = half ? 2 : 4;
    char *header = build_header(model, tensors, tensor_count, element_size);
    if (header == NULL) {
        free(tensors);
        return fail(err, BLURD_ENOMEM, path, "out of memory");
    }
    size_t header_length = strlen(header);
    /* pad with spaces (valid JSON whitespace) so the data starts aligned */
    size_t padded = (8 + header_length + DATA_ALIGNMENT - 1) / DATA_ALIGNMENT * DATA_ALIGNMENT - 8;

    struct writer w = {.fd = -1};
    w.buffer = malloc(WRITE_BUFFER_BYTES);
    w.checksum = g_checksum_new(G_CHECKSUM_SHA256);
    char *tmp_path = NULL;
    if (w.buffer == NULL || w.checksum == NULL) {
        rc = fail(err, BLURD_ENOMEM, path, "out of memory");
        goto done;
    }
    w.fd = create_temporary(path, &tmp_path);
    if (w.fd < 0) {
        int saved = errno;
        rc = fail(err, blurd_error_from_errno(saved), path, "cannot create a temporary file: %s",
                  strerror(saved));
        goto done;
    }

    unsigned char length[8];
    store_le64(length, padded);
    writer_put(&w, length, sizeof length);
    writer_put(&w, header, header_length);
    for (size_t i = header_length; i < padded; i++)
        writer_put(&w, " ", 1);
    for (int t = 0; t < tensor_count && w.error == 0; t++) {
        const struct blurd_tensor tensor = tensors[t];
        for (size_t i = 0; i < tensor.count; i++) {
            unsigned char bytes[4];
            if (half) {
                uint16_t h = float_to_half(tensor.data[i]);
                bytes[0] = (unsigned char)h;
                bytes[1] = (unsigned char)(h >> 8);
            } else {
                store_f32(bytes, tensor.data[i]);
            }
            writer_put(&w, bytes, element_size);
        }
    }
    writer_flush(&w);
    if (w.error == 0 && fsync(w.fd) != 0)
        w.error = errno;
    if (close(w.fd) != 0 && w.error == 0)
        w.error = errno;
    w.fd = -1;
    if (w.error == 0 && rename(tmp_path, path) != 0)
        w.error = errno;
    if (w.error != 0) {
        rc = fail(err, w.error == ENOSPC ? BLURD_EIO : blurd_error_from_errno(w.error), path,
                  "cannot write: %s", strerror(w.error));
        unlink(tmp_path);
        goto done;
    }

    const gchar *hex = g_checksum_get_string(w.checksum);
    pthread_mutex_lock(&model->hash_lock);
    if (model->hash_fd >= 0) { /* the saved bytes are what the model now names */
        close(model->hash_fd);
        model->hash_fd = -1;
    }
    pthread_mutex_unlock(&model->hash_lock);
    if (hex != NULL && strlen(hex) == 64)
        memcpy(model->hash, hex, 65);
    else
        model->hash[0] = '\0';
    if (set_file_name(model, path) != 0) {
        rc = fail(err, BLURD_ENOMEM, path, "out of memory");
        goto done;
    }
    int sync_error = sync_parent(path);
    if (sync_error != 0)
        rc = fail(err, BLURD_EIO, path, "saved, but cannot sync its folder: %s",
                  strerror(sync_error));

done:
    if (w.fd >= 0) {
        close(w.fd);
        unlink(tmp_path);
    }
    free(tmp_path);
    if (w.checksum != NULL)
        g_checksum_free(w.checksum);
    free(w.buffer);
    free(header);
    free(tensors);
    return rc;
}

int blurd_model_save(blurd_model *model, const char *path, int half, char *err)
{
    return save_file(model, path, half, NULL, 0, err);
}

int blurd_model_save_extras(blurd_model *model, const char *path,
                            const struct blurd_model_extra *extras, int extra_count, char *err)
{
    return save_file(model, path, 0, extras, extra_count, err);
}

/* ---- accessors ---- */

blurd_net *blurd_model_net(const blurd_model *model)
{
    return model->net;
}

const struct blurd_preprocess *blurd_model_preprocess(const blurd_model *model)
{
    return &model->preprocess;
}

const char *blurd_model_meta_get(const blurd_model *model, const char *key)
{
    return meta_value(model, key);
}

int blurd_model_meta_set(blurd_model *model, const char *key, const char *value, char *err)
{
    if (key == NULL || *key == '\0' || !g_utf8_validate(key, -1, NULL) ||
        strcmp(key, "__metadata__") == 0)
        return blurd_error_set(err, BLURD_EINVAL, "metadata key \"%s\" is not allowed",
                               key ? key : "(null)");
    if (value != NULL && !g_utf8_validate(value, -1, NULL))
        return blurd_error_set(err, BLURD_EINVAL, "%s: the value is not valid UTF-8", key);

    if (strcmp(key, "blurd.spec") == 0) {
        /* the spec describes the parameters the model holds, so it may only be respelled */
        blurd_net *net = NULL;
        char net_err[BLURD_ERR_LEN];
        if (value == NULL || blurd_net_create(&net, value, net_err) != 0 ||
            strcmp(blurd_net_spec(net), blurd_net_spec(model->net)) != 0) {
            blurd_net_free(net);
            return blurd_error_set(err, BLURD_EINVAL,
                                   "blurd.spec cannot change: the model's parameters are for "
                                   "\"%s\"",
                                   blurd_net_spec(model->net));
        }
        blurd_net_free(net);
        return meta_put(model, key, value) == 0
                   ? 0
                   : blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory", key);
    }
    if (strncmp(key, "blurd.", 6) != 0) {
        if (value == NULL) {
            int index = meta_search(model, key);
            if (index >= 0)
                meta_remove(model, index);
            return 0;
        }
        return meta_put(model, key, value) == 0
                   ? 0
                   : blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory", key);
    }

    /* a blurd.* key: apply, re-parse, and on failure restore the old state without
     * allocating, so a rejected value never leaves the model half-changed */
    int index = meta_search(model, key);
    struct meta_entry removed = {NULL, NULL};
    char *previous = NULL;
    if (value == NULL) {
        if (index < 0)
            return 0;
        removed = model->meta[index];
        memmove(&model->meta[index], &model->meta[index + 1],
                (size_t)(model->meta_count - index - 1) * sizeof *model->meta);
        model->meta_count--;
    } else if (index >= 0) {
        char *copy = strdup(value);
        if (copy == NULL)
            return blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory", key);
        previous = model->meta[index].value;
        model->meta[index].value = copy;
    } else if (meta_put(model, key, value) != 0) {
        return blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory", key);
    }
    struct blurd_preprocess preprocess;
    char reason[BLURD_ERR_LEN];
    if (parse_preprocess(model, model->net, &preprocess, reason, sizeof reason) != 0) {
        if (value == NULL) {
            memmove(&model->meta[index + 1], &model->meta[index],
                    (size_t)(model->meta_count - index) * sizeof *model->meta);
            model->meta[index] = removed;
            model->meta_count++;
        } else if (previous != NULL) {
            free(model->meta[index].value);
            model->meta[index].value = previous;
        } else {
            meta_remove(model, meta_search(model, key));
        }
        return blurd_error_set(err, BLURD_EINVAL, "%s", reason);
    }
    free(removed.key);
    free(removed.value);
    free(previous);
    model->preprocess = preprocess;
    return 0;
}

int blurd_model_meta_count(const blurd_model *model)
{
    return model->meta_count;
}

void blurd_model_meta_at(const blurd_model *model, int index, const char **key, const char **value)
{
    if (index < 0 || index >= model->meta_count) {
        fprintf(stderr, "%s:%d: blurd_model_meta_at: index %d out of range [0, %d)\n", __FILE__,
                __LINE__, index, model->meta_count);
        abort();
    }
    *key = model->meta[index].key;
    *value = model->meta[index].value;
}

/* SHA-256 of everything readable from `fd`, as hex into `hex` (65 bytes); "" on error. */
static void hash_file(int fd, char *hex)
{
    hex[0] = '\0';
    GChecksum *checksum = g_checksum_new(G_CHECKSUM_SHA256);
    unsigned char *buffer = malloc(1 << 20);
    off_t offset = 0;
    ssize_t n = -1;
    while (checksum != NULL && buffer != NULL && (n = pread(fd, buffer, 1 << 20, offset)) > 0) {
        g_checksum_update(checksum, buffer, n);
        offset += n;
    }
    const gchar *text = checksum != NULL && n == 0 ? g_checksum_get_string(checksum) : NULL;
    if (text != NULL && strlen(text) == 64)
        memcpy(hex, text, 65);
    free(buffer);
    if (checksum != NULL)
        g_checksum_free(checksum);
}

const char *blurd_model_hash(const blurd_model *model)
{
    /* The model is logically constant: computing the hash late only fills in a fact. */
    blurd_model *mutable_model = (blurd_model *)model;
    pthread_mutex_lock(&mutable_model->hash_lock);
    if (mutable_model->hash_fd >= 0) {
        hash_file(mutable_model->hash_fd, mutable_model->hash);
        close(mutable_model->hash_fd);
        mutable_model->hash_fd = -1;
    }
    pthread_mutex_unlock(&mutable_model->hash_lock);
    return model->hash;
}

const char *blurd_model_name(const blurd_model *model)
{
    const char *name = meta_value(model, "blurd.name");
    return name != NULL ? name : model->file_name;
}

int blurd_model_find_default(char *path, char *err)
{
    const char *from_env = getenv("BLURD_MODEL");
    const char *candidates[] = {from_env, "models/default.safetensors",
                                BLURD_DATADIR "/models/default.safetensors"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (candidates[i] == NULL || candidates[i][0] == '\0')
            continue;
        if (access(candidates[i], F_OK) == 0) {
            snprintf(path, PATH_MAX, "%s", candidates[i]);
            return 0;
        }
        if (i == 0) /* a model named in the environment must exist */
            return blurd_error_set(err, BLURD_ENOENT, "%s (from BLURD_MODEL): no such file",
                                   candidates[i]);
    }
    return blurd_error_set(err, BLURD_ENOENT,
                           "no model: neither models/default.safetensors nor "
                           "%s/models/default.safetensors exists; name one with --model FILE",
                           BLURD_DATADIR);
}

int blurd_model_load_or_default(blurd_model **out, const char *path, char *err)
{
    char default_path[PATH_MAX];
    if (path == NULL) {
        *out = NULL;
        int rc = blurd_model_find_default(default_path, err);
        if (rc != 0)
            return rc;
        path = default_path;
    }
    return blurd_model_load(out, path, err);
}
