/* test-model.c - the model file: round trips, metadata, hashes, every corrupt-file case,
 * and the net engine against an independent Python reference (tests/fixtures).
 *
 * Corrupt files are made by taking a good saved file apart (header JSON with jansson,
 * data bytes as they are), changing one thing, and putting it back together.
 */
#include "blurd/model.h"

#include "blurd/error.h"
#include "blurd/net.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensors: layers.1.kernel [3,3,3,4], layers.1.bias [4], layers.4.kernel [100,2],
 * layers.4.bias [2]. */
#define SMALL_SPEC "input 12 12 3; conv 4 3 relu; maxpool 2; flatten; dense 2 softmax"

/* A safetensors file taken apart. */
struct parts {
    json_t *header;
    unsigned char *data;
    size_t data_size;
};

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static blurd_model *create_small(uint64_t seed)
{
    blurd_model *model = NULL;
    char err[BLURD_ERR_LEN];
    if (blurd_model_create(&model, SMALL_SPEC, seed, err) != 0)
        TEST_FAIL("blurd_model_create: %s", err);
    return model;
}

/* Saves a fresh small model as test_path(name) and returns that path. */
static char *save_small(const char *name, int half)
{
    blurd_model *model = create_small(42);
    char *path = test_path(name);
    char err[BLURD_ERR_LEN];
    if (blurd_model_save(model, path, half, err) != 0)
        TEST_FAIL("blurd_model_save: %s", err);
    blurd_model_free(model);
    return path;
}

static blurd_model *load_ok(const char *path)
{
    blurd_model *model = NULL;
    char err[BLURD_ERR_LEN];
    if (blurd_model_load(&model, path, err) != 0)
        TEST_FAIL("blurd_model_load: %s", err);
    ASSERT(model != NULL);
    return model;
}

static struct parts read_parts(const char *path)
{
    size_t n;
    unsigned char *bytes = (unsigned char *)test_read_file(path, &n);
    ASSERT(n >= 8);
    uint64_t header_size = read_le64(bytes);
    ASSERT(8 + header_size <= n);
    json_error_t error;
    struct parts parts;
    parts.header = json_loadb((const char *)bytes + 8, (size_t)header_size, 0, &error);
    if (parts.header == NULL)
        TEST_FAIL("%s: header: %s", path, error.text);
    parts.data_size = n - 8 - (size_t)header_size;
    parts.data = malloc(parts.data_size + 64);
    ASSERT(parts.data != NULL);
    memcpy(parts.data, bytes + 8 + header_size, parts.data_size);
    free(bytes);
    return parts;
}

/* Writes the 8-byte length, `header` and `data` as they are. */
static void write_raw(const char *path, const char *header, size_t header_size, const void *data,
                      size_t data_size)
{
    size_t n = 8 + header_size + data_size;
    unsigned char *bytes = malloc(n + 1);
    ASSERT(bytes != NULL);
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)((uint64_t)header_size >> (8 * i));
    memcpy(bytes + 8, header, header_size);
    if (data_size > 0)
        memcpy(bytes + 8 + header_size, data, data_size);
    test_write_file(path, bytes, n);
    free(bytes);
}

static void write_parts(const char *path, const struct parts *parts)
{
    char *text = json_dumps(parts->header, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ASSERT(text != NULL);
    write_raw(path, text, strlen(text), parts->data, parts->data_size);
    free(text);
}

static void free_parts(struct parts *parts)
{
    json_decref(parts->header);
    free(parts->data);
}

static json_t *entry_of(const struct parts *parts, const char *name)
{
    json_t *entry = json_object_get(parts->header, name);
    if (entry == NULL)
        TEST_FAIL("no header entry %s", name);
    return entry;
}

static uint64_t offset_of(const struct parts *parts, const char *name, int which)
{
    json_t *offsets = json_object_get(entry_of(parts, name), "data_offsets");
    return (uint64_t)json_integer_value(json_array_get(offsets, (size_t)which));
}

static void set_offsets(struct parts *parts, const char *name, long long begin, long long end)
{
    json_t *offsets = json_pack("[II]", (json_int_t)begin, (json_int_t)end);
    ASSERT(json_object_set_new(entry_of(parts, name), "data_offsets", offsets) == 0);
}

static void set_meta(struct parts *parts, const char *key, const char *value)
{
    json_t *metadata = json_object_get(parts->header, "__metadata__");
    ASSERT(metadata != NULL);
    ASSERT(json_object_set_new(metadata, key, json_string(value)) == 0);
}

/* Loads `path` expecting `code`, a NULL model and a one-line message "PATH: reason" whose
 * reason contains `keyword` (the reason only: the temporary folder's name holds the test's
 * name, which would match many keywords). */
static void expect_load_error(int line, const char *path, int code, const char *keyword)
{
    blurd_model *model = (blurd_model *)&model; /* any non-NULL value */
    char err[BLURD_ERR_LEN] = "";
    int rc = blurd_model_load(&model, path, err);
    if (rc != code)
        TEST_FAIL("(line %d) loading %s returned %s, expected %s: \"%s\"", line, path,
                  blurd_error_name(rc), blurd_error_name(code), err);
    if (model != NULL)
        TEST_FAIL("(line %d) a failed load left *out non-NULL", line);
    size_t n = strlen(path);
    if (strncmp(err, path, n) != 0 || strncmp(err + n, ": ", 2) != 0 ||
        strstr(err + n + 2, keyword) == NULL || strchr(err, '\n'))
        TEST_FAIL("(line %d) message \"%s\" should be one line naming %s and \"%s\"", line, err,
                  path, keyword);
}
#define EXPECT_LOAD_ERROR(path, code, keyword) expect_load_error(__LINE__, path, code, keyword)

/* Saves a good small model, applies `edit` to its parts, writes them to a new file and
 * returns that file's path. */
static char *corrupt(const char *name, void (*edit)(struct parts *))
{
    char *good = save_small("good.safetensors", 0);
    struct parts parts = read_parts(good);
    edit(&parts);
    char *path = test_path(name);
    write_parts(path, &parts);
    free_parts(&parts);
    free(good);
    return path;
}

#define EXPECT_CORRUPT(name, edit, code, keyword)                  \
    do {                                                           \
        char *corrupt_path_ = corrupt(name, edit);                 \
        expect_load_error(__LINE__, corrupt_path_, code, keyword); \
        free(corrupt_path_);                                       \
    } while (0)

/* ---- creation, round trips, metadata, hash ---- */

TEST_IMPL(model_create_defaults)
{
    blurd_model *model = create_small(1);
    blurd_net *net = blurd_model_net(model);
    ASSERT(net != NULL);
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.spec"), blurd_net_spec(net));
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.input"), "tiles");
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.tile_size"), "12");
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.tile_count"), "8");
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.analysis_size"), "0");
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.classes"), "blurred,clear");
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.threshold"), "0.5");
    ASSERT(blurd_model_meta_get(model, "blurd.name") == NULL);
    ASSERT_INT_EQ(blurd_model_meta_count(model), 7);
    const struct blurd_preprocess *pre = blurd_model_preprocess(model);
    ASSERT_INT_EQ(pre->input, BLURD_INPUT_TILES);
    ASSERT_INT_EQ(pre->tile_size, 12);
    ASSERT_INT_EQ(pre->tile_count, 8);
    ASSERT_INT_EQ(pre->analysis_size, 0);
    ASSERT(pre->threshold == 0.5f);
    ASSERT_STR_EQ(blurd_model_hash(model), "");
    ASSERT_STR_EQ(blurd_model_name(model), "");

    /* He initialisation: kernels random, biases zero */
    struct blurd_tensor kernel, bias;
    blurd_net_tensor(net, 0, &kernel);
    blurd_net_tensor(net, 1, &bias);
    ASSERT_STR_EQ(kernel.name, "layers.1.kernel");
    int nonzero = 0;
    for (size_t i = 0; i < kernel.count; i++)
        nonzero += kernel.data[i] != 0.0f;
    ASSERT(nonzero > (int)kernel.count / 2);
    for (size_t i = 0; i < bias.count; i++)
        ASSERT(bias.data[i] == 0.0f);
    blurd_model_free(model);
    blurd_model_free(NULL);

    char err[BLURD_ERR_LEN];
    blurd_model *bad = (blurd_model *)&bad;
    ASSERT_INT_EQ(blurd_model_create(&bad, "input 12 12 3; frobnicate 2", 1, err), BLURD_ESPEC);
    ASSERT(bad == NULL);
    ASSERT_CONTAINS(err, "frobnicate");
    /* a net blurd_net_create accepts but a blurd model cannot use */
    ASSERT_INT_EQ(blurd_model_create(&bad, "input 12 10 3; flatten; dense 2 softmax", 1, err),
                  BLURD_ESPEC);
    ASSERT_CONTAINS(err, "square");
    ASSERT_INT_EQ(blurd_model_create(&bad, "input 12 12 3; flatten; dense 3 softmax", 1, err),
                  BLURD_ESPEC);
    ASSERT_CONTAINS(err, "outputs");
    /* decoded images are RGB: a grey-input net would be fed past its input buffer */
    ASSERT_INT_EQ(blurd_model_create(&bad, "input 12 12 1; flatten; dense 2 softmax", 1, err),
                  BLURD_ESPEC);
    ASSERT_CONTAINS(err, "channels");
    return 0;
}

TEST_IMPL(model_save_load_round_trip_f32)
{
    blurd_model *model = create_small(7);
    char *path = test_path("good.safetensors");
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_model_save(model, path, 0, err), 0);
    ASSERT_STR_EQ(blurd_model_name(model), "good");
    ASSERT_INT_EQ(strlen(blurd_model_hash(model)), 64);

    blurd_model *loaded = load_ok(path);
    blurd_net *a = blurd_model_net(model), *b = blurd_model_net(loaded);
    ASSERT_STR_EQ(blurd_net_spec(a), blurd_net_spec(b));
    size_t count = blurd_net_parameter_count(a);
    ASSERT_INT_EQ(blurd_net_parameter_count(b), count);
    ASSERT(memcmp(blurd_net_parameters(a), blurd_net_parameters(b), count * sizeof(float)) == 0);
    ASSERT_STR_EQ(blurd_model_hash(loaded), blurd_model_hash(model));
    ASSERT_STR_EQ(blurd_model_name(loaded), "good");
    ASSERT_INT_EQ(blurd_model_meta_count(loaded), blurd_model_meta_count(model));
    ASSERT(memcmp(blurd_model_preprocess(loaded), blurd_model_preprocess(model),
                  sizeof(struct blurd_preprocess)) == 0);

    /* the layout: spec order, contiguous offsets, data 8-byte aligned, F32 */
    size_t n;
    unsigned char *bytes = (unsigned char *)test_read_file(path, &n);
    ASSERT_INT_EQ(read_le64(bytes) % 8, 0);
    ASSERT_INT_EQ(n, 8 + read_le64(bytes) + count * 4);
    struct parts parts = read_parts(path);
    const char *names[] = {"layers.1.kernel", "layers.1.bias", "layers.4.kernel", "layers.4.bias"};
    uint64_t offset = 0;
    for (int t = 0; t < 4; t++) {
        ASSERT_STR_EQ(json_string_value(json_object_get(entry_of(&parts, names[t]), "dtype")),
                      "F32");
        ASSERT_INT_EQ(offset_of(&parts, names[t], 0), offset);
        offset = offset_of(&parts, names[t], 1);
    }
    ASSERT_INT_EQ(offset, count * 4);
    json_t *shape = json_object_get(entry_of(&parts, "layers.4.kernel"), "shape");
    ASSERT_INT_EQ(json_array_size(shape), 2);
    ASSERT_INT_EQ(json_integer_value(json_array_get(shape, 0)), 100);
    ASSERT_INT_EQ(json_integer_value(json_array_get(shape, 1)), 2);
    /* metadata first, then the tensors in spec order */
    const char *text = (const char *)bytes + 8;
    ASSERT(strncmp(text, "{\"__metadata__\":", 16) == 0);
    ASSERT(strstr(text, "\"layers.1.kernel\"") < strstr(text, "\"layers.1.bias\""));
    ASSERT(strstr(text, "\"layers.1.bias\"") < strstr(text, "\"layers.4.kernel\""));
    free_parts(&parts);

    /* saving what was loaded reproduces the file byte for byte */
    char *again = test_path("again.safetensors");
    ASSERT_INT_EQ(blurd_model_save(loaded, again, 0, err), 0);
    size_t n2;
    char *bytes2 = test_read_file(again, &n2);
    ASSERT_INT_EQ(n2, n);
    ASSERT(memcmp(bytes, bytes2, n) == 0);
    ASSERT_STR_EQ(blurd_model_name(loaded), "again");
    free(bytes);
    free(bytes2);
    free(again);
    free(path);
    blurd_model_free(model);
    blurd_model_free(loaded);
    return 0;
}

TEST_IMPL(model_save_load_round_trip_f16)
{
    blurd_model *model = create_small(9);
    /* biases are zero after He initialisation; give them values to round too */
    blurd_net *net = blurd_model_net(model);
    struct blurd_tensor bias;
    blurd_net_tensor(net, 1, &bias);
    for (size_t i = 0; i < bias.count; i++)
        bias.data[i] = 0.01f * (float)(i + 1) / 3.0f;
    char *path = test_path("half.safetensors");
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_model_save(model, path, 1, err), 0);

    size_t count = blurd_net_parameter_count(net);
    struct stat st;
    ASSERT(stat(path, &st) == 0);
    struct parts parts = read_parts(path);
    ASSERT_INT_EQ(parts.data_size, count * 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(entry_of(&parts, "layers.1.kernel"), "dtype")),
                  "F16");
    free_parts(&parts);

    blurd_model *loaded = load_ok(path);
    const float *a = blurd_net_parameters(net);
    const float *b = blurd_net_parameters(blurd_model_net(loaded));
    for (size_t i = 0; i < count; i++) {
        /* half keeps 11 significant bits: relative error at most 2^-11 when rounding */
        double bound = fabs((double)a[i]) * 0x1p-11 + 0x1p-25;
        if (!(fabs((double)a[i] - (double)b[i]) <= bound))
            TEST_FAIL("parameter %zu: %.9g became %.9g", i, (double)a[i], (double)b[i]);
    }
    ASSERT_STR_EQ(blurd_model_hash(loaded), blurd_model_hash(model));
    free(path);
    blurd_model_free(model);
    blurd_model_free(loaded);
    return 0;
}

/* The value of the binary16 pattern `h`, by the definition (not by bit tricks). */
static double half_reference(unsigned h)
{
    unsigned exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    double magnitude =
        exponent == 0 ? ldexp(mantissa, -24) : ldexp(1024 + mantissa, (int)exponent - 25);
    return (h & 0x8000) ? -magnitude : magnitude;
}

/* The binary16 nearest to finite `v` (|v| < 65520), ties to the even pattern: positive
 * halves increase with their bit patterns, so search them. */
static unsigned half_nearest(float v)
{
    double target = fabs((double)v);
    unsigned low = 0, high = 0x7bff; /* largest finite */
    while (low < high) {             /* largest pattern whose value <= target */
        unsigned middle = (low + high + 1) / 2;
        if (half_reference(middle) <= target)
            low = middle;
        else
            high = middle - 1;
    }
    unsigned h = low;
    if (half_reference(h) != target) {
        double below = target - half_reference(h), above = half_reference(h + 1) - target;
        if (above < below || (above == below && ((h + 1) & 1) == 0))
            h++;
    }
    return h | (signbit(v) ? 0x8000u : 0u);
}

TEST_IMPL(model_half_conversion_exact)
{
    /* layers.2.kernel is 12 x 5462: room for every one of the 65536 half patterns */
    const char *spec = "input 2 2 3; flatten; dense 5462 linear; dense 2 softmax";
    char header[1024];
    int header_size = snprintf(header, sizeof header,
                               "{\"__metadata__\":{\"blurd.spec\":\"%s\"},"
                               "\"layers.2.kernel\":{\"dtype\":\"F16\",\"shape\":[12,5462],"
                               "\"data_offsets\":[0,131088]},"
                               "\"layers.2.bias\":{\"dtype\":\"F16\",\"shape\":[5462],"
                               "\"data_offsets\":[131088,142012]},"
                               "\"layers.3.kernel\":{\"dtype\":\"F16\",\"shape\":[5462,2],"
                               "\"data_offsets\":[142012,163860]},"
                               "\"layers.3.bias\":{\"dtype\":\"F16\",\"shape\":[2],"
                               "\"data_offsets\":[163860,163864]}}",
                               spec);
    size_t data_size = 163864;
    unsigned char *data = calloc(data_size, 1);
    ASSERT(data != NULL);
    for (unsigned h = 0; h < 65536; h++) {
        unsigned stored = (h & 0x7c00) == 0x7c00 ? 0 : h; /* infinities and NaNs do not load */
        data[2 * h] = (unsigned char)stored;
        data[2 * h + 1] = (unsigned char)(stored >> 8);
    }
    char *path = test_path("halves.safetensors");
    write_raw(path, header, (size_t)header_size, data, data_size);
    blurd_model *model = load_ok(path);
    struct blurd_tensor kernel;
    blurd_net_tensor(blurd_model_net(model), 0, &kernel);
    ASSERT_STR_EQ(kernel.name, "layers.2.kernel");
    for (unsigned h = 0; h < 65536; h++) {
        double expected = (h & 0x7c00) == 0x7c00 ? 0.0 : half_reference(h);
        if ((double)kernel.data[h] != expected || !signbit(kernel.data[h]) != !signbit(expected))
            TEST_FAIL("half 0x%04x read as %.9g, expected %.9g", h, (double)kernel.data[h],
                      expected);
    }

    /* float -> half: boundaries and ties first, then random floats over the whole range */
    const float special[] = {
        0.0f,
        -0.0f,
        0x1p-24f,
        0x1p-25f,
        0x1.8p-25f,
        0x1p-26f,
        0x1p-14f,
        0x1p-14f - 0x1p-25f, /* tie between the largest subnormal and the smallest normal */
        0x1.ff8p-15f,
        65504.0f,
        65519.99f,
        -65504.0f,
        1.0f + 0x1p-11f,
        1.0f + 0x3p-11f,
        1.0f - 0x1p-12f,
        0.1f,
        -0.333333f,
        3.14159265f,
        1e-5f,
        -7e-8f,
        2049.0f,
        2051.0f,
    };
    size_t special_count = sizeof special / sizeof special[0];
    float *parameters = blurd_net_parameters(blurd_model_net(model));
    size_t count = blurd_net_parameter_count(blurd_model_net(model));
    uint64_t state = 99;
    for (size_t i = 0; i < count; i++) {
        if (i < special_count) {
            parameters[i] = special[i];
            continue;
        }
        for (;;) { /* random sign, exponent 2^-30 .. 2^15, mantissa */
            uint32_t r = (uint32_t)test_random_next(&state);
            uint32_t exponent = 127 - 30 + (uint32_t)(test_random_next(&state) % 46);
            uint32_t bits = (r & 0x807fffffu) | exponent << 23;
            float v;
            memcpy(&v, &bits, sizeof v);
            if (fabsf(v) < 65520.0f) {
                parameters[i] = v;
                break;
            }
        }
    }
    char err[BLURD_ERR_LEN];
    char *saved = test_path("rounded.safetensors");
    ASSERT_INT_EQ(blurd_model_save(model, saved, 1, err), 0);
    struct parts parts = read_parts(saved);
    ASSERT_INT_EQ(parts.data_size, count * 2);
    /* spec order: the parameter block's order */
    for (size_t i = 0; i < count; i++) {
        unsigned got = parts.data[2 * i] | (unsigned)parts.data[2 * i + 1] << 8;
        unsigned expected = half_nearest(parameters[i]);
        if (got != expected)
            TEST_FAIL("%a (parameter %zu) became half 0x%04x, expected 0x%04x",
                      (double)parameters[i], i, got, expected);
    }
    free_parts(&parts);

    /* beyond half precision's range: refused, and nothing written */
    parameters[5] = 65520.0f;
    char *too_big = test_path("too-big.safetensors");
    ASSERT_INT_EQ(blurd_model_save(model, too_big, 1, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, "range");
    ASSERT(access(too_big, F_OK) != 0);
    ASSERT_INT_EQ(blurd_model_save(model, too_big, 0, err), 0); /* F32 holds it */
    free(too_big);
    free(saved);
    free(path);
    free(data);
    blurd_model_free(model);
    return 0;
}

TEST_IMPL(model_metadata_round_trip)
{
    blurd_model *model = create_small(3);
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_model_meta_set(model, "train.epochs", "12", err), 0);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "aaa.first", "x", err), 0);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "zzz.unicode", "h\xc3\xa9llo \xe2\x9c\x93", err), 0);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "train.note", "to be removed", err), 0);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "train.note", NULL, err), 0);
    ASSERT(blurd_model_meta_get(model, "train.note") == NULL);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.name", "my model", err), 0);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.threshold", "0.625", err), 0);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.input", "resize", err), 0);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.tile_count", "16", err), 0);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.analysis_size", "1024", err), 0);
    ASSERT(blurd_model_preprocess(model)->threshold == 0.625f);
    ASSERT_INT_EQ(blurd_model_preprocess(model)->input, BLURD_INPUT_RESIZE);
    ASSERT_STR_EQ(blurd_model_name(model), "my model");

    /* rejected values leave everything as it was */
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.threshold", "1", err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, "blurd.threshold");
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.threshold"), "0.625");
    ASSERT(blurd_model_preprocess(model)->threshold == 0.625f);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.tile_count", "0", err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, "blurd.tile_count");
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.tile_size", "200", err), BLURD_EINVAL);
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.tile_size"), "12");
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.spec", BLURD_DEFAULT_SPEC, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, "blurd.spec");
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.spec", NULL, err), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.spec", SMALL_SPEC, err), 0); /* respelled */
    ASSERT_INT_EQ(blurd_model_meta_set(model, "", "x", err), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_model_meta_set(model, "bad.utf8", "\xff\xfe", err), BLURD_EINVAL);
    /* removing a blurd.* key brings back its default */
    ASSERT_INT_EQ(blurd_model_meta_set(model, "blurd.tile_count", NULL, err), 0);
    ASSERT_INT_EQ(blurd_model_preprocess(model)->tile_count, 8);

    /* sorted key order */
    int count = blurd_model_meta_count(model);
    ASSERT_INT_EQ(count, 10);
    const char *previous = "";
    for (int i = 0; i < count; i++) {
        const char *key, *value;
        blurd_model_meta_at(model, i, &key, &value);
        ASSERT(strcmp(previous, key) < 0);
        ASSERT_STR_EQ(blurd_model_meta_get(model, key), value);
        previous = key;
    }
    const char *first, *first_value;
    blurd_model_meta_at(model, 0, &first, &first_value);
    ASSERT_STR_EQ(first, "aaa.first");

    char *path = test_path("meta.safetensors");
    ASSERT_INT_EQ(blurd_model_save(model, path, 0, err), 0);
    blurd_model *loaded = load_ok(path);
    ASSERT_INT_EQ(blurd_model_meta_count(loaded), count);
    for (int i = 0; i < count; i++) {
        const char *k1, *v1, *k2, *v2;
        blurd_model_meta_at(model, i, &k1, &v1);
        blurd_model_meta_at(loaded, i, &k2, &v2);
        ASSERT_STR_EQ(k1, k2);
        ASSERT_STR_EQ(v1, v2);
    }
    ASSERT_STR_EQ(blurd_model_meta_get(loaded, "zzz.unicode"), "h\xc3\xa9llo \xe2\x9c\x93");
    ASSERT_STR_EQ(blurd_model_name(loaded), "my model");
    ASSERT(memcmp(blurd_model_preprocess(loaded), blurd_model_preprocess(model),
                  sizeof(struct blurd_preprocess)) == 0);
    blurd_model_free(loaded);

    /* keys blurd does not know, written by another tool, survive a load and save */
    char fixture[4096];
    snprintf(fixture, sizeof fixture, "%s/tests/fixtures/small-net.safetensors", test_source_dir());
    loaded = load_ok(fixture);
    char *resaved = test_path("resaved.safetensors");
    ASSERT_INT_EQ(blurd_model_save(loaded, resaved, 0, err), 0);
    blurd_model_free(loaded);
    loaded = load_ok(resaved);
    ASSERT_STR_EQ(blurd_model_meta_get(loaded, "fixture.generator"),
                  "tests/fixtures/make_small_net.py");
    free(resaved);
    free(path);
    blurd_model_free(loaded);
    blurd_model_free(model);
    return 0;
}

/* The first 64 characters of `sha256sum FILE`. */
static char *sha256sum(const char *path)
{
    char command[4200];
    snprintf(command, sizeof command, "sha256sum '%s'", path);
    char *out = NULL;
    ASSERT_INT_EQ(test_run(command, &out, NULL), 0);
    ASSERT(strlen(out) > 64);
    out[64] = '\0';
    return out;
}

TEST_IMPL(model_hash_is_sha256_of_file)
{
    blurd_model *model = create_small(5);
    char *path = test_path("hashed.safetensors");
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_model_save(model, path, 0, err), 0);
    char *expected = sha256sum(path);
    ASSERT_STR_EQ(blurd_model_hash(model), expected);
    blurd_model *loaded = load_ok(path);
    ASSERT_STR_EQ(blurd_model_hash(loaded), expected);
    free(expected);

    /* a half-precision save is different bytes, so a different hash */
    char first[65];
    snprintf(first, sizeof first, "%s", blurd_model_hash(model));
    ASSERT_INT_EQ(blurd_model_save(model, path, 1, err), 0);
    expected = sha256sum(path);
    ASSERT_STR_EQ(blurd_model_hash(model), expected);
    ASSERT(strcmp(first, expected) != 0);
    free(expected);

    char fixture[4096];
    snprintf(fixture, sizeof fixture, "%s/tests/fixtures/small-net.safetensors", test_source_dir());
    blurd_model *python = load_ok(fixture);
    expected = sha256sum(fixture);
    ASSERT_STR_EQ(blurd_model_hash(python), expected);
    free(expected);
    free(path);
    blurd_model_free(python);
    blurd_model_free(loaded);
    blurd_model_free(model);
    return 0;
}

TEST_IMPL(model_save_replaces_atomically)
{
    char *path = test_path("model.safetensors");
    char err[BLURD_ERR_LEN];
    blurd_model *first = create_small(1), *second = create_small(2);
    ASSERT_INT_EQ(blurd_model_save(first, path, 0, err), 0);
    ASSERT_INT_EQ(blurd_model_save(second, path, 0, err), 0);
    blurd_model *loaded = load_ok(path);
    size_t count = blurd_net_parameter_count(blurd_model_net(second));
    ASSERT(memcmp(blurd_net_parameters(blurd_model_net(loaded)),
                  blurd_net_parameters(blurd_model_net(second)), count * sizeof(float)) == 0);
    blurd_model_free(loaded);

    /* no temporary file is left behind */
    char command[4200], *out = NULL;
    snprintf(command, sizeof command, "ls -A '%s'", test_tmpdir());
    ASSERT_INT_EQ(test_run(command, &out, NULL), 0);
    ASSERT(strstr(out, ".tmp-") == NULL);
    ASSERT_CONTAINS(out, "model.safetensors");
    free(out);

    /* a NaN weight is refused and the file on disk stays as it was */
    size_t before_size, after_size;
    char *before = test_read_file(path, &before_size);
    blurd_net_parameters(blurd_model_net(first))[3] = NAN;
    ASSERT_INT_EQ(blurd_model_save(first, path, 0, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, "NaN");
    char *after = test_read_file(path, &after_size);
    ASSERT_INT_EQ(after_size, before_size);
    ASSERT(memcmp(before, after, before_size) == 0);
    free(before);
    free(after);

    /* a folder that does not exist */
    char *missing = test_path("no/such/dir/model.safetensors");
    ASSERT_INT_EQ(blurd_model_save(second, missing, 0, err), BLURD_ENOENT);
    ASSERT_CONTAINS(err, missing);
    free(missing);
    free(path);
    blurd_model_free(first);
    blurd_model_free(second);
    return 0;
}

/* ---- files that cannot be opened ---- */

TEST_IMPL(model_load_open_errors)
{
    char *missing = test_path("missing.safetensors");
    EXPECT_LOAD_ERROR(missing, BLURD_ENOENT, "No such file");
    free(missing);
    EXPECT_LOAD_ERROR(test_tmpdir(), BLURD_EISDIR, "directory");
    if (geteuid() != 0) { /* root reads anything */
        char *path = save_small("private.safetensors", 0);
        ASSERT(chmod(path, 0) == 0);
        EXPECT_LOAD_ERROR(path, BLURD_EACCES, "ermission");
        free(path);
    }
    return 0;
}

/* ---- corrupt files, one problem each ---- */

TEST_IMPL(model_load_truncated)
{
    char *good = save_small("good.safetensors", 0);
    size_t n;
    char *bytes = test_read_file(good, &n);
    size_t header_size = (size_t)read_le64((unsigned char *)bytes);
    struct {
        size_t length;
        const char *keyword;
    } cuts[] = {
        {0, "truncated"},
        {4, "truncated"},
        {8, "truncated"},
        {8 + header_size / 2, "truncated"},
        {8 + header_size, "past the end"}, /* the header, but no data */
        {n - (n - 8 - header_size) / 2, "past the end"},
        {n - 1, "past the end"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "cut-%zu.safetensors", cuts[i].length);
        char *path = test_path(name);
        test_write_file(path, bytes, cuts[i].length);
        EXPECT_LOAD_ERROR(path, BLURD_EMODEL, cuts[i].keyword);
        free(path);
    }
    free(bytes);
    free(good);
    return 0;
}

TEST_IMPL(model_load_header_length_past_end)
{
    char *good = save_small("good.safetensors", 0);
    size_t n;
    unsigned char *bytes = (unsigned char *)test_read_file(good, &n);
    const uint64_t lengths[] = {n - 7, n, (uint64_t)1 << 40, UINT64_MAX};
    const char *keywords[] = {"header length", "header length", "limit", "limit"};
    for (int i = 0; i < 4; i++) {
        for (int b = 0; b < 8; b++)
            bytes[b] = (unsigned char)(lengths[i] >> (8 * b));
        char name[64];
        snprintf(name, sizeof name, "length-%d.safetensors", i);
        char *path = test_path(name);
        test_write_file(path, bytes, n);
        EXPECT_LOAD_ERROR(path, BLURD_EMODEL, keywords[i]);
        free(path);
    }
    free(bytes);
    free(good);
    return 0;
}

TEST_IMPL(model_load_header_not_json)
{
    char *good = save_small("good.safetensors", 0);
    struct parts parts = read_parts(good);
    const char *headers[] = {
        "{\"__metadata__\": {\"blurd.spec\": ", /* cut short */
        "this is not json at all",
        "{\"a\": 1, \"a\": 2}", /* duplicate keys, which safetensors forbids */
        "",
    };
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "bad-%d.safetensors", i);
        char *path = test_path(name);
        write_raw(path, headers[i], strlen(headers[i]), parts.data, parts.data_size);
        EXPECT_LOAD_ERROR(path, BLURD_EMODEL, "not valid JSON");
        free(path);
    }
    char *array = test_path("array.safetensors");
    write_raw(array, "[1, 2, 3]", 9, parts.data, parts.data_size);
    EXPECT_LOAD_ERROR(array, BLURD_EMODEL, "not a JSON object");
    free(array);
    free(good);
    free_parts(&parts);
    return 0;
}

static void drop_metadata(struct parts *parts)
{
    json_object_del(parts->header, "__metadata__");
}

static void drop_spec(struct parts *parts)
{
    json_object_del(json_object_get(parts->header, "__metadata__"), "blurd.spec");
}

static void number_in_metadata(struct parts *parts)
{
    json_object_set_new(json_object_get(parts->header, "__metadata__"), "train.epochs",
                        json_integer(12));
}

TEST_IMPL(model_load_metadata_missing)
{
    EXPECT_CORRUPT("no-meta.safetensors", drop_metadata, BLURD_EMODEL, "__metadata__");
    EXPECT_CORRUPT("no-spec.safetensors", drop_spec, BLURD_EMODEL, "blurd.spec");
    EXPECT_CORRUPT("number.safetensors", number_in_metadata, BLURD_EMODEL, "not a string");
    return 0;
}

static void offsets_past_end(struct parts *parts)
{
    uint64_t begin = offset_of(parts, "layers.4.bias", 0);
    set_offsets(parts, "layers.4.bias", (long long)begin + 8, (long long)begin + 16);
}

TEST_IMPL(model_load_offsets_past_end)
{
    EXPECT_CORRUPT("past.safetensors", offsets_past_end, BLURD_EMODEL, "past the end");
    return 0;
}

static void end_before_begin(struct parts *parts)
{
    uint64_t begin = offset_of(parts, "layers.1.bias", 0);
    uint64_t end = offset_of(parts, "layers.1.bias", 1);
    set_offsets(parts, "layers.1.bias", (long long)end, (long long)begin);
}

static void negative_offset(struct parts *parts)
{
    set_offsets(parts, "layers.1.bias", -16, 0);
}

static void wrong_size(struct parts *parts)
{
    uint64_t begin = offset_of(parts, "layers.1.bias", 0);
    uint64_t end = offset_of(parts, "layers.1.bias", 1);
    set_offsets(parts, "layers.1.bias", (long long)begin, (long long)end - 4);
}

TEST_IMPL(model_load_offsets_end_before_begin)
{
    EXPECT_CORRUPT("reversed.safetensors", end_before_begin, BLURD_EMODEL, "end before begin");
    EXPECT_CORRUPT("negative.safetensors", negative_offset, BLURD_EMODEL, "non-negative");
    EXPECT_CORRUPT("size.safetensors", wrong_size, BLURD_EMODEL, "size mismatch");
    return 0;
}

static void overlapping(struct parts *parts)
{
    /* layers.1.bias moved 4 bytes back into layers.1.kernel, same size */
    uint64_t begin = offset_of(parts, "layers.1.bias", 0);
    uint64_t end = offset_of(parts, "layers.1.bias", 1);
    set_offsets(parts, "layers.1.bias", (long long)begin - 4, (long long)end - 4);
}

static void aliased(struct parts *parts)
{
    /* two tensors of one size sharing the same bytes */
    uint64_t begin = offset_of(parts, "layers.4.bias", 0);
    uint64_t end = offset_of(parts, "layers.4.bias", 1);
    set_offsets(parts, "layers.1.bias", (long long)begin - 8, (long long)end);
}

TEST_IMPL(model_load_overlapping_tensors)
{
    char *path = corrupt("overlap.safetensors", overlapping);
    EXPECT_LOAD_ERROR(path, BLURD_EMODEL, "overlap");
    EXPECT_LOAD_ERROR(path, BLURD_EMODEL, "layers.1.bias");
    free(path);
    EXPECT_CORRUPT("aliased.safetensors", aliased, BLURD_EMODEL, "overlap");
    return 0;
}

static void trailing_bytes(struct parts *parts)
{
    memset(parts->data + parts->data_size, 0, 8);
    parts->data_size += 8;
}

static void interior_hole(struct parts *parts)
{
    /* the last tensor moved 8 bytes later, leaving 8 bytes no tensor owns */
    uint64_t begin = offset_of(parts, "layers.4.bias", 0);
    uint64_t end = offset_of(parts, "layers.4.bias", 1);
    memmove(parts->data + begin + 8, parts->data + begin, end - begin);
    parts->data_size += 8;
    set_offsets(parts, "layers.4.bias", (long long)begin + 8, (long long)end + 8);
}

TEST_IMPL(model_load_hole_in_data)
{
    EXPECT_CORRUPT("trailing.safetensors", trailing_bytes, BLURD_EMODEL, "hole");
    EXPECT_CORRUPT("interior.safetensors", interior_hole, BLURD_EMODEL, "hole");
    return 0;
}

static void missing_tensor(struct parts *parts)
{
    json_object_del(parts->header, "layers.1.bias");
}

TEST_IMPL(model_load_missing_tensor)
{
    EXPECT_CORRUPT("missing.safetensors", missing_tensor, BLURD_EMODEL,
                   "missing tensor layers.1.bias");
    return 0;
}

static void extra_tensor(struct parts *parts)
{
    json_t *entry = json_pack("{s:s, s:[i], s:[I,I]}", "dtype", "F32", "shape", 2, "data_offsets",
                              (json_int_t)parts->data_size, (json_int_t)parts->data_size + 8);
    memset(parts->data + parts->data_size, 0, 8);
    parts->data_size += 8;
    json_object_set_new(parts->header, "layers.9.kernel", entry);
}

TEST_IMPL(model_load_extra_tensor)
{
    EXPECT_CORRUPT("extra.safetensors", extra_tensor, BLURD_EMODEL, "extra tensor layers.9.kernel");
    return 0;
}

static void wrong_shape(struct parts *parts)
{
    json_object_set_new(entry_of(parts, "layers.1.kernel"), "shape",
                        json_pack("[iiii]", 3, 3, 3, 5));
}

static void wrong_rank(struct parts *parts)
{
    json_object_set_new(entry_of(parts, "layers.4.kernel"), "shape", json_pack("[i]", 200));
}

TEST_IMPL(model_load_wrong_shape)
{
    EXPECT_CORRUPT("shape.safetensors", wrong_shape, BLURD_EMODEL,
                   "tensor layers.1.kernel has shape [3,3,3,5], expected [3,3,3,4]");
    EXPECT_CORRUPT("rank.safetensors", wrong_rank, BLURD_EMODEL,
                   "tensor layers.4.kernel has shape [200], expected [100,2]");
    return 0;
}

static void wrong_dtype(struct parts *parts)
{
    json_object_set_new(entry_of(parts, "layers.4.kernel"), "dtype", json_string("I64"));
}

static void dtype_not_string(struct parts *parts)
{
    json_object_set_new(entry_of(parts, "layers.4.kernel"), "dtype", json_integer(32));
}

TEST_IMPL(model_load_wrong_dtype)
{
    EXPECT_CORRUPT("i64.safetensors", wrong_dtype, BLURD_EMODEL, "dtype I64");
    EXPECT_CORRUPT("number.safetensors", dtype_not_string, BLURD_EMODEL, "dtype");
    return 0;
}

static void unknown_layer(struct parts *parts)
{
    set_meta(parts, "blurd.spec",
             "input 12 12 3; conv 4 3 relu; frobnicate 2; flatten; dense 2 softmax");
}

TEST_IMPL(model_load_unknown_layer_spec)
{
    char *path = corrupt("spec.safetensors", unknown_layer);
    EXPECT_LOAD_ERROR(path, BLURD_EMODEL, "blurd.spec");
    EXPECT_LOAD_ERROR(path, BLURD_EMODEL, "frobnicate");
    free(path);
    return 0;
}

/* Writes float bits `bits` over element 5 of layers.4.kernel. */
static void poison(struct parts *parts, uint32_t bits)
{
    uint64_t at = offset_of(parts, "layers.4.kernel", 0) + 5 * 4;
    for (int i = 0; i < 4; i++)
        parts->data[at + (uint64_t)i] = (unsigned char)(bits >> (8 * i));
}

static void nan_weight(struct parts *parts)
{
    poison(parts, 0x7fc00000u);
}

static void inf_weight(struct parts *parts)
{
    poison(parts, 0xff800000u);
}

TEST_IMPL(model_load_nan_weight)
{
    char *path = corrupt("nan.safetensors", nan_weight);
    EXPECT_LOAD_ERROR(path, BLURD_EMODEL, "NaN");
    EXPECT_LOAD_ERROR(path, BLURD_EMODEL, "layers.4.kernel");
    free(path);
    return 0;
}

TEST_IMPL(model_load_inf_weight)
{
    EXPECT_CORRUPT("inf.safetensors", inf_weight, BLURD_EMODEL, "infinite");

    /* and in a half-precision file: 0x7c00 is +infinity */
    char *good = save_small("half.safetensors", 1);
    struct parts parts = read_parts(good);
    uint64_t at = offset_of(&parts, "layers.1.bias", 0);
    parts.data[at] = 0x00;
    parts.data[at + 1] = 0x7c;
    char *path = test_path("inf-half.safetensors");
    write_parts(path, &parts);
    free_parts(&parts);
    EXPECT_LOAD_ERROR(path, BLURD_EMODEL, "infinite");
    free(path);
    free(good);
    return 0;
}

/* Writes a good file with metadata `key` set to `value` and expects it refused naming key. */
static void expect_bad_meta(int line, const char *key, const char *value)
{
    char *good = save_small("good.safetensors", 0);
    struct parts parts = read_parts(good);
    set_meta(&parts, key, value);
    char *path = test_path("meta.safetensors");
    write_parts(path, &parts);
    free_parts(&parts);
    expect_load_error(line, path, BLURD_EMODEL, key);
    free(path);
    free(good);
}
#define EXPECT_BAD_META(key, value) expect_bad_meta(__LINE__, key, value)

TEST_IMPL(model_load_bad_threshold)
{
    const char *values[] = {"1.5", "0", "1", "-0.5", "abc", "nan", "", "0.5x", " 0.5", "inf"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        EXPECT_BAD_META("blurd.threshold", values[i]);
    return 0;
}

TEST_IMPL(model_load_tile_size_mismatch)
{
    EXPECT_BAD_META("blurd.tile_size", "13");
    EXPECT_BAD_META("blurd.tile_size", "200");
    EXPECT_BAD_META("blurd.tile_size", "12px");
    return 0;
}

TEST_IMPL(model_load_bad_metadata_values)
{
    EXPECT_BAD_META("blurd.input", "crop");
    EXPECT_BAD_META("blurd.tile_count", "0");
    EXPECT_BAD_META("blurd.tile_count", "65");
    EXPECT_BAD_META("blurd.tile_count", "-1");
    EXPECT_BAD_META("blurd.analysis_size", "5"); /* smaller than a tile */
    EXPECT_BAD_META("blurd.analysis_size", "big");
    EXPECT_BAD_META("blurd.classes", "clear,blurred");
    return 0;
}

/* ---- the net engine against the Python reference ---- */

struct reference {
    float inputs[3][432];
    float outputs[3][2];
};

static void read_reference(const char *path, struct reference *ref)
{
    char *text = test_read_file(path, NULL);
    int inputs = 0, outputs = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char kind[16];
        int index, count, used;
        if (sscanf(line, "%15s %d %d%n", kind, &index, &count, &used) != 3 || index < 0 ||
            index > 2)
            TEST_FAIL("%s: bad line \"%.40s\"", path, line);
        int input = strcmp(kind, "input") == 0;
        float *values = input ? ref->inputs[index] : ref->outputs[index];
        ASSERT_INT_EQ(count, input ? 432 : 2);
        char *p = line + used;
        for (int i = 0; i < count; i++) {
            char *end;
            values[i] = strtof(p, &end);
            if (end == p)
                TEST_FAIL("%s: %s %d has fewer than %d values", path, kind, index, count);
            p = end;
        }
        *(input ? &inputs : &outputs) += 1;
    }
    ASSERT_INT_EQ(inputs, 3);
    ASSERT_INT_EQ(outputs, 3);
    free(text);
}

TEST_IMPL(net_forward_matches_python_reference)
{
    char model_path[4096], io_path[4096];
    snprintf(model_path, sizeof model_path, "%s/tests/fixtures/small-net.safetensors",
             test_source_dir());
    snprintf(io_path, sizeof io_path, "%s/tests/fixtures/small-net-io.txt", test_source_dir());
    struct reference *ref = malloc(sizeof *ref);
    ASSERT(ref != NULL);
    read_reference(io_path, ref);

    blurd_model *model = load_ok(model_path);
    ASSERT_STR_EQ(blurd_model_name(model), "small-net");
    ASSERT_INT_EQ(blurd_model_preprocess(model)->input, BLURD_INPUT_RESIZE);
    ASSERT_INT_EQ(blurd_model_preprocess(model)->tile_count, 1);
    const blurd_net *net = blurd_model_net(model);
    ASSERT_INT_EQ(blurd_net_output_count(net), 2);
    struct blurd_shape shape = blurd_net_input_shape(net);
    ASSERT_INT_EQ(shape.height * shape.width * shape.channels, 432);

    /* on the caller's thread alone, and spread over two */
    for (int threads = 1; threads <= 2; threads++) {
        char err[BLURD_ERR_LEN];
        blurd_net_workspace *ws = NULL;
        ASSERT_INT_EQ(blurd_net_workspace_create(&ws, net, 3, threads, err), 0);
        float *input = blurd_net_workspace_input(ws);
        memcpy(input, ref->inputs, sizeof ref->inputs);
        const float *out = blurd_net_forward(net, ws, 3, NULL);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 2; j++)
                ASSERT_NEAR(out[i * 2 + j], ref->outputs[i][j], 1e-5);

        /* one at a time, in reverse order so stale activations would show */
        for (int i = 2; i >= 0; i--) {
            memcpy(input, ref->inputs[i], sizeof ref->inputs[i]);
            out = blurd_net_forward(net, ws, 1, NULL);
            for (int j = 0; j < 2; j++)
                ASSERT_NEAR(out[j], ref->outputs[i][j], 1e-5);
        }
        blurd_net_workspace_free(ws);
    }
    blurd_model_free(model);
    free(ref);
    return 0;
}

/* A checkpoint is a model file with extra tensors: they round-trip exactly, a plain load
 * refuses them, and a missing or misshapen extra is refused by name. */
TEST_IMPL(model_extras_round_trip_and_refusals)
{
    char err[BLURD_ERR_LEN];
    blurd_model *model;
    ASSERT_INT_EQ(blurd_model_create(&model, TEST_SMALL_SPEC, 3, err), 0);
    size_t count = blurd_net_parameter_count(blurd_model_net(model));
    float *state = malloc(count * sizeof(float)), small[5] = {1.0f, -2.5f, 3.0f, 0.0f, 1e-30f};
    ASSERT(state != NULL);
    uint64_t seed = 4;
    for (size_t i = 0; i < count; i++)
        state[i] = test_random_uniform(&seed, -1.0f, 1.0f);
    struct blurd_model_extra extras[2] = {{"opt.state", state, count}, {"opt.small", small, 5}};
    char *path = test_path("checkpoint.safetensors");
    ASSERT_INT_EQ(blurd_model_save_extras(model, path, extras, 2, err), 0);

    blurd_model *loaded;
    ASSERT_INT_EQ(blurd_model_load(&loaded, path, err), BLURD_EMODEL);
    ASSERT_CONTAINS(err, "extra tensor opt.");

    float back_small[5];
    struct blurd_model_extra wanted[2] = {{"opt.state", NULL, 0}, {"opt.small", back_small, 5}};
    if (blurd_model_load_extras(&loaded, path, wanted, 2, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(wanted[0].count, count);
    ASSERT(memcmp(wanted[0].data, state, count * sizeof(float)) == 0);
    ASSERT(memcmp(back_small, small, sizeof small) == 0);
    ASSERT(memcmp(blurd_net_parameters(blurd_model_net(loaded)),
                  blurd_net_parameters(blurd_model_net(model)), count * sizeof(float)) == 0);
    free(wanted[0].data);
    blurd_model_free(loaded);

    /* an extra of another size, or one the file lacks */
    float wrong[4];
    struct blurd_model_extra misshapen[2] = {{"opt.state", NULL, 0}, {"opt.small", wrong, 4}};
    ASSERT_INT_EQ(blurd_model_load_extras(&loaded, path, misshapen, 2, err), BLURD_EMODEL);
    ASSERT_CONTAINS(err, "tensor opt.small has shape [5], expected [4]");
    ASSERT(misshapen[0].data == NULL); /* what the load allocated is freed on failure */
    struct blurd_model_extra missing[1] = {{"opt.other", NULL, 0}};
    ASSERT_INT_EQ(blurd_model_load_extras(&loaded, path, missing, 1, err), BLURD_EMODEL);
    ASSERT_CONTAINS(err, "extra tensor opt.s");

    /* a non-finite extra is not saved, like a non-finite weight */
    small[2] = NAN;
    ASSERT_INT_EQ(blurd_model_save_extras(model, path, extras, 2, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, "tensor opt.small has a NaN weight at index 2");
    free(state);
    blurd_model_free(model);
    return 0;
}

/* p(first class) of `model` for one input. */
static float score_of(const blurd_model *model, const float *input)
{
    char err[BLURD_ERR_LEN];
    const blurd_net *net = blurd_model_net(model);
    blurd_net_workspace *ws;
    if (blurd_net_workspace_create(&ws, net, 1, 1, err) != 0)
        TEST_FAIL("%s", err);
    struct blurd_shape in = blurd_net_input_shape(net);
    memcpy(blurd_net_workspace_input(ws), input,
           (size_t)in.height * in.width * in.channels * sizeof(float));
    float p = blurd_net_forward(net, ws, 1, NULL)[0];
    blurd_net_workspace_free(ws);
    return p;
}

/* A model with a standardize layer is saved and loaded with it, scores as before, and its
 * score hardly moves when the input's contrast is halved, unlike the same network's
 * without the layer. */
TEST_IMPL(model_standardize_round_trip_and_contrast)
{
    const char *specs[2] = {
        "input 16 16 3; standardize; conv 4 3 relu; maxpool 2; globalavgpool; dense 2 softmax",
        "input 16 16 3; conv 4 3 relu; maxpool 2; globalavgpool; dense 2 softmax"};
    float image[16 * 16 * 3], faint[16 * 16 * 3];
    uint64_t state = 17;
    for (int i = 0; i < 16 * 16 * 3; i++) {
        image[i] = test_random_uniform(&state, 0.1f, 0.9f);
        faint[i] = 0.5f + 0.5f * (image[i] - 0.5f);
    }
    float moved[2];
    for (int s = 0; s < 2; s++) {
        char *path = test_model_with_spec("standardize.safetensors", specs[s], 5);
        blurd_model *model = load_ok(path);
        ASSERT_STR_EQ(blurd_net_spec(blurd_model_net(model)), specs[s]);
        moved[s] = fabsf(score_of(model, faint) - score_of(model, image));
        if (s == 0) {
            /* saving what was loaded keeps the layer and the score */
            char err[BLURD_ERR_LEN];
            char *again = test_path("again.safetensors");
            ASSERT_INT_EQ(blurd_model_save(model, again, 0, err), 0);
            blurd_model *reloaded = load_ok(again);
            ASSERT(score_of(reloaded, image) == score_of(model, image));
            blurd_model_free(reloaded);
            free(again);
        }
        blurd_model_free(model);
        unlink(path);
        free(path);
    }
    fprintf(stderr, "score moved by halving contrast: %.3g with standardize, %.3g without\n",
            (double)moved[0], (double)moved[1]);
    ASSERT(moved[0] * 10.0f < moved[1]);
    return 0;
}
