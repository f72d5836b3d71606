/*
 * The Arrow C data interface (https://arrow.apache.org/docs/format/CDataInterface.html) as the
 * kit's two optional extensions (_fastlog.c, _fastcap.c) use it to hand columns to polars through
 * PyCapsules: the two structs, and the release callbacks and bit packing both share. Static
 * functions: each extension compiles its own copy. Include after <stdint.h> and <stdlib.h>.
 */
#ifndef KIT_ARROW_C_H
#define KIT_ARROW_C_H

#define ARROW_FLAG_NULLABLE 2

struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

static void release_struct(struct ArrowArray *a) {
    if (!a->release) return;
    for (int64_t i = 0; i < a->n_children; i++) {
        struct ArrowArray *c = a->children[i];
        if (c->release) c->release(c);
        free(c);
    }
    free(a->children);
    free(a->private_data);
    a->release = NULL;
}

static void release_schema(struct ArrowSchema *s) {
    if (!s->release) return;
    for (int64_t i = 0; i < s->n_children; i++) {
        struct ArrowSchema *c = s->children[i];
        if (c->release) c->release(c);
        free(c);
    }
    free(s->children);
    s->release = NULL;
}

static void release_child_schema(struct ArrowSchema *s) { s->release = NULL; }

static uint8_t *pack_bits(const uint8_t *bytes, int64_t n) {
    uint8_t *bits = calloc((size_t)(n + 7) / 8 + 1, 1);
    if (!bits) return NULL;
    for (int64_t i = 0; i < n; i++)
        if (bytes[i]) bits[i >> 3] |= (uint8_t)(1u << (i & 7));
    return bits;
}

#endif /* KIT_ARROW_C_H */
