/*
 * The Arrow C data interface (https://arrow.apache.org/docs/format/CDataInterface.html) as the
 * kit's two optional extensions (_fastlog.c, _fastcap.c) use it to hand columns to polars through
 * PyCapsules: the two structs, and the release callbacks and bit packing both share. Static
 * functions: each extension compiles its own copy. Include after <Python.h>, <stdint.h>, <stdlib.h> and <string.h>.
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

/* The top-level struct array of an export: its schema ("+s") and array with room for ncols
 * children, and the array's private data (priv_size bytes, zeroed: the extension's buffer
 * holder; its `const void *ptrs[]` member, at ptrs_offset, is what the array's one buffer
 * pointer, NULL: no validity, is read from). 0 on success; -1 when out of memory (then free
 * with export_fail). */
static int export_begin(struct ArrowSchema *schema, struct ArrowArray *array, int64_t ncols,
                        int64_t length, size_t priv_size, size_t ptrs_offset) {
    memset(schema, 0, sizeof(*schema));
    memset(array, 0, sizeof(*array));
    schema->children = calloc((size_t)ncols, sizeof(struct ArrowSchema *));
    array->children = calloc((size_t)ncols, sizeof(struct ArrowArray *));
    array->private_data = calloc(1, priv_size);
    if (!schema->children || !array->children || !array->private_data) return -1;
    schema->format = "+s";
    schema->name = "";
    schema->release = release_schema;
    array->length = length;
    array->n_buffers = 1;
    array->buffers = (const void **)((char *)array->private_data + ptrs_offset);
    array->release = release_struct;
    return 0;
}

/* Frees what an export took so far (the children added, or the bare allocations); returns -1. */
static int export_fail(struct ArrowSchema *schema, struct ArrowArray *array) {
    if (schema->release) schema->release(schema);
    else free(schema->children);
    if (array->release) array->release(array);
    else {
        free(array->children);
        free(array->private_data);
    }
    return -1;
}

#ifdef Py_PYTHON_H
/* PyCapsule destructors for the exported structs ("arrow_schema" / "arrow_array" capsules, as
 * polars' Arrow PyCapsule interface takes them): release if not yet consumed, then free. */
static void capsule_schema_free(PyObject *cap) {
    struct ArrowSchema *s = PyCapsule_GetPointer(cap, "arrow_schema");
    if (s) {
        if (s->release) s->release(s);
        free(s);
    }
}

static void capsule_array_free(PyObject *cap) {
    struct ArrowArray *a = PyCapsule_GetPointer(cap, "arrow_array");
    if (a) {
        if (a->release) a->release(a);
        free(a);
    }
}
#endif

#endif /* KIT_ARROW_C_H */
