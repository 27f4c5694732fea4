/* inspect.c - prints a model's architecture and metadata for people to read. */
#include "blurd/inspect.h"

#include "blurd/net.h"

/* 6789168 -> "6,789,168": parameter counts are read by people, so group the digits. */
static void group_digits(size_t value, char *out, size_t out_len)
{
    char plain[32];
    int n = snprintf(plain, sizeof plain, "%zu", value);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < out_len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = plain[i];
    }
    out[o] = '\0';
}

void blurd_inspect_print(FILE *out, const blurd_model *model, int from_file)
{
    const blurd_net *net = blurd_model_net(model);
    if (from_file) {
        fprintf(out, "model:      %s\n", blurd_model_name(model));
        fprintf(out, "sha256:     %s\n", blurd_model_hash(model));
    }
    fprintf(out, "spec:       %s\n\n", blurd_net_spec(net));
    fprintf(out, "%3s  %-13s %-10s %18s %12s %10s\n", "#", "layer", "detail", "output (HxWxC)",
            "parameters", "MFLOP");
    int layers = blurd_net_layer_count(net);
    for (int i = 0; i < layers; i++) {
        struct blurd_layer_info info;
        blurd_net_layer(net, i, &info);
        char detail[32] = "";
        switch (info.kind) {
        case BLURD_LAYER_CONV:
            snprintf(detail, sizeof detail, "%dx%d %s", info.kernel_size, info.kernel_size,
                     info.activation_name);
            break;
        case BLURD_LAYER_DENSE:
            snprintf(detail, sizeof detail, "%s", info.activation_name);
            break;
        case BLURD_LAYER_MAXPOOL:
            snprintf(detail, sizeof detail, "2x2");
            break;
        case BLURD_LAYER_DROPOUT:
            snprintf(detail, sizeof detail, "rate %g", (double)info.rate);
            break;
        case BLURD_LAYER_INPUT:
        case BLURD_LAYER_FLATTEN:
        case BLURD_LAYER_GLOBALAVGPOOL:
        case BLURD_LAYER_STANDARDIZE:
            break;
        }
        char shape[32], params[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", info.output.height, info.output.width,
                 info.output.channels);
        group_digits(info.parameters, params, sizeof params);
        fprintf(out, "%3d  %-13s %-10s %18s %12s %10.1f\n", i, info.kind_name, detail, shape,
                params, info.flops / 1e6);
    }
    char total[32];
    group_digits(blurd_net_parameter_count(net), total, sizeof total);
    fprintf(out, "\nparameters: %s\n", total);
    fprintf(out, "cost:       %.1f MFLOP per input\n", blurd_net_flops(net) / 1e6);
    int count = blurd_model_meta_count(model);
    if (count > 0)
        fprintf(out, "\nmetadata:\n");
    for (int i = 0; i < count; i++) {
        const char *key, *value;
        blurd_model_meta_at(model, i, &key, &value);
        fprintf(out, "  %-22s %s\n", key, value);
    }
}
