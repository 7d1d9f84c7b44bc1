/* model_names.c - names in a .ctrm model: the rules for feature, tensor
 * and model names, their printable rendering in error messages, the
 * name -> index table the writer and reader check duplicates with and the
 * server looks features up in (ctr_model_find_feature), and the names of
 * the transform and activation enums (see model_int.h, ctr/model.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ctr/common.h"
#include "model_int.h"

const char *ctr__printable_ex(const char *s, size_t len, char *out, size_t outlen, bool json)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 48) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && (json || (c != '"' && c != '\\')))
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

const char *ctr__printable(const char *s, size_t len, char *out, size_t outlen)
{
    return ctr__printable_ex(s, len, out, outlen, false);
}

bool ctr__name_valid(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\'' || c == '\\')
            return false;
    }
    return true;
}

/* Model names may be any UTF-8 (checked by jansson) but no control bytes. */
bool ctr__model_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > MODEL_NAME_MAX_BYTES)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

int ctr__name_index_init(ctr__name_index_t *ix, size_t n)
{
    size_t size = 8;
    while (size < 2 * n)
        size *= 2;
    ix->slots = calloc(size, sizeof(*ix->slots));
    ix->mask = size - 1;
    return ix->slots ? 0 : CTR_ENOMEM;
}

void ctr__name_index_free(ctr__name_index_t *ix)
{
    free(ix->slots);
    ix->slots = NULL;
}

long ctr__name_index_find(const ctr__name_index_t *ix, const char *name, size_t len)
{
    if (!ix->slots)
        return -1;
    for (size_t i = XXH3_64bits(name, len) & ix->mask;; i = (i + 1) & ix->mask) {
        const ctr__name_slot_t *s = &ix->slots[i];
        if (!s->index1)
            return -1;
        if (s->len == len && !memcmp(s->name, name, len))
            return (long)s->index1 - 1;
    }
}

bool ctr__name_index_add(ctr__name_index_t *ix, const char *name, size_t len, uint32_t index)
{
    for (size_t i = XXH3_64bits(name, len) & ix->mask;; i = (i + 1) & ix->mask) {
        ctr__name_slot_t *s = &ix->slots[i];
        if (!s->index1) {
            *s = (ctr__name_slot_t){name, (uint32_t)len, index + 1};
            return true;
        }
        if (s->len == len && !memcmp(s->name, name, len))
            return false;
    }
}

/* Here, next to the table, so the lookup inlines: the server calls it for
 * every feature of every request it decodes by name. */
long ctr_model_find_feature(const ctr_model_t *m, const char *name, size_t len)
{
    if (!name || len == 0 || len > NAME_MAX_BYTES)
        return -1;
    return ctr__name_index_find(&m->features, name, len);
}

const char *ctr_transform_name(ctr_transform_t t)
{
    switch (t) {
    case CTR_TRANSFORM_IDENTITY: return "identity";
    case CTR_TRANSFORM_LOG1P: return "log1p";
    case CTR_TRANSFORM_STANDARDIZE: return "standardize";
    }
    return "unknown";
}

const char *ctr_activation_name(ctr_activation_t a)
{
    switch (a) {
    case CTR_ACT_NONE: return "none";
    case CTR_ACT_SMELU: return "smelu";
    case CTR_ACT_RELU: return "relu";
    }
    return "unknown";
}


const char *ctr_arch_name(ctr_arch_t a)
{
    switch (a) {
    case CTR_ARCH_MLP: return "mlp";
    case CTR_ARCH_DOT: return "dot";
    case CTR_ARCH_DCNV2: return "dcnv2";
    case CTR_ARCH_WUKONG: return "wukong";
    }
    return "unknown";
}
