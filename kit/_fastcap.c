/*
 * kit._fastcap: the native capture engine of kit.sources.capture.read_capture.
 *
 * One pass over a pcap or pcapng file held in memory (bytes or mmap) gives the per-packet rows the
 * tshark engine derives from `tshark -T fields` (kit.sources.capture._fields._packets): frame number,
 * time in ns,
 * length, innermost addresses and ports, transport, TCP flags / stream / raw sequence number /
 * retransmission flag, and the DNS header and question fields of every DNS message the packet
 * completes, printed as tshark prints them (hex ID and flags, decimal counts, question names,
 * several messages joined by 0x1f); and the DNS transactions those messages make, paired here by
 * the kit's rules (kit.sources.capture._frames._pair) as the packets come, one row per query that
 * opens a transaction, its response's columns filled in when it arrives (what _transactions makes
 * of tshark's messages; the messages are not kept). Everything after that stage (TCP connections,
 * packets, meta) is kit.sources.capture's own code, so both engines share it.
 *
 * Memory: a memory-mapped file's pages are given back behind the parser (release_behind); the
 * tables grow by realloc (large blocks move by mremap, not by copy), the pairing table is an index
 * over dense entries; validity bytes exist only for columns with nulls; each column is exported on
 * its own so polars frees each as soon as it has converted it.
 *
 * What it models of tshark 4.0 (the reference):
 *   - link types: Ethernet (with 802.1Q/802.1ad tags), Linux cooked SLL and SLL2, raw IP (101,
 *     228, 229), BSD loopback (0) and OpenBSD loop (108);
 *   - IPv4 and IPv6 with hop-by-hop, routing, destination-options and mobility headers;
 *   - UDP and TCP; DNS on UDP port 53 and TCP ports 53 and 5353 (tshark's defaults);
 *   - DNS over TCP as tshark's tcp_dissect_pdus does it: 2-byte length prefix, several messages
 *     per segment, messages split across segments reassembled in order per direction, bytes
 *     already seen (retransmissions) not dissected twice; a message belongs to the segment that
 *     completes it;
 *   - tcp.stream numbering: one number per TCP conversation (address/port pair), a new one when a
 *     SYN (without ACK) comes with another initial sequence number or after a FIN/RST;
 *   - tcp.analysis.retransmission: the sequence analysis of packet-tcp.c (next expected sequence
 *     number per direction, keep-alives, out-of-order within the first RTT, fast and spurious
 *     retransmissions);
 *   - ICMP and ICMPv6 errors quoting a UDP packet on a DNS port (the quoted DNS is counted).
 *
 * Whatever it does not model it refuses, with a reason, and the caller runs tshark on the file:
 * IP fragments, tunnels (GRE, IP-in-IP, VXLAN, Geneve, OTV), mDNS/LLMNR, ports below 53 facing
 * port 53 (tshark's lower-port-first rule), DNS messages shorter than a header or whose questions
 * run past the end, names with control or non-ASCII bytes (tshark escapes them), a gap in a DNS
 * TCP stream, packets cut short by the snap length, pcapng features (non-decimal time
 * resolution, time offsets, simple/obsolete packet blocks, decryption secrets), link types not
 * listed above. The rows are then never a guess.
 *
 * Input is hostile: every read is bounded, every size is checked before use. Output columns go
 * to polars through the Arrow C data interface (PyCapsules "arrow_schema" / "arrow_array").
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_arrow_c.h"

/* ---------------------------------------------------------------------------------------------
 * growable buffers
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (extra > SIZE_MAX / 4 - b->len) return -1;
    size_t need = b->len + extra;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap && buf_reserve(b, n)) return -1;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static inline int buf_byte(Buf *b, uint8_t v) {
    if (b->len + 1 > b->cap && buf_reserve(b, 1)) return -1;
    b->data[b->len++] = v;
    return 0;
}

/* decimal text of v into out (at least 10 bytes); returns the length */
static inline size_t fmt_u32(char *out, uint32_t v) {
    char tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * output columns
 * ------------------------------------------------------------------------------------------- */

enum Kind { K_I8, K_U16, K_U32, K_I64, K_BOOL, K_STR };

typedef struct {
    const char *name;
    const char *format;
    enum Kind kind;
} ColSpec;

enum {
    C_FRAME,
    C_TS,
    C_LENGTH,
    C_SRC,
    C_DST,
    C_SPORT,
    C_DPORT,
    C_TRANSPORT,
    C_FLAGS,
    C_STREAM,
    C_SEQ,
    C_RETX,
    C_NMSG,
    C_DNS_FLAGS,
    N_COLS
};

/* the packets table: kit.sources.capture._fields._packets' columns; of the DNS fields only dns.flags (all
 * occurrences, 0x1f-joined), which kit.sources.capture._frames._tcp reads */
static const ColSpec SPECS[N_COLS] = {
    {"frame", "I", K_U32},        {"ts_ns", "l", K_I64},        {"length", "I", K_U32},
    {"src_ip", "u", K_STR},       {"dst_ip", "u", K_STR},       {"src_port", "S", K_U16},
    {"dst_port", "S", K_U16},     {"transport", "u", K_STR},    {"tcp_flags", "S", K_U16},
    {"tcp_stream", "I", K_U32},   {"tcp_seq", "I", K_U32},      {"is_retransmission", "b", K_BOOL},
    {"dns_messages", "S", K_U16}, {"dns_flags", "u", K_STR},
};

enum {
    X_FRAME,
    X_TS,
    X_SRC,
    X_DST,
    X_SPORT,
    X_DPORT,
    X_TRANSPORT,
    X_STREAM,
    X_ID,
    X_FLAGS,
    X_QNAME,
    X_QTYPE,
    X_RETX,
    X_R_TS,
    X_R_FRAME,
    X_R_FLAGS,
    X_R_ANSWERS,
    N_XCOLS
};

/* the transactions table: what kit.sources.capture._frames._transactions makes of the messages
 * (one row per query that opens a transaction, in capture order; the first response's time,
 * frame, flags and answer count, null while unanswered; retransmitted queries counted), paired
 * in C by kit.sources.capture._frames._pair's rules. The messages themselves are not kept: a
 * response fills its query's row when it comes (at 10 M packets the messages were ~0.9 GB as a
 * polars frame, twice the transactions) */
static const ColSpec XSPECS[N_XCOLS] = {
    {"frame", "I", K_U32},         {"ts_ns", "l", K_I64},        {"src_ip", "u", K_STR},
    {"dst_ip", "u", K_STR},        {"src_port", "S", K_U16},     {"dst_port", "S", K_U16},
    {"transport", "u", K_STR},     {"tcp_stream", "I", K_U32},   {"dns_id", "S", K_U16},
    {"flags", "S", K_U16},         {"qname", "u", K_STR},        {"qtype_n", "l", K_I64},
    {"retransmissions", "I", K_U32}, {"r_ts_ns", "l", K_I64},    {"r_frame", "I", K_U32},
    {"r_flags", "S", K_U16},       {"r_answers", "S", K_U16},
};

#define MAX_COLS 20

typedef struct {
    Buf values; /* fixed-width values, or int32 offsets (first one 0) for strings */
    Buf valid;  /* one byte per row, from the column's first null on (none: every row valid) */
    Buf data;   /* string bytes */
    int64_t nulls;
    int64_t n;     /* rows */
    int has_valid; /* valid holds a byte per row (from the first null on) */
} Col;

typedef struct {
    const ColSpec *specs;
    int ncols;
    Col cols[MAX_COLS];
    int64_t rows;
} Table;

static void table_free(Table *t) {
    for (int i = 0; i < MAX_COLS; i++) {
        free(t->cols[i].values.data);
        free(t->cols[i].valid.data);
        free(t->cols[i].data.data);
    }
    memset(t, 0, sizeof(*t));
}

/* room for about `rows` rows up front (the buffers still grow past it) */
static int table_init(Table *t, const ColSpec *specs, int ncols, size_t rows) {
    memset(t, 0, sizeof(*t));
    t->specs = specs;
    t->ncols = ncols;
    for (int i = 0; i < ncols; i++) {
        enum Kind k = specs[i].kind;
        size_t w = k == K_U16 ? 2 : k == K_I64 ? 8 : (k == K_BOOL || k == K_I8) ? 1 : 4;
        if (buf_reserve(&t->cols[i].values, rows * w + 8)) return -1;
        if (k == K_STR && buf_reserve(&t->cols[i].data, rows * 8 + 8)) return -1;
    }
    for (int i = 0; i < ncols; i++)
        if (specs[i].kind == K_STR) {
            int32_t zero = 0;
            if (buf_put(&t->cols[i].values, &zero, 4)) return -1;
        }
    return 0;
}

/* the validity bytes of a column start at its first null (the rows before it: valid); a column
 * without nulls has none (1 byte a row of each column, ~0.3 GB at 10 M packets, saved) */
static int valid_start(Col *c) {
    if (buf_reserve(&c->valid, (size_t)c->n + 64)) return -1;
    memset(c->valid.data, 1, (size_t)c->n);
    c->valid.len = (size_t)c->n;
    c->has_valid = 1;
    return 0;
}

static inline int put_valid(Col *c, int ok) {
    if (!ok) {
        if (!c->has_valid && valid_start(c)) return -1;
        c->nulls++;
    }
    c->n++;
    return c->has_valid ? buf_byte(&c->valid, (uint8_t)(ok != 0)) : 0;
}

/* row r (already written, maybe null) of a fixed-width column set to v, valid */
static inline void set_fixed(Col *c, int64_t r, const void *v, size_t w) {
    memcpy(c->values.data + (size_t)r * w, v, w);
    if (c->has_valid && !c->valid.data[r]) {
        c->valid.data[r] = 1;
        c->nulls--;
    }
}

static inline int put_fixed(Col *c, const void *v, size_t w, int ok) {
    static const uint8_t zero[8] = {0};
    if (buf_put(&c->values, ok ? v : zero, w)) return -1;
    return put_valid(c, ok);
}

static int put_u16(Col *c, uint16_t v, int ok) { return put_fixed(c, &v, 2, ok); }
static int put_u32(Col *c, uint32_t v, int ok) { return put_fixed(c, &v, 4, ok); }
static int put_i64(Col *c, int64_t v) { return put_fixed(c, &v, 8, 1); }

static inline int put_str(Col *c, const void *s, size_t n, int ok) {
    if (!ok) n = 0;
    if (c->data.len + n > INT32_MAX) return -1;
    if (n && buf_put(&c->data, s, n)) return -1;
    int32_t end = (int32_t)c->data.len;
    if (buf_put(&c->values, &end, 4)) return -1;
    return put_valid(c, ok);
}

/* ---------------------------------------------------------------------------------------------
 * Arrow export (struct array of the columns; the table's buffers move into it)
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    void *buffers[3];
    const void *ptrs[3];
} ArrPriv;

static void release_child(struct ArrowArray *a) {
    if (!a->release) return;
    ArrPriv *pv = a->private_data;
    for (int i = 0; i < 3; i++) free(pv->buffers[i]);
    free(pv);
    a->release = NULL;
}

static void *take(Buf *b) {
    void *p = b->data;
    if (!p) p = malloc(8); /* Arrow wants a buffer, not NULL, for a zero-length column */
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* column ci of t as a struct array of that one column: each column is its own export, so polars,
 * which keeps an imported array until every buffer it gave is dropped, frees a string column's
 * buffers (Arrow offsets and bytes, which it converts to its string views) as soon as that column
 * is converted, not when the whole table is (they were ~1 GB at 10 M packets) */
static int export_col(Table *t, int ci, struct ArrowSchema *schema, struct ArrowArray *array) {
    int64_t n = t->rows;
    const ColSpec *SPECS = t->specs;
    if (export_begin(schema, array, 1, n, sizeof(ArrPriv), offsetof(ArrPriv, ptrs))) goto fail;
    for (int i = ci, k = 0; i == ci; i++, k++) {
        struct ArrowSchema *cs = calloc(1, sizeof(*cs));
        struct ArrowArray *ca = calloc(1, sizeof(*ca));
        ArrPriv *pv = calloc(1, sizeof(*pv));
        if (!cs || !ca || !pv) {
            free(cs);
            free(ca);
            free(pv);
            goto fail;
        }
        Col *c = &t->cols[i];
        cs->format = SPECS[i].format;
        cs->name = SPECS[i].name;
        cs->flags = ARROW_FLAG_NULLABLE;
        cs->release = release_child_schema;
        schema->children[k] = cs;
        schema->n_children = k + 1;
        ca->length = n;
        ca->null_count = c->nulls;
        ca->private_data = pv;
        ca->release = release_child;
        ca->buffers = pv->ptrs;
        array->children[k] = ca;
        array->n_children = k + 1;
        if (c->nulls) {
            pv->buffers[0] = pack_bits(c->valid.data, n);
            if (!pv->buffers[0]) goto fail;
        }
        ca->n_buffers = 2;
        if (SPECS[i].kind == K_BOOL) {
            pv->buffers[1] = pack_bits(c->values.data, n);
            if (!pv->buffers[1]) goto fail;
        } else {
            pv->buffers[1] = take(&c->values);
            if (!pv->buffers[1]) goto fail;
            if (SPECS[i].kind == K_STR) {
                pv->buffers[2] = take(&c->data);
                if (!pv->buffers[2]) goto fail;
                ca->n_buffers = 3;
            }
        }
        for (int b = 0; b < 3; b++) pv->ptrs[b] = pv->buffers[b];
    }
    return 0;
fail:
    return export_fail(schema, array);
}

/* ---------------------------------------------------------------------------------------------
 * byte helpers
 * ------------------------------------------------------------------------------------------- */

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t le32(const uint8_t *p) {
    return p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint16_t rd16(const uint8_t *p, int swap) { return swap ? be16(p) : le16(p); }
static inline uint32_t rd32(const uint8_t *p, int swap) { return swap ? be32(p) : le32(p); }

/* sequence-number comparisons modulo 2^32 */
#define LT_SEQ(a, b) ((int32_t)((a) - (b)) < 0)
#define LE_SEQ(a, b) ((int32_t)((a) - (b)) <= 0)
#define GT_SEQ(a, b) ((int32_t)((a) - (b)) > 0)

/* ---------------------------------------------------------------------------------------------
 * TCP conversations
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    int base_set;
    uint32_t base_seq;
    int syn_seen;
    uint32_t syn_seq;
    int next_known;
    uint32_t nextseq;
    int64_t nextseqtime;
    int lastack_known;
    uint32_t lastack;
    int64_t lastacktime;
    uint32_t window;
    int window_known;
    uint32_t dupacknum;
    /* DNS reassembly */
    int r_init;
    uint32_t r_next; /* next byte to hand to the PDU splitter */
    Buf pending;     /* bytes of an incomplete PDU */
} Dir;

typedef struct {
    uint8_t key[37]; /* af, lower endpoint (addr 16, port 2), higher endpoint */
    uint32_t stream;
    int closed;
    int64_t mru_syn; /* time of the latest SYN, ns; 0: none */
    int mru_syn_set;
    int64_t first_rtt; /* ns; 0: unknown */
    Dir d[2];          /* 0: from the lower endpoint, 1: from the higher */
} Conn;

typedef struct {
    Conn **slots; /* open addressing, power-of-two size */
    size_t size, used;
    Conn **all; /* every Conn made, to free */
    size_t n_all, cap_all;
    uint32_t next_stream;
    Buf first_frames; /* uint32 per stream number: the frame that opened it (for parse_part) */
} ConnTable;

/* a fast 64-bit hash of n bytes, 8 at a time (keys are fixed-size and zero-padded) */
static uint64_t hash_bytes(const uint8_t *k, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, k + i, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
    }
    for (; i < n; i++) h = (h ^ k[i]) * 0x94D049BB133111EBULL;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 32);
}

static uint64_t hash_key(const uint8_t *k) { return hash_bytes(k, 37); }

static void conns_free(ConnTable *ct) {
    for (size_t i = 0; i < ct->n_all; i++) {
        free(ct->all[i]->d[0].pending.data);
        free(ct->all[i]->d[1].pending.data);
        free(ct->all[i]);
    }
    free(ct->all);
    free(ct->slots);
    free(ct->first_frames.data);
    memset(ct, 0, sizeof(*ct));
}

static int conns_grow(ConnTable *ct) {
    size_t size = ct->size ? ct->size * 2 : 1024;
    Conn **s = calloc(size, sizeof(Conn *));
    if (!s) return -1;
    for (size_t i = 0; i < ct->size; i++) {
        Conn *c = ct->slots[i];
        if (!c) continue;
        size_t j = hash_key(c->key) & (size - 1);
        while (s[j]) j = (j + 1) & (size - 1);
        s[j] = c;
    }
    free(ct->slots);
    ct->slots = s;
    ct->size = size;
    return 0;
}

/* the current conversation for key, or NULL; *slot is where it is (or goes) */
static Conn *conns_find(ConnTable *ct, const uint8_t *key, size_t *slot) {
    size_t j = hash_key(key) & (ct->size - 1);
    while (ct->slots[j]) {
        if (memcmp(ct->slots[j]->key, key, 37) == 0) break;
        j = (j + 1) & (ct->size - 1);
    }
    *slot = j;
    return ct->slots[j];
}

/* a new conversation for key (replacing the one in the table, which stays allocated) */
static Conn *conns_new(ConnTable *ct, const uint8_t *key, uint32_t frame) {
    if (ct->used * 2 >= ct->size && conns_grow(ct)) return NULL;
    size_t slot;
    Conn *old = conns_find(ct, key, &slot);
    Conn *c = calloc(1, sizeof(Conn));
    if (!c) return NULL;
    if (ct->n_all == ct->cap_all) {
        size_t cap = ct->cap_all ? ct->cap_all * 2 : 1024;
        Conn **a = realloc(ct->all, cap * sizeof(Conn *));
        if (!a) {
            free(c);
            return NULL;
        }
        ct->all = a;
        ct->cap_all = cap;
    }
    ct->all[ct->n_all++] = c;
    memcpy(c->key, key, 37);
    if (buf_put(&ct->first_frames, &frame, 4)) return NULL; /* c is freed with ct->all */
    c->stream = ct->next_stream++;
    if (old) { /* the old one's reassembly is over */
        free(old->d[0].pending.data);
        free(old->d[1].pending.data);
        memset(&old->d[0].pending, 0, sizeof(Buf));
        memset(&old->d[1].pending, 0, sizeof(Buf));
    } else {
        ct->used++;
    }
    ct->slots[slot] = c;
    return c;
}

/* ---------------------------------------------------------------------------------------------
 * pairing (kit.sources.capture._frames._pair's rules, like tshark's DNS dissector): per conversation
 * (the TCP
 * stream, or the unordered UDP address/port pair) and DNS ID, a query repeated within 5 s of the
 * first one while unanswered is a retransmission, the first response answers, later ones are
 * duplicates, a response with no query is an orphan
 * ------------------------------------------------------------------------------------------- */

#define PKEY 40
typedef struct {
    uint64_t hash;
    uint8_t key[PKEY];
    uint8_t used; /* 0: made by a lookup that found nothing (an orphan response), not a query */
    uint8_t answered;
    uint32_t frame;
    int64_t txn, ts;
} PSlot;

/* An index of uint32 (entry number + 1; 0: empty), open addressing, power-of-two size, over a
 * dense array of entries that only grows at its end. Growing the index rehashes 4-byte slots
 * (the old index is freed at once); the entries grow by realloc, which for a large block moves
 * pages (mremap) instead of copying them: so the table never holds two copies of its entries,
 * as a table of entries in open addressing did while it doubled (~0.8 GB at 10 M packets). */
typedef struct {
    uint32_t *index;
    size_t size;
    PSlot *slots; /* the entries */
    size_t used, cap;
} PairTable;

static int pair_grow_index(PairTable *pt) {
    size_t size = pt->size ? pt->size * 2 : 4096;
    uint32_t *ix = calloc(size, sizeof(uint32_t));
    if (!ix) return -1;
    for (size_t e = 0; e < pt->used; e++) {
        size_t j = pt->slots[e].hash & (size - 1);
        while (ix[j]) j = (j + 1) & (size - 1);
        ix[j] = (uint32_t)(e + 1);
    }
    free(pt->index);
    pt->index = ix;
    pt->size = size;
    return 0;
}

/* the entry for key, a new zeroed one (used = 0, key and hash set) when there is none; valid
 * until the next call; NULL when out of memory */
static PSlot *pair_slot(PairTable *pt, const uint8_t *key) {
    if (pt->used * 2 >= pt->size && (pt->used >= UINT32_MAX - 1 || pair_grow_index(pt)))
        return NULL;
    uint64_t h = hash_bytes(key, PKEY);
    size_t j = h & (pt->size - 1);
    while (pt->index[j]) {
        PSlot *e = &pt->slots[pt->index[j] - 1];
        if (e->hash == h && memcmp(e->key, key, PKEY) == 0) return e;
        j = (j + 1) & (pt->size - 1);
    }
    if (pt->used == pt->cap) {
        size_t cap = pt->cap ? pt->cap * 2 : 4096;
        PSlot *ns = realloc(pt->slots, cap * sizeof(PSlot));
        if (!ns) return NULL;
        pt->slots = ns;
        pt->cap = cap;
    }
    PSlot *e = &pt->slots[pt->used];
    memset(e, 0, sizeof(*e));
    e->hash = h;
    memcpy(e->key, key, PKEY);
    pt->index[j] = (uint32_t)++pt->used;
    return e;
}

/* ---------------------------------------------------------------------------------------------
 * per-file state and the current packet
 * ------------------------------------------------------------------------------------------- */

#define REASON_MAX 200

typedef struct {
    /* options */
    uint16_t ports[64];
    int n_ports;
    int worker, nworkers; /* parse_part: this worker's share of the conversations */
    int skip;             /* the current packet is another worker's */
    size_t pos;          /* file offset of the current record (block), for refuse_pos */
    size_t refuse_pos;   /* where the first refusal happened: orders the workers' refusals */
    const uint8_t *map;  /* release: a read-only file mapping whose parsed pages are given back */
    size_t window;       /* in steps of this many bytes */
    size_t released;     /* bytes of it before this offset are given back */
    /* results */
    Table t;
    ConnTable conns;
    char reason[REASON_MAX]; /* non-empty: the file goes to tshark */
    int oom;
    /* current packet */
    uint32_t frame;
    int64_t ts;
    uint32_t wirelen;
    int af; /* 4 or 6 */
    uint8_t src[16], dst[16];
    int transport; /* 0 none, 1 udp, 2 tcp, 3 icmp */
    int has_ports;
    uint16_t sport, dport;
    uint16_t tcp_flags;
    uint32_t stream, seq;
    int retx;
    int nmsg;
    int keep;
    Buf flags_txt; /* dns.flags of the packet's messages, 0x1f-joined */
    Buf msgs;      /* Msg records of the packet's messages */
    Buf names;     /* their first question names */
    Table mt;      /* transactions table */
    PairTable pairs;
    uint64_t n_role[5]; /* messages by role: query, retransmitted query, answer, duplicate, orphan */
} State;

typedef struct {
    uint16_t id, flags, answers;
    int has_q;
    size_t name_off, name_len;
    uint16_t qtype;
} Msg;

static int refuse(State *s, const char *why) {
    if (!s->reason[0]) {
        snprintf(s->reason, REASON_MAX, "%s (frame %u)", why, s->frame);
        s->refuse_pos = s->pos;
    }
    return -1;
}

/* parse_part: whether the current UDP/TCP packet (addresses in s, ports sp/dp) belongs to another
 * worker. A conversation (address family and the unordered pair of endpoints, the key of both the
 * TCP state and the UDP pairing) belongs to one worker, chosen by its hash; everything stateful
 * in this file (TCP streams, sequence analysis, reassembly, pairing) is per conversation, so a
 * worker that sees only its conversations computes for them what one pass over the whole file
 * computes. Sets s->skip for another worker's packet. */
static int not_mine(State *s, uint16_t sp, uint16_t dp) {
    if (s->nworkers <= 1) return 0;
    int alen = s->af == 4 ? 4 : 16;
    uint8_t ea[18] = {0}, eb[18] = {0}, key[37];
    memcpy(ea, s->src, (size_t)alen);
    ea[16] = (uint8_t)(sp >> 8);
    ea[17] = (uint8_t)sp;
    memcpy(eb, s->dst, (size_t)alen);
    eb[16] = (uint8_t)(dp >> 8);
    eb[17] = (uint8_t)dp;
    int lo = memcmp(ea, eb, 18) <= 0;
    key[0] = (uint8_t)s->af;
    memcpy(key + 1, lo ? ea : eb, 18);
    memcpy(key + 19, lo ? eb : ea, 18);
    if ((int)((hash_bytes(key, 37) >> 33) % (uint64_t)s->nworkers) == s->worker) return 0;
    s->skip = 1;
    return 1;
}

static int is_dns_port(const State *s, uint16_t p) {
    for (int i = 0; i < s->n_ports; i++)
        if (s->ports[i] == p) return 1;
    return 0;
}

/* append dns.flags as tshark prints it, joined with 0x1f like -E occurrence=a */
static int flags_text(State *s, unsigned v) {
    static const char hex[] = "0123456789abcdef";
    char tmp[7] = {'\x1f', '0', 'x', hex[(v >> 12) & 15], hex[(v >> 8) & 15], hex[(v >> 4) & 15],
                   hex[v & 15]};
    int first = s->flags_txt.len == 0;
    return buf_put(&s->flags_txt, tmp + first, 7 - (size_t)first);
}

/* ---------------------------------------------------------------------------------------------
 * DNS: header and questions of one message
 * ------------------------------------------------------------------------------------------- */

/* the name at off in msg, as tshark prints it; returns the offset after it (in the message, not
 * following pointers) or 0 to refuse */
static size_t dns_name(State *s, const uint8_t *m, size_t n, size_t off, char *out,
                       size_t *outlen) {
    size_t pos = off, after = 0, len = 0;
    int jumps = 0;
    for (;;) {
        if (pos >= n) return refuse(s, "DNS question runs past the end of the message"), 0;
        uint8_t l = m[pos];
        if ((l & 0xC0) == 0xC0) {
            if (pos + 1 >= n) return refuse(s, "DNS question runs past the end of the message"), 0;
            if (!after) after = pos + 2;
            size_t to = ((size_t)(l & 0x3F) << 8) | m[pos + 1];
            if (++jumps > 32 || to >= pos) return refuse(s, "DNS name pointer loop"), 0;
            pos = to;
            continue;
        }
        if (l & 0xC0) return refuse(s, "DNS extended label type"), 0;
        if (l == 0) {
            if (!after) after = pos + 1;
            break;
        }
        if (pos + 1 + l > n) return refuse(s, "DNS question runs past the end of the message"), 0;
        if (len + l + 1 > 255) return refuse(s, "DNS name longer than 255 bytes"), 0;
        if (len) out[len++] = '.';
        for (size_t i = 0; i < l; i++) {
            uint8_t c = m[pos + 1 + i];
            if (c < 0x20 || c >= 0x7F)
                return refuse(s, "DNS name with control or non-ASCII bytes"), 0;
            out[len++] = (char)c;
        }
        pos += 1 + l;
    }
    /* tshark prints the root as <Root> (and a one-label name "<Root>" the same); the kit's
     * frames say "." for both (kit.sources.capture._frames._root), so that is written here */
    if (len == 0 || (len == 6 && memcmp(out, "<Root>", 6) == 0)) {
        out[0] = '.';
        len = 1;
    }
    *outlen = len;
    return after;
}

static int dns_message(State *s, const uint8_t *m, size_t n) {
    if (n < 12) return refuse(s, "DNS message shorter than its header");
    /* header: an UPDATE counts zones and prerequisites where a query has questions and answers;
     * either way the first question (zone) is the message's name, the second count its
     * `answers` (kit.sources.capture._frames._messages) */
    Msg g = {be16(m), be16(m + 2), be16(m + 6), 0, 0, 0, 0};
    uint16_t qd = be16(m + 4);
    if (flags_text(s, g.flags)) return -1;
    size_t off = 12;
    char name[264];
    for (unsigned i = 0; i < qd; i++) {
        size_t nl = 0;
        size_t after = dns_name(s, m, n, off, name, &nl);
        if (!after) return -1;
        if (after + 4 > n) return refuse(s, "DNS question runs past the end of the message");
        if (i == 0) {
            g.has_q = 1;
            g.name_off = s->names.len;
            g.name_len = nl;
            g.qtype = be16(m + after);
            if (buf_put(&s->names, name, nl)) return -1;
        }
        off = after + 4;
    }
    if (buf_put(&s->msgs, &g, sizeof g)) return -1;
    s->nmsg++;
    return 0;
}

/* feed in-order TCP payload bytes of one direction to the PDU splitter */
static int dns_tcp_bytes(State *s, Dir *d, const uint8_t *p, size_t n) {
    while (n) {
        Buf *b = &d->pending;
        if (b->len == 0 && n >= 2) {
            size_t plen = be16(p);
            if (n >= 2 + plen) { /* a whole PDU in this segment */
                if (plen == 0) return refuse(s, "empty DNS-over-TCP message");
                if (dns_message(s, p + 2, plen)) return -1;
                p += 2 + plen;
                n -= 2 + plen;
                continue;
            }
        }
        /* partial: accumulate */
        size_t want;
        if (b->len < 2) {
            want = 2 - b->len;
            if (want > n) want = n;
        } else {
            size_t plen = be16(b->data);
            want = 2 + plen - b->len;
            if (want > n) want = n;
        }
        if (buf_put(b, p, want)) return -1;
        p += want;
        n -= want;
        if (b->len >= 2) {
            size_t plen = be16(b->data);
            if (b->len == 2 + plen) {
                if (plen == 0) return refuse(s, "empty DNS-over-TCP message");
                if (dns_message(s, b->data + 2, plen)) return -1;
                b->len = 0;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * transport layers
 * ------------------------------------------------------------------------------------------- */

/* the side of a packet with a lower port wins tshark's dissector choice; only the cases that
 * reach DNS are modelled */
static int dns_udp(State *s, uint16_t sp, uint16_t dp) {
    if (sp == 5353 || dp == 5353 || sp == 5355 || dp == 5355) {
        if (sp == 53 || dp == 53) return refuse(s, "DNS between port 53 and mDNS/LLMNR ports");
        return refuse(s, "mDNS or LLMNR packet");
    }
    if (sp != 53 && dp != 53) return 0;
    uint16_t other = sp == 53 ? dp : sp;
    if (other && other < 53) return refuse(s, "port 53 facing a lower well-known port");
    return 1;
}

static int dns_tcp(State *s, uint16_t sp, uint16_t dp) {
    int a = sp == 53 || sp == 5353, b = dp == 53 || dp == 5353;
    if (!a && !b) return 0;
    uint16_t low = sp < dp ? sp : dp;
    uint16_t dnsp = (a && b) ? low : (a ? sp : dp);
    if (low && low < dnsp) return refuse(s, "DNS port facing a lower well-known port");
    return 1;
}

static int udp(State *s, const uint8_t *p, size_t n, size_t rep, int quoted) {
    if (n < 8) return quoted ? 0 : refuse(s, "UDP header cut short");
    uint16_t sp = be16(p), dp = be16(p + 2), ulen = be16(p + 4);
    if (!quoted && not_mine(s, sp, dp)) return 0;
    s->has_ports = 1;
    s->sport = sp;
    s->dport = dp;
    if (sp == 4789 || dp == 4789 || sp == 6081 || dp == 6081 || sp == 8472 || dp == 8472)
        return refuse(s, "UDP tunnel (VXLAN, Geneve or OTV)");
    int dns = dns_udp(s, sp, dp);
    if (dns < 0) return -1;
    if (is_dns_port(s, sp) || is_dns_port(s, dp)) s->keep = 1;
    if (!dns) return 0;
    if (quoted) {
        if (n < 8) return 0;
        /* an ICMP error quotes the start of the datagram: tshark dissects what is there */
        size_t have = n - 8;
        if (ulen < 8 || (size_t)ulen - 8 > have)
            return refuse(s, "ICMP quotes a partial DNS message");
        if (dns_message(s, p + 8, (size_t)ulen - 8)) return -1;
        s->keep = 1;
        return 0;
    }
    if (ulen < 8 || ulen > rep) return refuse(s, "UDP length does not match the IP payload");
    if (ulen > n) return refuse(s, "a DNS packet cut short by the snap length");
    if (ulen == 8) return 0; /* no payload: tshark does not call DNS */
    if (dns_message(s, p + 8, (size_t)ulen - 8)) return -1;
    s->keep = 1;
    return 0;
}

static int tcp(State *s, const uint8_t *p, size_t n, size_t rep) {
    if (n < 20) return refuse(s, "TCP header cut short");
    uint16_t sp = be16(p), dp = be16(p + 2);
    if (not_mine(s, sp, dp)) return 0;
    uint32_t seq = be32(p + 4), ack = be32(p + 8);
    size_t doff = (size_t)(p[12] >> 4) * 4;
    uint16_t flags = (uint16_t)(((p[12] & 0x0F) << 8) | p[13]) & 0x0FFF;
    uint32_t window = be16(p + 14);
    if (doff < 20 || doff > n || doff > rep) return refuse(s, "TCP header length out of range");
    const uint8_t *pl = p + doff;
    size_t seglen = rep - doff; /* tshark's analysis uses the reported length */
    s->has_ports = 1;
    s->sport = sp;
    s->dport = dp;
    s->tcp_flags = flags;
    s->seq = seq;
    int syn = flags & 0x02, ackf = flags & 0x10, fin = flags & 0x01, rst = flags & 0x04;
    /* conversation key: lower endpoint first */
    int alen = s->af == 4 ? 4 : 16;
    uint8_t ea[18] = {0}, eb[18] = {0};
    memcpy(ea, s->src, (size_t)alen);
    ea[16] = (uint8_t)(sp >> 8);
    ea[17] = (uint8_t)sp;
    memcpy(eb, s->dst, (size_t)alen);
    eb[16] = (uint8_t)(dp >> 8);
    eb[17] = (uint8_t)dp;
    int fwd_is_low = memcmp(ea, eb, 18) <= 0;
    uint8_t key[37];
    key[0] = (uint8_t)s->af;
    memcpy(key + 1, fwd_is_low ? ea : eb, 18);
    memcpy(key + 19, fwd_is_low ? eb : ea, 18);
    ConnTable *ct = &s->conns;
    if (ct->size == 0 && conns_grow(ct)) return -1;
    size_t slot;
    Conn *c = conns_find(ct, key, &slot);
    int di = fwd_is_low ? 0 : 1;
    if (c && syn && !ackf) {
        Dir *f = &c->d[di];
        if (c->closed || !f->syn_seen || f->syn_seq != seq) c = NULL; /* ports reused */
    }
    if (!c) {
        c = conns_new(ct, key, s->frame);
        if (!c) return -1;
    }
    Dir *fwd = &c->d[di], *rev = &c->d[1 - di];
    s->stream = c->stream;
    if (!fwd->base_set) {
        fwd->base_set = 1;
        fwd->base_seq = syn ? seq : seq - 1;
    }
    if (syn && !ackf && !fwd->syn_seen) {
        fwd->syn_seen = 1;
        fwd->syn_seq = seq;
    }
    if (syn && ackf && !fwd->syn_seen) {
        fwd->syn_seen = 1;
        fwd->syn_seq = seq;
    }
    /* round-trip time of the handshake (the out-of-order threshold) */
    if (syn && !ackf) {
        c->mru_syn = s->ts;
        c->mru_syn_set = 1;
    }
    if (!syn && ackf && c->first_rtt == 0 && c->mru_syn_set) c->first_rtt = s->ts - c->mru_syn;

    /* sequence analysis (packet-tcp.c, tcp_analyze_sequence_number); a zero-window probe (which
     * tshark keeps out of its next-sequence bookkeeping) is not modelled: refused where it
     * matters, on a stream whose packets are rows */
    if (seglen == 1 && fwd->next_known && seq == fwd->nextseq && rev->window_known &&
        rev->window == 0 && (is_dns_port(s, sp) || is_dns_port(s, dp) || dns_tcp(s, sp, dp) > 0))
        return refuse(s, "a TCP zero-window probe on a DNS stream");
    int keepalive = 0, dupack = 0, retx = 0, fast = 0;
    if (seglen <= 1 && !(flags & (0x01 | 0x02 | 0x04)) && fwd->next_known &&
        fwd->nextseq - 1 == seq)
        keepalive = 1;
    if (!keepalive && seglen == 0 && window && window == fwd->window && fwd->next_known &&
        seq == fwd->nextseq && fwd->lastack_known && ack == fwd->lastack &&
        !(flags & (0x01 | 0x02 | 0x04)))
        dupack = 1;
    if (dupack) fwd->dupacknum++;
    else fwd->dupacknum = 0;
    if ((seglen > 0 || (flags & (0x01 | 0x02))) && !keepalive) {
        int not_adv = fwd->next_known && LT_SEQ(seq, fwd->nextseq);
        if (seglen > 1 && fwd->next_known && fwd->nextseq - 1 == seq) not_adv = 0;
        if (not_adv) {
            int64_t t = s->ts - fwd->nextseqtime;
            int64_t thres = c->first_rtt ? c->first_rtt : 3000000;
            uint32_t end = seq + (uint32_t)seglen + ((flags & (0x01 | 0x02)) ? 1 : 0);
            if (s->ts - rev->lastacktime < 20000000 && rev->lastack_known &&
                rev->lastack == seq && rev->dupacknum >= 2) {
                retx = fast = 1; /* fast retransmission (tshark adds the retransmission flag too) */
            } else if (t < thres && fwd->nextseq != end) {
                /* out of order */
            } else {
                retx = 1; /* also a spurious one (data already acknowledged): tshark 4.0 flags
                           * it as a retransmission too */
            }
        }
    }
    {
        uint32_t nextseq = seq + (uint32_t)seglen + ((flags & (0x01 | 0x02)) ? 1 : 0);
        if (!fwd->next_known || GT_SEQ(nextseq, fwd->nextseq)) {
            fwd->next_known = 1;
            fwd->nextseq = nextseq;
            fwd->nextseqtime = s->ts;
        }
        fwd->window = window;
        fwd->window_known = 1;
        if (ackf) {
            fwd->lastack = ack;
            fwd->lastack_known = 1;
            fwd->lastacktime = s->ts;
        }
    }
    s->retx = retx;
    if (fin || rst) c->closed = 1;

    int dns = dns_tcp(s, sp, dp);
    if (dns < 0) return -1;
    if (is_dns_port(s, sp) || is_dns_port(s, dp)) s->keep = 1;
    if (!dns) return 0;
    if (syn && seglen) return refuse(s, "data on a TCP SYN");
    if (syn) {
        fwd->r_init = 1;
        fwd->r_next = seq + 1;
        fwd->pending.len = 0;
        return 0;
    }
    if (!seglen) return 0;
    if (rep > n) return refuse(s, "a DNS packet cut short by the snap length");
    /* tshark does not hand retransmitted or out-of-order segments to DNS (bytes already seen
     * are skipped below, the same), but a fast retransmission it does: not modelled */
    if (fast) return refuse(s, "a TCP fast retransmission in a DNS stream");
    if (!fwd->r_init) {
        fwd->r_init = 1;
        fwd->r_next = seq;
    }
    if (GT_SEQ(seq, fwd->r_next)) return refuse(s, "a gap in a DNS-over-TCP stream");
    uint32_t skip = fwd->r_next - seq;
    if (skip >= seglen) return 0; /* all seen before: a retransmission */
    if (skip) return refuse(s, "a TCP segment overlapping bytes already seen");
    fwd->r_next = seq + (uint32_t)seglen;
    int before = s->nmsg;
    if (dns_tcp_bytes(s, fwd, pl, seglen)) return -1;
    if (s->nmsg > before) s->keep = 1;
    return 0;
}

static int ip_layer(State *s, const uint8_t *p, size_t n, int quoted);

static int icmp_error(State *s, const uint8_t *p, size_t n, int v6) {
    if (s->nworkers > 1 && (int)(s->frame % (uint32_t)s->nworkers) != s->worker) {
        s->skip = 1; /* stateless: shared out by frame number */
        return 0;
    }
    if (n < 8) return 0;
    uint8_t type = p[0];
    int err = v6 ? (type >= 1 && type <= 4)
                 : (type == 3 || type == 4 || type == 5 || type == 11 || type == 12);
    if (!err) return 0;
    /* the quoted packet: its ports, its DNS; addresses stay the outer ones */
    return ip_layer(s, p + 8, n - 8, 1);
}

/* IPv4 or IPv6 at p; quoted: inside an ICMP error (addresses are not taken) */
static int ip_layer(State *s, const uint8_t *p, size_t n, int quoted) {
    if (n < 1) return 0;
    int ver = p[0] >> 4;
    uint8_t proto;
    const uint8_t *pl;
    size_t pn, rep;
    if (ver == 4) {
        if (n < 20) return quoted ? 0 : refuse(s, "IPv4 header cut short");
        size_t ihl = (size_t)(p[0] & 0x0F) * 4;
        size_t tot = be16(p + 2);
        if (ihl < 20 || ihl > n) return quoted ? 0 : refuse(s, "IPv4 header length out of range");
        uint16_t frag = be16(p + 6);
        if (frag & 0x3FFF) return refuse(s, "IP fragments");
        if (tot < ihl) return refuse(s, "IPv4 total length out of range");
        rep = tot - ihl;
        if (tot > n) tot = n; /* cut by the snap length (or quoted in part) */
        proto = p[9];
        pl = p + ihl;
        pn = tot - ihl;
        if (!quoted) {
            s->af = 4;
            memcpy(s->src, p + 12, 4);
            memcpy(s->dst, p + 16, 4);
        } else if (s->af != 4) {
            return refuse(s, "ICMPv6 quoting IPv4");
        }
    } else if (ver == 6) {
        if (n < 40) return quoted ? 0 : refuse(s, "IPv6 header cut short");
        size_t plen = be16(p + 4);
        if (plen == 0) return refuse(s, "IPv6 jumbogram or empty payload length");
        rep = plen;
        if (40 + plen > n) plen = n - 40; /* cut by the snap length (or quoted in part) */
        if (!quoted) {
            s->af = 6;
            memcpy(s->src, p + 8, 16);
            memcpy(s->dst, p + 24, 16);
        } else if (s->af != 6) {
            return refuse(s, "ICMP quoting IPv6");
        }
        proto = p[6];
        pl = p + 40;
        pn = plen;
        for (int hops = 0;; hops++) {
            if (hops > 8) return refuse(s, "too many IPv6 extension headers");
            if (proto == 0 || proto == 43 || proto == 60 || proto == 135) {
                if (pn < 8) return refuse(s, "IPv6 extension header cut short");
                size_t el = ((size_t)pl[1] + 1) * 8;
                if (el > pn) return refuse(s, "IPv6 extension header cut short");
                proto = pl[0];
                pl += el;
                pn -= el;
                rep -= el;
                continue;
            }
            if (proto == 44) return refuse(s, "IP fragments");
            break;
        }
    } else {
        return 0;
    }
    if (proto == 4 || proto == 41 || proto == 47 || proto == 50 || proto == 51 || proto == 97 ||
        proto == 115 || proto == 137)
        return refuse(s, "tunnel or IPsec inside IP");
    if (quoted) {
        if (proto == 17) return udp(s, pl, pn, rep, 1);
        if (proto == 6) {
            if (pn >= 4) {
                uint16_t sp = be16(pl), dp = be16(pl + 2);
                if (is_dns_port(s, sp) || is_dns_port(s, dp) || sp == 53 || dp == 53 ||
                    sp == 5353 || dp == 5353)
                    return refuse(s, "ICMP error quoting DNS-port TCP");
            }
            return 0;
        }
        if (proto == 1 || proto == 58) return 0;
        return 0;
    }
    if (proto == 17) {
        s->transport = 1;
        return udp(s, pl, pn, rep, 0);
    }
    if (proto == 6) {
        s->transport = 2;
        return tcp(s, pl, pn, rep);
    }
    if ((proto == 1 && ver == 4) || (proto == 58 && ver == 6)) {
        s->transport = 3;
        int r = icmp_error(s, pl, pn, ver == 6);
        if (r < 0) return -1;
        if (!s->keep) s->transport = 0;
        return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * link layers
 * ------------------------------------------------------------------------------------------- */

static int ethertype_payload(State *s, uint16_t et, const uint8_t *p, size_t n) {
    if (et == 0x0800 || et == 0x86DD) return ip_layer(s, p, n, 0);
    return 0;
}

static int link_layer(State *s, uint32_t dlt, const uint8_t *p, size_t n) {
    switch (dlt) {
    case 1: { /* Ethernet */
        if (n < 14) return 0;
        uint16_t et = be16(p + 12);
        size_t off = 14;
        for (int tags = 0; (et == 0x8100 || et == 0x88A8 || et == 0x9100) && tags < 4; tags++) {
            if (n < off + 4) return 0;
            et = be16(p + off + 2);
            off += 4;
        }
        if (et == 0x8100 || et == 0x88A8 || et == 0x9100) return refuse(s, "too many VLAN tags");
        return ethertype_payload(s, et, p + off, n - off);
    }
    case 113: /* Linux cooked v1 */
        if (n < 16) return 0;
        return ethertype_payload(s, be16(p + 14), p + 16, n - 16);
    case 276: /* Linux cooked v2 */
        if (n < 20) return 0;
        return ethertype_payload(s, be16(p), p + 20, n - 20);
    case 101: /* raw IP */
    case 228:
    case 229:
        return ip_layer(s, p, n, 0);
    case 0: /* BSD loopback: address family in host byte order of the writer */
    case 108: {
        if (n < 4) return 0;
        uint32_t af = dlt == 108 ? be32(p) : (le32(p) < 0x10000 ? le32(p) : be32(p));
        if (af == 2) return ip_layer(s, p + 4, n - 4, 0);
        if (af == 10 || af == 24 || af == 28 || af == 30) return ip_layer(s, p + 4, n - 4, 0);
        return 0;
    }
    }
    return refuse(s, "link type not supported natively");
}

static const char *link_name(uint32_t dlt) {
    switch (dlt) {
    case 0: return "null";
    case 1: return "ether";
    case 101: return "rawip";
    case 108: return "loop";
    case 113: return "linux-sll";
    case 228: return "rawip4";
    case 229: return "rawip6";
    case 276: return "linux-sll2";
    }
    return NULL;
}

static size_t ip_text(int af, const uint8_t *a, char *out) {
    if (af == 4) {
        size_t n = 0;
        for (int i = 0; i < 4; i++) {
            if (i) out[n++] = '.';
            n += fmt_u32(out + n, a[i]);
        }
        return n;
    }
    if (!inet_ntop(AF_INET6, a, out, 46)) strcpy(out, "::");
    return strlen(out);
}

static const char *TRANSPORTS[] = {"", "udp", "tcp", "icmp"};

static int packet(State *s, uint32_t dlt, const uint8_t *p, size_t caplen) {
    s->af = 0;
    s->transport = 0;
    s->has_ports = 0;
    s->retx = 0;
    s->nmsg = 0;
    s->keep = 0;
    s->flags_txt.len = 0;
    s->msgs.len = 0;
    s->names.len = 0;
    s->skip = 0;
    if (link_layer(s, dlt, p, caplen)) return -1;
    if (s->skip || !s->keep || !s->transport) return 0;
    Table *t = &s->t;
    Col *c = t->cols;
    char a[48], b[48];
    size_t na = ip_text(s->af, s->src, a), nb = ip_text(s->af, s->dst, b);
    const char *tr = TRANSPORTS[s->transport];
    int is_tcp = s->transport == 2;
    if (put_u32(&c[C_FRAME], s->frame, 1) || put_i64(&c[C_TS], s->ts) ||
        put_u32(&c[C_LENGTH], s->wirelen, 1) || put_str(&c[C_SRC], a, na, 1) ||
        put_str(&c[C_DST], b, nb, 1) || put_u16(&c[C_SPORT], s->sport, s->has_ports) ||
        put_u16(&c[C_DPORT], s->dport, s->has_ports) ||
        put_str(&c[C_TRANSPORT], tr, s->transport == 3 ? 4 : 3, 1) ||
        put_u16(&c[C_FLAGS], s->tcp_flags, is_tcp) || put_u32(&c[C_STREAM], s->stream, is_tcp) ||
        put_u32(&c[C_SEQ], s->seq, is_tcp))
        return -1;
    uint8_t rx = (uint8_t)(is_tcp && s->retx);
    if (s->nmsg > 0xFFFF) return refuse(s, "more than 65535 DNS messages in one packet");
    if (put_fixed(&c[C_RETX], &rx, 1, 1) || put_u16(&c[C_NMSG], (uint16_t)s->nmsg, 1) ||
        put_str(&c[C_DNS_FLAGS], s->flags_txt.data, s->flags_txt.len, s->nmsg > 0))
        return -1;
    t->rows++;
    if (s->transport == 3) return 0; /* quoted in an ICMP error: counted, not a transaction */
    Col *mc = s->mt.cols;
    const Msg *ms = (const Msg *)s->msgs.data;
    /* conversation key: TCP stream, or the unordered UDP endpoints; then the DNS ID */
    uint8_t key[PKEY] = {0};
    if (is_tcp) {
        key[0] = 1;
        memcpy(key + 1, &s->stream, 4);
    } else {
        uint8_t ea[18] = {0}, eb[18] = {0};
        int alen = s->af == 4 ? 4 : 16;
        memcpy(ea, s->src, (size_t)alen);
        ea[16] = (uint8_t)(s->sport >> 8);
        ea[17] = (uint8_t)s->sport;
        memcpy(eb, s->dst, (size_t)alen);
        eb[16] = (uint8_t)(s->dport >> 8);
        eb[17] = (uint8_t)s->dport;
        int lo = memcmp(ea, eb, 18) <= 0;
        key[0] = (uint8_t)(s->af == 4 ? 2 : 3);
        memcpy(key + 1, lo ? ea : eb, 18);
        memcpy(key + 19, lo ? eb : ea, 18);
    }
    for (int i = 0; i < s->nmsg; i++) {
        const Msg *g = &ms[i];
        key[37] = (uint8_t)(g->id >> 8);
        key[38] = (uint8_t)g->id;
        PSlot *st = pair_slot(&s->pairs, key);
        if (!st) return -1;
        if (!(g->flags & 0x8000)) { /* query */
            if (st->used && !st->answered && st->frame != s->frame &&
                s->ts - st->ts < 5000000000LL) {
                s->n_role[1]++; /* retransmitted: counted on its transaction's row */
                uint32_t *r = (uint32_t *)(void *)(mc[X_RETX].values.data + st->txn * 4);
                (*r)++;
                continue;
            }
            int64_t row = s->mt.rows;
            st->used = 1;
            st->answered = 0;
            st->txn = row;
            st->ts = s->ts;
            st->frame = s->frame;
            s->n_role[0]++;
            if (put_u32(&mc[X_FRAME], s->frame, 1) || put_i64(&mc[X_TS], s->ts) ||
                put_str(&mc[X_SRC], a, na, 1) || put_str(&mc[X_DST], b, nb, 1) ||
                put_u16(&mc[X_SPORT], s->sport, 1) || put_u16(&mc[X_DPORT], s->dport, 1) ||
                put_str(&mc[X_TRANSPORT], tr, 3, 1) ||
                put_u32(&mc[X_STREAM], s->stream, is_tcp) || put_u16(&mc[X_ID], g->id, 1) ||
                put_u16(&mc[X_FLAGS], g->flags, 1) ||
                put_str(&mc[X_QNAME], s->names.data + g->name_off, g->name_len, g->has_q) ||
                put_fixed(&mc[X_QTYPE], &(int64_t){g->qtype}, 8, g->has_q) ||
                put_u32(&mc[X_RETX], 0, 1) || put_fixed(&mc[X_R_TS], &(int64_t){0}, 8, 0) ||
                put_u32(&mc[X_R_FRAME], 0, 0) || put_u16(&mc[X_R_FLAGS], 0, 0) ||
                put_u16(&mc[X_R_ANSWERS], 0, 0))
                return -1;
            s->mt.rows++;
        } else if (!st->used) {
            s->n_role[4]++; /* orphan */
        } else if (!st->answered) { /* the answer: fills its query's row */
            st->answered = 1;
            s->n_role[2]++;
            set_fixed(&mc[X_R_TS], st->txn, &s->ts, 8);
            set_fixed(&mc[X_R_FRAME], st->txn, &s->frame, 4);
            set_fixed(&mc[X_R_FLAGS], st->txn, &g->flags, 2);
            set_fixed(&mc[X_R_ANSWERS], st->txn, &g->answers, 2);
        } else {
            s->n_role[3]++; /* duplicate response */
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * file formats
 * ------------------------------------------------------------------------------------------- */

/* the current packet became a row: a DNS-related packet cut by the snap length is refused */
static int last_row_is(const State *s) {
    uint32_t last;
    if (!s->t.rows) return 0;
    memcpy(&last, s->t.cols[C_FRAME].values.data + (size_t)(s->t.rows - 1) * 4, 4);
    return last == s->frame;
}

typedef struct {
    const char *file_format;
    const char *link_type;
    uint64_t packets;
    int truncated;
} Info;

/* Memory of a memory-mapped file (parse(..., release=N), one pass): the pages the parser has
 * passed (everything before the record at `off`) are given back to the kernel every N bytes, so the file's pages do not all count in the process's resident size by
 * the end of the pass (1.44 GB for a 10 M-packet capture). Safe because nothing kept after a
 * record is a pointer into the file: names, flags and DNS-over-TCP bytes awaiting the rest of
 * their message are copied (State.names, flags_txt, Dir.pending). MADV_DONTNEED on a shared
 * file mapping only drops this process's page-table entries; the bytes stay in the page cache
 * and would be read again if touched (they are not). */
static void release_behind(State *s, size_t off) {
    if (!s->map || off < s->released + s->window) return;
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = ((uintptr_t)(s->map + s->released) + pg - 1) & ~(pg - 1);
    uintptr_t to = (uintptr_t)(s->map + off) & ~(pg - 1);
    if (to <= from) return;
    madvise((void *)from, (size_t)(to - from), MADV_DONTNEED); /* a failure only costs memory */
    s->released = (size_t)(to - (uintptr_t)s->map);
}

static int run_pcap(State *s, const uint8_t *buf, size_t n, Info *info) {
    uint32_t magic = le32(buf);
    int swap, nsec;
    if (magic == 0xA1B2C3D4) swap = 0, nsec = 0;
    else if (magic == 0xD4C3B2A1) swap = 1, nsec = 0;
    else if (magic == 0xA1B23C4D) swap = 0, nsec = 1;
    else if (magic == 0x4D3CB2A1) swap = 1, nsec = 1;
    else return refuse(s, "not a pcap file");
    if (n < 24) return refuse(s, "pcap file header cut short");
    uint16_t major = rd16(buf + 4, swap);
    uint32_t dlt = rd32(buf + 20, swap) & 0x0FFFFFFF;
    if (major != 2) return refuse(s, "pcap version other than 2");
    info->file_format = nsec ? "nsecpcap" : "pcap";
    info->link_type = link_name(dlt);
    if (!info->link_type) return refuse(s, "link type not supported natively");
    size_t off = 24;
    while (off < n) {
        s->pos = off;
        if (n - off < 16) {
            info->truncated = 1;
            break;
        }
        const uint8_t *h = buf + off;
        uint32_t sec = rd32(h, swap), frac = rd32(h + 4, swap);
        uint32_t caplen = rd32(h + 8, swap), wirelen = rd32(h + 12, swap);
        if (caplen > 262144 || (nsec ? frac >= 1000000000u : frac >= 1000000u))
            return refuse(s, "pcap record header out of range (damaged file?)");
        if (n - off - 16 < caplen) {
            info->truncated = 1;
            break;
        }
        if (caplen > wirelen) return refuse(s, "pcap record longer than its packet");
        s->frame++;
        s->ts = (int64_t)sec * 1000000000 + (int64_t)frac * (nsec ? 1 : 1000);
        s->wirelen = wirelen;
        if (packet(s, dlt, h + 16, caplen)) return -1;
        if (caplen < wirelen && last_row_is(s))
            return refuse(s, "a DNS-related packet cut short by the snap length");
        info->packets++;
        off += 16 + (size_t)caplen;
        release_behind(s, off);
    }
    return 0;
}

typedef struct {
    uint32_t dlt;
    int64_t mult; /* ns per unit */
} Iface;

static int run_pcapng(State *s, const uint8_t *buf, size_t n, Info *info) {
    Iface ifs[64];
    int n_if = 0;
    int swap = 0;
    int have_shb = 0;
    uint32_t dlt0 = 0xFFFFFFFF;
    size_t off = 0;
    info->file_format = "pcapng";
    while (off < n) {
        s->pos = off;
        if (n - off < 12) {
            info->truncated = 1;
            break;
        }
        const uint8_t *b = buf + off;
        uint32_t type = le32(b);
        if (type == 0x0A0D0D0A) {
            if (n - off < 28) {
                info->truncated = 1;
                break;
            }
            uint32_t bom = le32(b + 8);
            if (bom == 0x1A2B3C4D) swap = 0;
            else if (bom == 0x4D3C2B1A) swap = 1;
            else return refuse(s, "pcapng section header with an unknown byte order");
            have_shb = 1;
            n_if = 0;
        } else if (!have_shb) {
            return refuse(s, "not a pcapng file");
        } else {
            type = rd32(b, swap);
        }
        uint32_t blen = rd32(b + 4, swap);
        if (blen < 12 || (blen & 3)) return refuse(s, "pcapng block length out of range");
        if (blen > n - off) {
            info->truncated = 1;
            break;
        }
        if (rd32(b + blen - 4, swap) != blen) return refuse(s, "pcapng block lengths differ");
        const uint8_t *body = b + 8;
        size_t bn = blen - 12;
        if (type == 1) { /* interface description */
            if (bn < 8) return refuse(s, "pcapng interface block cut short");
            if (n_if >= 64) return refuse(s, "more than 64 pcapng interfaces");
            Iface *f = &ifs[n_if++];
            f->dlt = rd16(body, swap);
            f->mult = 1000; /* µs */
            size_t o = 8;
            while (o + 4 <= bn) {
                uint16_t code = rd16(body + o, swap), olen = rd16(body + o + 2, swap);
                if (code == 0) break;
                if (o + 4 + olen > bn) return refuse(s, "pcapng option cut short");
                if (code == 9 && olen >= 1) {
                    uint8_t r = body[o + 4];
                    if (r & 0x80 || r > 9) return refuse(s, "pcapng time resolution not 10^-0..9");
                    int64_t m = 1;
                    for (int i = 0; i < 9 - r; i++) m *= 10;
                    f->mult = m;
                }
                if (code == 14) return refuse(s, "pcapng interface time offset");
                o += 4 + (((size_t)olen + 3) & ~(size_t)3);
            }
            if (!link_name(f->dlt)) return refuse(s, "link type not supported natively");
            if (dlt0 == 0xFFFFFFFF) dlt0 = f->dlt;
            else if (dlt0 != f->dlt) return refuse(s, "pcapng interfaces of several link types");
        } else if (type == 6) { /* enhanced packet */
            if (bn < 20) return refuse(s, "pcapng packet block cut short");
            uint32_t ifid = rd32(body, swap);
            if (ifid >= (uint32_t)n_if) return refuse(s, "pcapng packet of an unknown interface");
            uint64_t units = ((uint64_t)rd32(body + 4, swap) << 32) | rd32(body + 8, swap);
            uint32_t caplen = rd32(body + 12, swap), wirelen = rd32(body + 16, swap);
            if (caplen > bn - 20) return refuse(s, "pcapng packet longer than its block");
            if (caplen > wirelen) return refuse(s, "pcapng record longer than its packet");
            Iface *f = &ifs[ifid];
            if (units > (uint64_t)INT64_MAX / (uint64_t)f->mult)
                return refuse(s, "pcapng time out of range");
            s->frame++;
            s->ts = (int64_t)units * f->mult;
            s->wirelen = wirelen;
            if (packet(s, f->dlt, body + 20, caplen)) return -1;
            if (caplen < wirelen && last_row_is(s))
                return refuse(s, "a DNS-related packet cut short by the snap length");
            info->packets++;
            release_behind(s, off + blen);
        } else if (type == 2 || type == 3) {
            return refuse(s, "pcapng simple or obsolete packet blocks");
        } else if (type == 10) {
            return refuse(s, "pcapng decryption secrets (tshark may decrypt DNS)");
        }
        off += blen;
    }
    info->link_type = dlt0 == 0xFFFFFFFF ? NULL : link_name(dlt0);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * parallel within one file
 *
 * Why conversations, not packet ranges: everything stateful here is per conversation (address
 * family and the unordered pair of endpoints): TCP stream identity, sequence analysis
 * (retransmissions), DNS-over-TCP reassembly, and the pairing of queries with responses (keyed by
 * the TCP stream, or the UDP endpoint pair, and the DNS ID). A range of packets would begin in the
 * middle of connections and transactions, and its state would have to be joined with the range
 * before it (a retransmitted SYN, a message split across the boundary, a response whose query is
 * in the previous range). Shared out by a hash of the conversation (not_mine), each of N workers
 * (threads, no GIL) walks every record and decodes link and IP headers, but does the rest only for
 * its conversations, which it sees whole and in order: so it computes for them exactly what one
 * pass computes, and no state crosses workers. ICMP errors quoting DNS (stateless) are shared out
 * by frame number. What is left is global order, merged here in one pass over the rows:
 *   - rows: each worker's are in frame order and a frame is one worker's: a k-way merge by frame
 *     (messages of a frame stay together, in order);
 *   - tcp.stream: one pass numbers conversations in the order they open; each worker numbers its
 *     own and keeps the frame that opened each (first_frames), so the global number is the rank
 *     of that frame among all workers' (a k-way merge of sorted lists);
 *   - a transaction's response fills its query's row in the worker that saw both (the same
 *     conversation), so the transactions merge like the packets; the counts by role add up;
 *   - a file one worker refuses goes to tshark: the refusal at the lowest file offset (of the
 *     record it refused, or whose header it refused) is the one a single pass gives (it stops at
 *     the first).
 * The cost of sharing out: every worker decodes every packet's headers (~15% more CPU in all on
 * the 2 M-packet node capture) and the merge copies the rows once.
 * ------------------------------------------------------------------------------------------- */

#include <pthread.h>

/* one state's pass over the file: 0, -1 refused (s->reason), -2 out of memory */
static int run_state(State *s, const uint8_t *buf, size_t n, Info *info, size_t share) {
    int rc;
    if (table_init(&s->t, SPECS, N_COLS, n / 128 / share + 64) ||
        table_init(&s->mt, XSPECS, N_XCOLS, n / 400 / share + 64))
        rc = -2;
    else if (n < 4) rc = refuse(s, "file shorter than a capture header");
    else {
        uint32_t m = le32(buf);
        if (m == 0x0A0D0D0A) rc = run_pcapng(s, buf, n, info);
        else rc = run_pcap(s, buf, n, info);
    }
    if (rc && !s->reason[0]) rc = -2; /* out of memory */
    return rc;
}

static void state_free(State *s) {
    table_free(&s->t);
    conns_free(&s->conns);
    free(s->flags_txt.data);
    free(s->msgs.data);
    free(s->names.data);
    table_free(&s->mt);
    free(s->pairs.slots);
    free(s->pairs.index);
    free(s);
}

typedef struct {
    State *s;
    const uint8_t *buf;
    size_t n, share;
    Info info;
    int rc;
} Job;

static void *job_run(void *arg) {
    Job *j = arg;
    j->rc = run_state(j->s, j->buf, j->n, &j->info, j->share);
    return NULL;
}

static size_t col_width(enum Kind k) {
    return k == K_U16 ? 2 : k == K_I64 ? 8 : (k == K_BOOL || k == K_I8) ? 1 : 4;
}

static inline uint32_t frame_at(const Table *t, int col, int64_t r) {
    uint32_t f;
    memcpy(&f, t->cols[col].values.data + (size_t)r * 4, 4);
    return f;
}

/* the merge order of the workers' tables (each sorted by frame in column fcol, a frame in one
 * table only): for output row i, the worker wk[i] and its row rk[i] there */
static int merge_order(Table **ts, int nw, int fcol, uint8_t **wk, int64_t **rk, int64_t *n) {
    int64_t total = 0, pos[256] = {0};
    for (int k = 0; k < nw; k++) total += ts[k]->rows;
    *n = total;
    *wk = malloc((size_t)total + 1);
    *rk = malloc((size_t)total * 8 + 8);
    if (!*wk || !*rk) return -1;
    for (int64_t i = 0; i < total; i++) {
        int best = -1;
        uint32_t bf = 0;
        for (int k = 0; k < nw; k++) {
            if (pos[k] >= ts[k]->rows) continue;
            uint32_t f = frame_at(ts[k], fcol, pos[k]);
            if (best < 0 || f < bf) best = k, bf = f;
        }
        (*wk)[i] = (uint8_t)best;
        (*rk)[i] = pos[best]++;
    }
    return 0;
}

/* column ci of the merged table, gathered from the workers' tables in the merge order */
static int gather_col(Col *d, Table **ts, int nw, int ci, enum Kind kind, const uint8_t *wk,
                      const int64_t *rk, int64_t n) {
    int64_t nulls = 0;
    for (int k = 0; k < nw; k++) nulls += ts[k]->cols[ci].nulls;
    d->n = n;
    if (nulls) { /* else no validity bytes: every row valid */
        if (buf_reserve(&d->valid, (size_t)n)) return -1;
        d->has_valid = 1;
        for (int64_t i = 0; i < n; i++) {
            const Col *c = &ts[wk[i]]->cols[ci];
            uint8_t ok = c->has_valid ? c->valid.data[rk[i]] : 1;
            d->valid.data[d->valid.len++] = ok;
            d->nulls += !ok;
        }
    }
    if (kind == K_STR) {
        size_t bytes = 0;
        for (int64_t i = 0; i < n; i++) {
            const Col *c = &ts[wk[i]]->cols[ci];
            int32_t a, b;
            memcpy(&a, c->values.data + (size_t)rk[i] * 4, 4);
            memcpy(&b, c->values.data + (size_t)rk[i] * 4 + 4, 4);
            bytes += (size_t)(b - a);
        }
        if (bytes > INT32_MAX || buf_reserve(&d->data, bytes) ||
            buf_reserve(&d->values, (size_t)n * 4))
            return -1;
        int32_t end = 0;
        for (int64_t i = 0; i < n; i++) {
            const Col *c = &ts[wk[i]]->cols[ci];
            int32_t a, b;
            memcpy(&a, c->values.data + (size_t)rk[i] * 4, 4);
            memcpy(&b, c->values.data + (size_t)rk[i] * 4 + 4, 4);
            if (b > a) memcpy(d->data.data + end, c->data.data + a, (size_t)(b - a));
            end += b - a;
            memcpy(d->values.data + d->values.len, &end, 4);
            d->values.len += 4;
        }
        d->data.len = (size_t)end;
        return 0;
    }
    size_t w = col_width(kind);
    if (buf_reserve(&d->values, (size_t)n * w)) return -1;
    uint8_t *out = d->values.data + d->values.len;
    switch (w) {
    case 1:
        for (int64_t i = 0; i < n; i++) out[i] = ts[wk[i]]->cols[ci].values.data[rk[i]];
        break;
    case 2:
        for (int64_t i = 0; i < n; i++)
            memcpy(out + i * 2, ts[wk[i]]->cols[ci].values.data + rk[i] * 2, 2);
        break;
    case 4:
        for (int64_t i = 0; i < n; i++)
            memcpy(out + i * 4, ts[wk[i]]->cols[ci].values.data + rk[i] * 4, 4);
        break;
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy(out + i * 8, ts[wk[i]]->cols[ci].values.data + rk[i] * 8, 8);
    }
    d->values.len += (size_t)n * w;
    return 0;
}

/* one table merged from the workers' (fcol: frame column); the stream column (scol, uint32)
 * through smap; the txn column (tcol, int64, -1: none) through the rows the merge gives */
static int merge_table(Table *out, Table **ts, int nw, const ColSpec *specs, int ncols, int fcol,
                       int scol, uint32_t **smap, const size_t *nsm, int tcol) {
    uint8_t *wk = NULL;
    int64_t *rk = NULL, n = 0, *gidx[256] = {0};
    int rc = -1;
    if (merge_order(ts, nw, fcol, &wk, &rk, &n) || table_init(out, specs, ncols, 0)) goto out;
    for (int ci = 0; ci < ncols; ci++)
        if (gather_col(&out->cols[ci], ts, nw, ci, specs[ci].kind, wk, rk, n)) goto out;
    out->rows = n;
    const uint8_t *valid = out->cols[scol].has_valid ? out->cols[scol].valid.data : NULL;
    uint32_t *sv = (uint32_t *)(void *)out->cols[scol].values.data;
    for (int64_t i = 0; i < n; i++) {
        if (valid && !valid[i]) continue;
        uint32_t x;
        memcpy(&x, &sv[i], 4);
        if (x >= nsm[wk[i]]) goto out;
        memcpy(&sv[i], &smap[wk[i]][x], 4);
    }
    if (tcol >= 0) {
        for (int k = 0; k < nw; k++)
            if (!(gidx[k] = malloc((size_t)ts[k]->rows * 8 + 8))) goto out;
        for (int64_t i = 0; i < n; i++) gidx[wk[i]][rk[i]] = i;
        const uint8_t *tv = out->cols[tcol].has_valid ? out->cols[tcol].valid.data : NULL;
        uint8_t *tx = out->cols[tcol].values.data;
        for (int64_t i = 0; i < n; i++) {
            if (tv && !tv[i]) continue;
            int64_t x;
            memcpy(&x, tx + i * 8, 8);
            if (x < 0 || x >= ts[wk[i]]->rows) goto out;
            memcpy(tx + i * 8, &gidx[wk[i]][x], 8);
        }
    }
    rc = 0;
out:
    for (int k = 0; k < nw; k++) free(gidx[k]);
    free(wk);
    free(rk);
    return rc;
}

typedef struct {
    Table *out, **ts;
    int nw;
    const ColSpec *specs;
    int ncols, fcol, scol, tcol;
    uint32_t **smap;
    const size_t *nsm;
    int rc;
} MergeJob;

static void *merge_job(void *arg) {
    MergeJob *j = arg;
    j->rc = merge_table(j->out, j->ts, j->nw, j->specs, j->ncols, j->fcol, j->scol, j->smap,
                        j->nsm, j->tcol);
    for (int k = 0; k < j->nw; k++) table_free(j->ts[k]); /* the workers' copy is done with */
    return NULL;
}

/* the workers' tables merged into out's (see above), the packets and the transactions in two
 * threads (they are independent); 0 or -2 */
static int merge(State *out, State **ws, int nw) {
    int rc = -2;
    uint32_t *smap[256] = {0};
    size_t nsm[256] = {0}, pos[256] = {0};
    Table *ts[256], *ms[256];
    for (int k = 0; k < nw; k++) {
        ts[k] = &ws[k]->t;
        ms[k] = &ws[k]->mt;
        nsm[k] = ws[k]->conns.first_frames.len / 4;
        if (!(smap[k] = malloc(nsm[k] * 4 + 4))) goto out;
    }
    /* stream numbers: rank of the opening frame */
    for (uint32_t g = 0;; g++) {
        int best = -1;
        uint32_t bf = 0;
        for (int k = 0; k < nw; k++) {
            if (pos[k] >= nsm[k]) continue;
            uint32_t f;
            memcpy(&f, ws[k]->conns.first_frames.data + pos[k] * 4, 4);
            if (best < 0 || f < bf) best = k, bf = f;
        }
        if (best < 0) break;
        smap[best][pos[best]++] = g;
    }
    MergeJob rows = {&out->t, ts, nw, SPECS, N_COLS, C_FRAME, C_STREAM, -1, smap, nsm, 0};
    MergeJob msgs = {&out->mt, ms, nw, XSPECS, N_XCOLS, X_FRAME, X_STREAM, -1, smap, nsm, 0};
    pthread_t th;
    int started = pthread_create(&th, NULL, merge_job, &msgs) == 0;
    merge_job(&rows);
    if (started) pthread_join(th, NULL);
    else merge_job(&msgs);
    rc = rows.rc || msgs.rc ? -2 : 0;
out:
    for (int k = 0; k < nw; k++) free(smap[k]);
    return rc;
}

/* the whole file with nw workers (1: one pass) into s (its tables, reason); returns as run_state */
static int run_file(State *s, const uint8_t *buf, size_t n, Info *info, int nw) {
    if (nw <= 1) return run_state(s, buf, n, info, 1);
    State *ws[256] = {0};
    Job jobs[256];
    pthread_t th[256];
    int started[256] = {0};
    int rc = 0;
    for (int k = 0; k < nw; k++) {
        ws[k] = calloc(1, sizeof(State));
        if (!ws[k]) {
            rc = -2;
            goto out;
        }
        memcpy(ws[k]->ports, s->ports, sizeof(s->ports));
        ws[k]->n_ports = s->n_ports;
        ws[k]->worker = k;
        ws[k]->nworkers = nw;
        jobs[k] = (Job){ws[k], buf, n, (size_t)nw, {0}, 0};
    }
    for (int k = 1; k < nw; k++)
        started[k] = pthread_create(&th[k], NULL, job_run, &jobs[k]) == 0;
    for (int k = 1; k < nw; k++)
        if (!started[k]) job_run(&jobs[k]); /* no thread: run it here */
    job_run(&jobs[0]);
    for (int k = 1; k < nw; k++)
        if (started[k]) pthread_join(th[k], NULL);
    int refused = -1;
    for (int k = 0; k < nw; k++) {
        if (jobs[k].rc == -2) rc = -2;
        else if (jobs[k].rc == -1 &&
                 (refused < 0 || ws[k]->refuse_pos < ws[refused]->refuse_pos))
            refused = k;
    }
    if (rc == 0 && refused >= 0) {
        memcpy(s->reason, ws[refused]->reason, REASON_MAX);
        s->refuse_pos = ws[refused]->refuse_pos;
        rc = -1;
    }
    if (rc == 0) {
        *info = jobs[0].info;
        for (int k = 0; k < nw; k++)
            for (int r = 0; r < 5; r++) s->n_role[r] += ws[k]->n_role[r];
        rc = merge(s, ws, nw);
    }
out:
    for (int k = 0; k < nw; k++)
        if (ws[k]) state_free(ws[k]);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * parse(data, ports, workers=1, release=0) -> (reason | None, info, packets, transactions), the
 * tables as lists of one (schema, array) capsule pair per column
 * ------------------------------------------------------------------------------------------- */

static PyObject *parse(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *ports_obj;
    int nworkers = 1;
    Py_ssize_t release = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*O|in", &view, &ports_obj, &nworkers, &release)) return NULL;
    if (nworkers < 1 || nworkers > 256) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "parse: 1 to 256 workers");
        return NULL;
    }
    State *s = calloc(1, sizeof(State));
    if (!s) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }

    PyObject *seq = PySequence_Fast(ports_obj, "ports must be a sequence");
    if (!seq) goto error;
    Py_ssize_t np = PySequence_Fast_GET_SIZE(seq);
    if (np < 1 || np > 64) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "parse: 1 to 64 ports");
        goto error;
    }
    for (Py_ssize_t i = 0; i < np; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v < 1 || v > 65535) {
            Py_DECREF(seq);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "parse: port out of range");
            goto error;
        }
        s->ports[s->n_ports++] = (uint16_t)v;
    }
    Py_DECREF(seq);
    /* threads each walk the whole file: only one pass gives pages back behind it */
    if (release > 0 && nworkers == 1) {
        s->map = view.buf;
        s->window = (size_t)release;
    }
    Info info = {0};
    int rc = 0;
    /* one export per column (export_col): [k][i], k 0 the packets, 1 the transactions */
    struct ArrowSchema *schema[2][MAX_COLS] = {{NULL}};
    struct ArrowArray *array[2][MAX_COLS] = {{NULL}};
    Table *tabs[2] = {&s->t, &s->mt};
    Py_BEGIN_ALLOW_THREADS;
    rc = run_file(s, view.buf, (size_t)view.len, &info, nworkers);
    for (int k = 0; k < 2 && rc == 0; k++)
        for (int i = 0; i < tabs[k]->ncols && rc == 0; i++) {
            schema[k][i] = malloc(sizeof(struct ArrowSchema));
            array[k][i] = malloc(sizeof(struct ArrowArray));
            if (!schema[k][i] || !array[k][i] ||
                export_col(tabs[k], i, schema[k][i], array[k][i])) {
                free(schema[k][i]);
                free(array[k][i]);
                schema[k][i] = NULL;
                array[k][i] = NULL;
                rc = -2;
            }
        }
    Py_END_ALLOW_THREADS;
    PyObject *result = NULL;
    if (rc == -2) {
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < MAX_COLS; i++) {
                if (schema[k][i]) {
                    schema[k][i]->release(schema[k][i]);
                    free(schema[k][i]);
                }
                if (array[k][i]) {
                    array[k][i]->release(array[k][i]);
                    free(array[k][i]);
                }
            }
        PyErr_NoMemory();
        goto error;
    }
    if (rc) {
        result = Py_BuildValue("(sOOO)", s->reason, Py_None, Py_None, Py_None);
        goto done;
    }
    /* every export goes into a capsule pair (whose destructors release it) before anything can
     * fail, so nothing leaks on the way out */
    PyObject *lists[2] = {PyList_New(tabs[0]->ncols), PyList_New(tabs[1]->ncols)};
    int ok = lists[0] && lists[1];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < tabs[k]->ncols; i++) {
            PyObject *cs = PyCapsule_New(schema[k][i], "arrow_schema", capsule_schema_free);
            if (!cs) {
                schema[k][i]->release(schema[k][i]);
                free(schema[k][i]);
            }
            PyObject *ca = PyCapsule_New(array[k][i], "arrow_array", capsule_array_free);
            if (!ca) {
                array[k][i]->release(array[k][i]);
                free(array[k][i]);
            }
            PyObject *pair = cs && ca ? PyTuple_Pack(2, cs, ca) : NULL;
            Py_XDECREF(cs);
            Py_XDECREF(ca);
            if (pair && lists[k]) PyList_SET_ITEM(lists[k], i, pair);
            else {
                Py_XDECREF(pair);
                ok = 0;
            }
        }
    /* the messages by role, as kit.sources.capture._frames._transactions counts them */
    PyObject *d = Py_BuildValue(
        "{s:s,s:z,s:K,s:O,s:{s:K,s:K,s:K,s:K,s:K}}", "file_format",
        info.file_format ? info.file_format : "pcap", "link_type", info.link_type, "packets",
        (unsigned long long)info.packets, "truncated", info.truncated ? Py_True : Py_False,
        "pairing", "queries", (unsigned long long)s->n_role[0], "retx",
        (unsigned long long)s->n_role[1], "answers", (unsigned long long)s->n_role[2], "dup",
        (unsigned long long)s->n_role[3], "orphan", (unsigned long long)s->n_role[4]);
    if (ok && d) result = Py_BuildValue("(OOOO)", Py_None, d, lists[0], lists[1]);
    Py_XDECREF(lists[0]);
    Py_XDECREF(lists[1]);
    Py_XDECREF(d);
done:
    state_free(s);
    PyBuffer_Release(&view);
    return result;
error:
    state_free(s);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef METHODS[] = {
    {"parse", parse, METH_VARARGS,
     "parse(data, ports, workers=1, release=0) -> (reason, info, packets, transactions)\n\n"
     "The DNS-related packets of a pcap/pcapng file (bytes-like) and the DNS transactions over\n"
     "UDP/TCP (queries paired with their responses), each a list with one Arrow struct array\n"
     "per column (a one-column table) as a (schema, array) PyCapsule pair, and a dict of file\n"
     "facts (with the messages counted by role under 'pairing'); or, when the file needs\n"
     "tshark, the reason and three Nones.\n"
     "ports: the DNS ports whose packets are kept even without DNS.\n"
     "workers: threads sharing the file out by conversation (1: one pass); same result.\n"
     "release: N > 0: data is a read-only memory-mapped file whose pages are given back to\n"
     "the kernel (madvise MADV_DONTNEED) every N bytes once parsed (one pass only); never for\n"
     "bytes, whose pages it would zero."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_fastcap", "Native capture engine (pcap/pcapng to DNS packet rows).",
    -1, METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastcap(void) { return PyModule_Create(&MODULE); }
