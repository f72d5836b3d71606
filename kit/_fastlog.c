/*
 * kit._fastlog: a native tokenizer for default-format CoreDNS query-log lines.
 *
 * It does what kit.sources.coredns._fast_queries does with polars string kernels, line by line
 * in one
 * pass over a block of bytes, and hands the result to polars through the Arrow C data interface
 * (PyCapsule "arrow_schema" / "arrow_array"), so no Python object is made per line.
 *
 * A line is taken only when every check of _fast_queries holds and, where this file is
 * stricter, when it cannot be wrong: numbers are plain digit runs, durations have at most 15
 * significant digits (so mantissa / 10^k is one correctly rounded division, as Rust's parser
 * gives), stamps are Zulu RFC 3339 with valid fields, text is valid UTF-8. Every other line is
 * returned as is, for the general path, which stays the reference parser: this file never has
 * to guess.
 *
 * Input is hostile: every read is bounded by the line's end, tokens are (offset, length) pairs
 * into the caller's buffer, output buffers grow with checked sizes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
    if (extra > SIZE_MAX / 2 - b->len) return -1;
    size_t need = b->len + extra;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const void *src, size_t n) {
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * columns
 * ------------------------------------------------------------------------------------------- */

enum Kind { K_STR, K_U8, K_U16, K_U32, K_I64TS, K_F64, K_BOOL };

typedef struct {
    const char *name;
    const char *format;
    enum Kind kind;
    int nullable;
} ColSpec;

enum {
    C_LINE_NO,
    C_TS,
    C_CLIENT_IP,
    C_CLIENT_PORT,
    C_QUERY_ID,
    C_QTYPE,
    C_QCLASS,
    C_QNAME,
    C_PROTO,
    C_REQ_SIZE,
    C_DO_BIT,
    C_BUFSIZE,
    C_RCODE,
    C_RFLAGS,
    C_RESP_SIZE,
    C_DURATION,
    C_OPCODE,
    C_POD,
    C_CONTAINER,
    C_STREAM,
    N_COLS
};

static const ColSpec SPECS[N_COLS] = {
    {"line_no", "I", K_U32, 0},
    {"ts", "tsu:UTC", K_I64TS, 1},
    {"client_ip", "vu", K_STR, 0},
    {"client_port", "S", K_U16, 0},
    {"query_id", "S", K_U16, 0},
    {"qtype", "vu", K_STR, 0},
    {"qclass", "vu", K_STR, 0},
    {"qname", "vu", K_STR, 0},
    {"proto", "vu", K_STR, 0},
    {"req_size", "I", K_U32, 0},
    {"do_bit", "b", K_BOOL, 0},
    {"bufsize", "I", K_U32, 0},
    {"rcode", "vu", K_STR, 1},
    {"rflags", "vu", K_STR, 1},
    {"resp_size", "I", K_U32, 0},
    {"duration_s", "g", K_F64, 0},
    {"opcode", "C", K_U8, 1},
    {"pod", "vu", K_STR, 1},
    {"container", "vu", K_STR, 1},
    {"stream", "vu", K_STR, 1},
};

static size_t width(enum Kind k) {
    switch (k) {
    case K_STR: return 16; /* Arrow string views */
    case K_U8: return 1;
    case K_BOOL: return 1; /* one byte per row while parsing; packed to bits when exported */
    case K_U16: return 2;
    case K_U32: return 4;
    case K_I64TS: return 8;
    case K_F64: return 8;
    }
    return 8;
}

typedef struct {
    uint8_t *values; /* rows_cap (+1 for utf8 offsets) fixed-width values */
    uint8_t *valid;  /* one byte per row while parsing; packed to bits when exported */
    Buf data;        /* utf8 bytes */
    int64_t nulls;
} Col;

typedef struct {
    Col cols[N_COLS];
    int64_t rows;
    int64_t cap;
} Table;

static void table_free(Table *t) {
    for (int i = 0; i < N_COLS; i++) {
        free(t->cols[i].values);
        free(t->cols[i].valid);
        free(t->cols[i].data.data);
    }
    memset(t, 0, sizeof(*t));
}

/* room for `cap` rows: every line of the block could be a query */
static int table_init(Table *t, int64_t cap) {
    memset(t, 0, sizeof(*t));
    t->cap = cap;
    for (int i = 0; i < N_COLS; i++) {
        Col *c = &t->cols[i];
        /* zeroed: a null view is all zeros, and a column that stays null (no pod in the
         * layout...) never touches its pages */
        c->values = calloc((size_t)cap + 1, width(SPECS[i].kind));
        c->valid = malloc((size_t)cap + 1);
        if (!c->values || !c->valid) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * one parsed row (spans point into the line)
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n;
} Span;

typedef struct {
    int64_t ts_us;
    int has_ts;
    Span client_ip, qtype, qclass, qname, proto, rcode, rflags, pod, container, stream;
    int has_rcode, has_rflags, has_pod, has_stream;
    uint32_t port, qid, req_size, bufsize, resp_size, opcode;
    int has_opcode, do_bit;
    double duration;
} Row;

/* an Arrow string view: length, then the bytes inline (<= 12) or a 4-byte prefix, buffer 0 and
 * the offset of the bytes in it; the view was zeroed by calloc */
static inline int put_str(Col *c, int64_t row, Span s, int valid) {
    uint8_t *v = c->values + (size_t)row * 16;
    c->valid[row] = (uint8_t)(valid != 0);
    if (!valid) {
        c->nulls++;
        return 0;
    }
    int32_t len = (int32_t)s.n; /* a line is < 2 GiB: keep <= INT32_MAX */
    memcpy(v, &len, 4);
    if (s.n <= 12) {
        if (s.n) memcpy(v + 4, s.p, s.n);
        return 0;
    }
    Buf *d = &c->data;
    if (d->len + s.n > INT32_MAX) return -1;
    int32_t off = (int32_t)d->len;
    if (d->len + s.n > d->cap && buf_reserve(d, s.n)) return -1;
    memcpy(d->data + d->len, s.p, s.n);
    d->len += s.n;
    memcpy(v + 4, s.p, 4);
    memcpy(v + 12, &off, 4); /* bytes 8..11: buffer index 0 */
    return 0;
}

#define PUT(col, type, value, ok)                                                                \
    do {                                                                                         \
        Col *c_ = &t->cols[col];                                                                 \
        int ok_ = (ok);                                                                          \
        ((type *)c_->values)[row] = ok_ ? (type)(value) : (type)0;                               \
        c_->valid[row] = (uint8_t)(ok_ != 0);                                                    \
        c_->nulls += !ok_;                                                                       \
    } while (0)

static int table_add(Table *t, uint32_t line_no, const Row *r, int with_ts) {
    int64_t row = t->rows;
    Col *c = t->cols;
    if (row >= t->cap) return -1;
    PUT(C_LINE_NO, uint32_t, line_no, 1);
    PUT(C_TS, int64_t, r->ts_us, with_ts && r->has_ts);
    PUT(C_CLIENT_PORT, uint16_t, r->port, 1);
    PUT(C_QUERY_ID, uint16_t, r->qid, 1);
    PUT(C_REQ_SIZE, uint32_t, r->req_size, 1);
    PUT(C_DO_BIT, uint8_t, r->do_bit != 0, 1);
    PUT(C_BUFSIZE, uint32_t, r->bufsize, 1);
    PUT(C_RESP_SIZE, uint32_t, r->resp_size, 1);
    PUT(C_DURATION, double, r->duration, 1);
    PUT(C_OPCODE, uint8_t, r->opcode, r->has_opcode);
    if (put_str(&c[C_CLIENT_IP], row, r->client_ip, 1) || put_str(&c[C_QTYPE], row, r->qtype, 1) ||
        put_str(&c[C_QCLASS], row, r->qclass, 1) || put_str(&c[C_QNAME], row, r->qname, 1) ||
        put_str(&c[C_PROTO], row, r->proto, 1) ||
        put_str(&c[C_RCODE], row, r->rcode, r->has_rcode) ||
        put_str(&c[C_RFLAGS], row, r->rflags, r->has_rflags) ||
        put_str(&c[C_POD], row, r->pod, r->has_pod) ||
        put_str(&c[C_CONTAINER], row, r->container, r->has_pod) ||
        put_str(&c[C_STREAM], row, r->stream, r->has_stream))
        return -1;
    t->rows++;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * field parsers: each returns 1 when the token is exactly what it should be
 * ------------------------------------------------------------------------------------------- */

/* the token is the string literal `lit` */
#define eq(s, lit) ((s).n == sizeof(lit) - 1 && memcmp((s).p, (lit), sizeof(lit) - 1) == 0)

static int parse_uint(Span s, uint32_t max, uint32_t *out) {
    uint64_t v = 0;
    if (s.n == 0 || s.n > 10) return 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return 0;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    if (v > max) return 0;
    *out = (uint32_t)v;
    return 1;
}

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                  1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* "123", "0.000123", "5.", ".5": digits with one optional point. At most 15 significant digits
 * and 22 after the point, so that m / 10^k (both exact doubles) is the correctly rounded value. */
static int parse_seconds(Span s, double *out) {
    uint64_t m = 0;
    int digits = 0, sig = 0, frac = 0, point = 0;
    for (size_t i = 0; i < s.n; i++) {
        uint8_t ch = s.p[i];
        if (ch == '.') {
            if (point) return 0;
            point = 1;
            continue;
        }
        if (ch < '0' || ch > '9') return 0;
        digits++;
        if (point) frac++;
        if (m == 0 && ch == '0') continue; /* leading zeros are not significant */
        m = m * 10 + (uint64_t)(ch - '0');
        if (++sig > 15) return 0;
    }
    if (digits == 0 || frac > 22) return 0;
    *out = (double)m / POW10[frac];
    return 1;
}

static int digits_at(const uint8_t *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil) */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* YYYY-MM-DDTHH:MM:SS[.f{0,9}]Z (Go's RFC3339Nano in UTC), as kit.sources.coredns._rfc3339's cheap
 * path reads it: the first six fraction digits are microseconds. */
static int parse_zulu(Span s, int64_t *out) {
    const uint8_t *p = s.p;
    int y, mo, d, h, mi, se;
    if (s.n < 20 || s.n > 30 || s.n == 21 || p[s.n - 1] != 'Z') return 0;
    if (s.n > 20 && p[19] != '.') return 0;
    if (p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':') return 0;
    if (!digits_at(p, 4, &y) || !digits_at(p + 5, 2, &mo) || !digits_at(p + 8, 2, &d) ||
        !digits_at(p + 11, 2, &h) || !digits_at(p + 14, 2, &mi) || !digits_at(p + 17, 2, &se))
        return 0;
    static const int DIM[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > DIM[mo - 1] + (mo == 2 && leap)) return 0;
    if (h > 23 || mi > 59 || se > 59) return 0;
    int64_t us = 0;
    int nfrac = s.n > 20 ? (int)s.n - 21 : 0;
    for (int i = 0; i < nfrac; i++) {
        uint8_t ch = p[20 + i];
        if (ch < '0' || ch > '9') return 0;
        if (i < 6) us = us * 10 + (ch - '0');
    }
    for (int i = nfrac; i < 6; i++) us *= 10;
    int64_t days = days_from_civil(y, mo, d);
    *out = ((days * 86400 + h * 3600 + mi * 60 + se) * 1000000) + us;
    return 1;
}

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* the shape kit.sources.coredns._RFC3339 matches:
 * YYYY-MM-DDTHH:MM:SS[(.|,)f{1,9}](Z|(+|-)HH[:]MM) */
static int rfc3339_shape(Span s) {
    static const char PAT[] = "dddd-dd-ddTdd:dd:dd";
    const uint8_t *p = s.p;
    size_t n = s.n, i;
    if (n < 20) return 0;
    for (i = 0; i < 19; i++) {
        if (PAT[i] == 'd' ? !is_digit(p[i]) : p[i] != (uint8_t)PAT[i]) return 0;
    }
    if (p[i] == '.' || p[i] == ',') {
        size_t k = 0;
        for (i++; i < n && is_digit(p[i]); i++) k++;
        if (k < 1 || k > 9) return 0;
    }
    if (i < n && p[i] == 'Z') return i + 1 == n;
    if (i >= n || (p[i] != '+' && p[i] != '-')) return 0;
    i++;
    if (n - i == 4) return is_digit(p[i]) && is_digit(p[i + 1]) && is_digit(p[i + 2]) && is_digit(p[i + 3]);
    if (n - i == 5)
        return is_digit(p[i]) && is_digit(p[i + 1]) && p[i + 2] == ':' && is_digit(p[i + 3]) &&
               is_digit(p[i + 4]);
    return 0;
}

/* RFC 3629 UTF-8, no overlongs, no surrogates */
static int valid_utf8(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * one line
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    int tokens; /* wrapper tokens before [INFO] */
    int ts;     /* token index of the stamp, or -1 */
    int stream; /* token index of stdout/stderr (CRI), or -1 */
    int pod;    /* token index of [pod/<pod>/<container>], or -1 */
} Layout;

#define MAX_TOK 24

/* split on single spaces like polars' split_exact: returns the number of tokens (capped at
 * max + 1, which means "too many") */
static int split(const uint8_t *p, size_t n, Span *tok, int max) {
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == ' ') {
            if (k == max) return max + 1;
            tok[k].p = p + start;
            tok[k].n = i - start;
            k++;
            start = i + 1;
        }
    }
    return k;
}

/* split() for parse_line, in the same pass: -1 when the line holds a backslash (an escaped
 * name: the general path's job); *high is set when it holds a byte >= 0x80 */
static int scan(const uint8_t *p, size_t n, Span *tok, int max, int *high) {
    int k = 0;
    size_t start = 0, i = 0;
    unsigned hi = 0;
#ifdef __SSE2__
    const __m128i sp = _mm_set1_epi8(' '), bs = _mm_set1_epi8('\\');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(v, bs))) return -1;
        hi |= (unsigned)_mm_movemask_epi8(v);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, sp));
        while (m) {
            size_t pos = i + (size_t)__builtin_ctz(m);
            m &= m - 1;
            if (k == max) return max + 1;
            tok[k].p = p + start;
            tok[k].n = pos - start;
            k++;
            start = pos + 1;
        }
    }
#endif
    for (; i < n; i++) {
        uint8_t ch = p[i];
        if (ch == '\\') return -1;
        hi |= ch & 0x80;
        if (ch == ' ') {
            if (k == max) return max + 1;
            tok[k].p = p + start;
            tok[k].n = i - start;
            k++;
            start = i + 1;
        }
    }
    if (k == max) return max + 1;
    tok[k].p = p + start;
    tok[k].n = n - start;
    *high = hi != 0;
    return k + 1;
}

static int parse_line(const uint8_t *p, size_t n, const Layout *L, int prev_partial, Row *r) {
    Span tok[MAX_TOK];
    int skip = L->tokens + 1, high = 0;
    int nt = scan(p, n, tok, skip + 15, &high);
    if (nt != skip + 14 && nt != skip + 15) return 0;
    if (high && !valid_utf8(p, n)) return 0;
    if (!eq(tok[L->tokens], "[INFO]")) return 0;
    r->has_ts = r->has_pod = r->has_stream = r->has_opcode = r->do_bit = 0;
    r->ts_us = 0;
    r->opcode = 0;
    r->pod = r->container = r->stream = (Span){NULL, 0};
    if (L->ts >= 0) {
        if (!parse_zulu(tok[L->ts], &r->ts_us)) return 0;
        r->has_ts = 1;
    }
    for (int i = 0; i < L->tokens; i++) {
        /* the wrapper tokens not read below are stamps (the outer one of two) */
        int streamish = L->stream >= 0 && (i == L->stream || i == L->stream + 1);
        if (i != L->ts && i != L->pod && !streamish && !rfc3339_shape(tok[i]))
            return 0;
    }
    if (L->pod >= 0) {
        /* [pod/<pod>/<container>] as kit.sources.coredns._KPOD: both non-empty, no ']' inside */
        Span t = tok[L->pod];
        if (t.n < 6 || memcmp(t.p, "[pod/", 5) != 0 || t.p[t.n - 1] != ']') return 0;
        const uint8_t *in = t.p + 5;
        size_t inn = t.n - 6;
        if (memchr(in, ']', inn)) return 0;
        const uint8_t *slash = memchr(in, '/', inn);
        if (!slash || slash == in || slash == in + inn - 1) return 0;
        r->pod.p = in;
        r->pod.n = (size_t)(slash - in);
        r->container.p = slash + 1;
        r->container.n = inn - r->pod.n - 1;
        r->has_pod = 1;
    }
    if (L->stream >= 0) {
        Span s = tok[L->stream];
        if (!eq(s, "stdout") && !eq(s, "stderr")) return 0;
        if (!eq(tok[L->stream + 1], "F") || prev_partial) return 0;
        r->stream = s;
        r->has_stream = 1;
    }
    Span *f = tok + skip;
    /* address: "v4:port" or "[v6]:port", ASCII */
    Span a = f[0];
    size_t colon = a.n;
    for (size_t i = a.n; i > 0; i--) {
        if (a.p[i - 1] == ':') {
            colon = i - 1;
            break;
        }
        if (a.p[i - 1] >= 0x80) return 0;
    }
    if (colon == a.n) return 0;
    for (size_t i = 0; i < colon; i++)
        if (a.p[i] >= 0x80) return 0;
    if (!parse_uint((Span){a.p + colon + 1, a.n - colon - 1}, 65535, &r->port)) return 0;
    if (a.n && a.p[0] == '[') {
        if (colon < 2) return 0;
        r->client_ip = (Span){a.p + 1, colon - 2};
    } else {
        r->client_ip = (Span){a.p, colon};
    }
    if (!eq(f[1], "-")) return 0;
    if (!parse_uint(f[2], 65535, &r->qid)) return 0;
    if (f[3].n < 2 || f[3].p[0] != '"') return 0;
    r->qtype = (Span){f[3].p + 1, f[3].n - 1};
    r->qclass = f[4];
    r->qname = f[5];
    if (!(f[5].n == 1 && f[5].p[0] == '.') && f[5].n && f[5].p[f[5].n - 1] == '.') r->qname.n--;
    if (!eq(f[6], "udp") && !eq(f[6], "tcp")) return 0;
    r->proto = f[6];
    if (!parse_uint(f[7], UINT32_MAX, &r->req_size)) return 0;
    if (eq(f[8], "true"))
        r->do_bit = 1;
    else if (!eq(f[8], "false"))
        return 0;
    if (f[9].n < 1 || f[9].p[f[9].n - 1] != '"') return 0;
    if (!parse_uint((Span){f[9].p, f[9].n - 1}, UINT32_MAX, &r->bufsize)) return 0;
    r->rcode = f[10];
    r->has_rcode = !eq(f[10], "-");
    r->rflags = f[11];
    r->has_rflags = !eq(f[11], "-");
    if (!parse_uint(f[12], UINT32_MAX, &r->resp_size)) return 0;
    if (f[13].n < 2 || f[13].p[f[13].n - 1] != 's') return 0;
    if (!parse_seconds((Span){f[13].p, f[13].n - 1}, &r->duration)) return 0;
    if (nt == skip + 15) {
        Span o = f[14];
        if (o.n < 3 || o.p[0] != '"' || o.p[o.n - 1] != '"') return 0;
        if (!parse_uint((Span){o.p + 1, o.n - 2}, 255, &r->opcode)) return 0;
        r->has_opcode = 1;
    }
    return 1;
}

/* the CRI tag token (the one after the stream) of a line is "P": the next line's F record is
 * the tail of a longer line and must go to the general path, which joins them */
static int partial_tag(const uint8_t *p, size_t n, const Layout *L) {
    Span tok[MAX_TOK];
    if (L->stream < 0) return 0;
    int want = L->stream + 2;
    int nt = split(p, n, tok, want);
    if (nt < want) return 0;
    return eq(tok[L->stream + 1], "P");
}

/* ---------------------------------------------------------------------------------------------
 * export to Arrow
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    void *buffers[4];
    const void *ptrs[4];
    int64_t sizes[1]; /* variadic buffer sizes of a string-view column */
} ArrPriv;

static void release_child(struct ArrowArray *a) {
    if (!a->release) return;
    ArrPriv *pv = a->private_data;
    for (int i = 0; i < 4; i++) free(pv->buffers[i]);
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

/* moves the table's buffers into a struct array; frees what it took on failure */
static int export_table(Table *t, struct ArrowSchema *schema, struct ArrowArray *array) {
    int64_t n = t->rows;
    if (export_begin(schema, array, N_COLS, n, sizeof(ArrPriv), offsetof(ArrPriv, ptrs)))
        goto fail;
    for (int i = 0; i < N_COLS; i++) {
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
        cs->flags = SPECS[i].nullable ? ARROW_FLAG_NULLABLE : 0;
        cs->release = release_child_schema;
        schema->children[i] = cs;
        schema->n_children = i + 1;
        ca->length = n;
        ca->null_count = c->nulls;
        ca->private_data = pv;
        ca->release = release_child;
        ca->buffers = pv->ptrs;
        array->children[i] = ca;
        array->n_children = i + 1;
        if (c->nulls) {
            pv->buffers[0] = pack_bits(c->valid, n);
            if (!pv->buffers[0]) goto fail;
        }
        ca->n_buffers = 2;
        if (SPECS[i].kind == K_BOOL) {
            pv->buffers[1] = pack_bits(c->values, n);
            if (!pv->buffers[1]) goto fail;
        } else {
            /* give back the rows the block's other lines did not use */
            size_t used = (size_t)n * width(SPECS[i].kind);
            uint8_t *v = used ? realloc(c->values, used) : NULL;
            if (v) c->values = v;
            pv->buffers[1] = c->values;
            c->values = NULL;
            if (!pv->buffers[1]) pv->buffers[1] = malloc(16);
            if (!pv->buffers[1]) goto fail;
            if (SPECS[i].kind == K_STR) {
                Buf *d = &c->data;
                pv->sizes[0] = (int64_t)d->len;
                if (d->len && d->len < d->cap) {
                    uint8_t *q = realloc(d->data, d->len);
                    if (q) d->data = q;
                }
                pv->buffers[2] = take(d);
                if (!pv->buffers[2]) goto fail;
                ca->n_buffers = 4; /* validity, views, one data buffer, its size */
            }
        }
        for (int b = 0; b < 3; b++) pv->ptrs[b] = pv->buffers[b];
        pv->ptrs[3] = pv->sizes;
    }
    return 0;
fail:
    return export_fail(schema, array);
}

/* ---------------------------------------------------------------------------------------------
 * parse_block(block, keep, tokens, ts, stream, pod)
 *   -> (lines, schema_capsule, array_capsule, rest_text, rest_line_nos)
 * ------------------------------------------------------------------------------------------- */

static int run(const uint8_t *buf, size_t keep, const Layout *L, Table *t, Buf *rest,
               Buf *rest_no, uint32_t *lines_out) {
    uint32_t line_no = 0;
    size_t s = 0;
    int prev_partial = 0;
    while (s < keep) {
        const uint8_t *nl = memchr(buf + s, '\n', keep - s);
        size_t e = nl ? (size_t)(nl - buf) : keep;
        size_t n = e - s;
        const uint8_t *p = buf + s;
        size_t body = n;
        if (body && p[body - 1] == '\r') body--;
        if (line_no == UINT32_MAX) return -1;
        line_no++;
        Row r;
        int ok = parse_line(p, body, L, prev_partial, &r);
        if (ok) {
            if (table_add(t, line_no, &r, L->ts >= 0)) return -1;
        } else {
            if (buf_put(rest, p, n) || buf_put(rest, "\n", 1) ||
                buf_put(rest_no, &line_no, sizeof line_no))
                return -1;
        }
        prev_partial = partial_tag(p, body, L);
        s = e + 1;
    }
    *lines_out = line_no;
    return 0;
}

static PyObject *parse_block(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t keep;
    Layout L;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*niiii", &view, &keep, &L.tokens, &L.ts, &L.stream, &L.pod))
        return NULL;
    PyObject *result = NULL;
    Table t;
    Buf rest = {0}, rest_no = {0};
    struct ArrowSchema *schema = NULL;
    struct ArrowArray *array = NULL;
    uint32_t lines = 0;
    if (keep < 0 || keep > view.len || keep > INT32_MAX || L.tokens < 0 || L.tokens > 5 ||
        L.ts < -1 || L.ts >= L.tokens || L.stream < -1 || L.stream + 1 >= L.tokens + (L.stream < 0) ||
        L.pod < -1 || L.pod >= L.tokens) {
        PyErr_SetString(PyExc_ValueError, "parse_block: bad keep or layout");
        PyBuffer_Release(&view);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS;
    int64_t nl = 0;
    for (const uint8_t *q = view.buf, *end = q + keep; q < end; nl++) {
        const uint8_t *x = memchr(q, '\n', (size_t)(end - q));
        q = x ? x + 1 : end;
    }
    rc = table_init(&t, nl);
    if (rc == 0) rc = run(view.buf, (size_t)keep, &L, &t, &rest, &rest_no, &lines);
    if (rc == 0) {
        schema = malloc(sizeof(*schema));
        array = malloc(sizeof(*array));
        if (!schema || !array || export_table(&t, schema, array)) {
            free(schema);
            free(array);
            schema = NULL;
            array = NULL;
            rc = -1;
        }
    }
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&view);
    table_free(&t);
    if (rc) {
        free(rest.data);
        free(rest_no.data);
        return PyErr_NoMemory();
    }
    PyObject *cs = PyCapsule_New(schema, "arrow_schema", capsule_schema_free);
    if (!cs) {
        schema->release(schema);
        free(schema);
    }
    PyObject *ca = PyCapsule_New(array, "arrow_array", capsule_array_free);
    if (!ca) {
        array->release(array);
        free(array);
    }
    PyObject *rt = PyBytes_FromStringAndSize((const char *)rest.data, (Py_ssize_t)rest.len);
    PyObject *rn = PyBytes_FromStringAndSize((const char *)rest_no.data, (Py_ssize_t)rest_no.len);
    free(rest.data);
    free(rest_no.data);
    if (cs && ca && rt && rn) result = Py_BuildValue("(kOOOO)", (unsigned long)lines, cs, ca, rt, rn);
    Py_XDECREF(cs);
    Py_XDECREF(ca);
    Py_XDECREF(rt);
    Py_XDECREF(rn);
    return result;
}

static PyMethodDef METHODS[] = {
    {"parse_block", parse_block, METH_VARARGS,
     "parse_block(block, keep, tokens, ts, stream, pod) -> (lines, schema, array, rest, rest_no)\n\n"
     "Default-format CoreDNS query lines of block[:keep] as an Arrow struct array (PyCapsules);\n"
     "the other lines, each followed by a newline, and their 1-based line numbers (uint32)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_fastlog", "Native tokenizer for CoreDNS query-log lines.", -1, METHODS,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastlog(void) { return PyModule_Create(&MODULE); }
