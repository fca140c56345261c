/* kafkagen: a raw Kafka-protocol load generator, one TCP connection, no dependencies.
 *
 *   cc -O2 [-msse4.2] -o kafkagen kafkagen.c
 *
 *   kafkagen produce BOOTSTRAP TOPIC N ACKS          (ACKS: 0, 1, all or -1)
 *   kafkagen consume BOOTSTRAP TOPIC N PARTITIONS    (PARTITIONS: comma list, e.g. 0,1,2)
 *
 * Why it exists: bench/loadgen.c (librdkafka) is "what a real client gets", but librdkafka's
 * per-message cost (queueing, partitioning, delivery reports) on the 2 shared cores of the
 * bench machine caps one producer near the broker's own rate (3.9M records/s against
 * bench/sink.py vs 3.5M against seriatim), so it measures librdkafka, not the broker. This
 * program does only what the wire needs: measured with 2M records, its own CPU is ~26 ns per
 * produced and ~15 ns per consumed record (mostly the kernel's socket copies), and it reaches
 * ~20M records/s produced and ~30M consumed against the sink, where one librdkafka client
 * gets ~3-5M; so the broker, not the generator, is the bottleneck.
 *
 * It speaks the protocol itself, as one client would, over ONE connection to BOOTSTRAP (a
 * single-node cluster: every partition must be led by that node):
 *   - Metadata v1 for TOPIC (its partition count), then prints "ready" and waits for a "go"
 *     line on stdin (the protocol of bench/loadgen.py and bench/loadgen.c);
 *   - produce: Produce v8 (the newest non-flexible version; served by seriatim and the sink)
 *     with one RecordBatch v2 per partition and about 1 MB of records per request (like
 *     librdkafka's batch.size=1 MB), up to 5 requests in flight (max.in.flight=5). Records
 *     are encoded for every request as a client does: 100-byte value whose first 8 bytes are
 *     a running counter, no key, no headers, zigzag varints, a CRC32C over attributes..end.
 *     Record i goes to partition i % partitions. Every response is parsed and every
 *     partition's error code checked. With acks=0 nothing is answered, so a final Metadata
 *     round trip (served in order on the connection) marks the end;
 *   - consume: Fetch v11 (newest non-flexible), sessionless, one request in flight like a
 *     client's fetcher, from offset 0 of each listed partition; every batch is walked (a
 *     trailing partial batch is skipped), magic 2 checked, every record's varints decoded
 *     (values are not copied) and records counted; each partition's next fetch offset is
 *     lastOffset + 1. Stops once N records were seen (n reports all records decoded, which
 *     may exceed N by the rest of the last response).
 * Then prints one JSON line {"n": records, "t0": .., "t1": ..} with CLOCK_MONOTONIC seconds
 * (the clock of Python's time.perf_counter()), plus "requests" and "cpu_s" (this process's
 * CPU seconds between t0 and t1). Errors go to stderr with a non-zero exit.
 *
 * CRC32C: the SSE4.2 instruction when the CPU has it (checked at run time, so -msse4.2 is
 * optional), else a portable slicing-by-8 table (forced with -DKAFKAGEN_PORTABLE_CRC). */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(KAFKAGEN_PORTABLE_CRC)
#include <nmmintrin.h>
#define HAVE_X86_CRC 1
#endif

#define CLIENT_ID "kafkagen"
#define PRODUCE_VERSION 8
#define FETCH_VERSION 11
#define METADATA_VERSION 1
#define REQUEST_BYTES 1000000 /* records per Produce request, all partitions together */
#define MAX_IN_FLIGHT 5
#define VALUE_SIZE 100
#define TIMEOUT_S 300.0
#define FETCH_MAX_BYTES 52428800           /* 50 MB, librdkafka's fetch.max.bytes */
#define FETCH_PARTITION_MAX_BYTES 10485760 /* 10 MB, as bench/loadgen.c sets */

static int sock = -1;
static int32_t next_cid = 1;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("kafkagen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This process's user + system CPU seconds: reported as "cpu_s" for the run, to show the
 * generator's own share of a measurement. */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

/* --- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) -------------------------------- */

static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc32c_sw(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n && ((uintptr_t)p & 7)) { c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff]; n--; }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        w ^= c;
        c = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
            crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
            crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
            crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return ~c;
}

#ifdef HAVE_X86_CRC
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(const uint8_t *p, size_t n) {
    uint64_t c = 0xFFFFFFFFu;
    while (n && ((uintptr_t)p & 7)) { c = _mm_crc32_u8((uint32_t)c, *p++); n--; }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    while (n--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#endif

static uint32_t (*crc32c)(const uint8_t *, size_t) = crc32c_sw;

static void crc_select(void) {
    crc_init();
    if (crc32c_sw((const uint8_t *)"123456789", 9) != 0xE3069283u) die("CRC32C self-test failed");
#ifdef HAVE_X86_CRC
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        if (crc32c_hw((const uint8_t *)"123456789", 9) != 0xE3069283u) die("CRC32C hw self-test");
        crc32c = crc32c_hw;
    }
#endif
}

/* --- socket I/O ---------------------------------------------------------------------------- */

static void connect_to(const char *bootstrap) {
    char host[256];
    const char *colon = strrchr(bootstrap, ':');
    const char *comma = strchr(bootstrap, ',');
    if (!colon || (comma && comma < colon)) die("BOOTSTRAP must be one HOST:PORT: %s", bootstrap);
    size_t hl = (size_t)(colon - bootstrap);
    if (hl >= sizeof host) die("host name too long");
    memcpy(host, bootstrap, hl);
    host[hl] = 0;
    struct addrinfo hints = {0}, *res;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc) die("resolve %s: %s", bootstrap, gai_strerror(rc));
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        sock = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (sock < 0) continue;
        if (connect(sock, a->ai_addr, a->ai_addrlen) == 0) break;
        close(sock);
        sock = -1;
    }
    freeaddrinfo(res);
    if (sock < 0) die("connect %s: %s", bootstrap, strerror(errno));
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void write_all(const uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = send(sock, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            die("send: %s", strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
}

static void read_all(uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = recv(sock, p, n, 0);
        if (k < 0) {
            if (errno == EINTR) continue;
            die("recv: %s", strerror(errno));
        }
        if (k == 0) die("connection closed by the broker");
        p += k;
        n -= (size_t)k;
    }
}

/* One response frame into *buf (grown as needed); returns its size (correlation id first). */
static uint8_t *rbuf;
static size_t rcap;

static size_t read_frame(int32_t want_cid) {
    uint8_t hdr[4];
    read_all(hdr, 4);
    size_t n = ((size_t)hdr[0] << 24) | ((size_t)hdr[1] << 16) | ((size_t)hdr[2] << 8) | hdr[3];
    if (n < 4 || n > (size_t)1 << 30) die("bad response size %zu", n);
    if (n > rcap) {
        free(rbuf);
        rcap = n + (n >> 2);
        rbuf = xmalloc(rcap);
    }
    read_all(rbuf, n);
    int32_t cid = (int32_t)(((uint32_t)rbuf[0] << 24) | ((uint32_t)rbuf[1] << 16) |
                            ((uint32_t)rbuf[2] << 8) | rbuf[3]);
    if (cid != want_cid) die("response correlation id %d, expected %d", cid, want_cid);
    return n;
}

/* --- encoding ------------------------------------------------------------------------------ */

typedef struct { uint8_t *p; } wr;

static inline void put8(wr *w, int v) { *w->p++ = (uint8_t)v; }
static inline void put16(wr *w, int v) {
    w->p[0] = (uint8_t)(v >> 8); w->p[1] = (uint8_t)v; w->p += 2;
}
static inline void put32(wr *w, int64_t v) {
    uint32_t u = (uint32_t)v;
    w->p[0] = (uint8_t)(u >> 24); w->p[1] = (uint8_t)(u >> 16);
    w->p[2] = (uint8_t)(u >> 8); w->p[3] = (uint8_t)u; w->p += 4;
}
static inline void put64(wr *w, int64_t v) { put32(w, (int64_t)((uint64_t)v >> 32)); put32(w, v); }
static inline void put_str(wr *w, const char *s) {
    size_t n = strlen(s);
    put16(w, (int)n); memcpy(w->p, s, n); w->p += n;
}
static inline void patch32(uint8_t *at, int64_t v) { wr w = {at}; put32(&w, v); }

static inline uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int uvarint_len(uint64_t u) { int n = 1; while (u >= 0x80) { u >>= 7; n++; } return n; }
static inline void put_uvarint(wr *w, uint64_t u) {
    while (u >= 0x80) { *w->p++ = (uint8_t)(u | 0x80); u >>= 7; }
    *w->p++ = (uint8_t)u;
}
static inline void put_varint(wr *w, int64_t v) { put_uvarint(w, zigzag(v)); }

/* Frame start: size placeholder + request header v1; returns where the frame begins. */
static uint8_t *begin_request(wr *w, int api_key, int version, int32_t cid) {
    uint8_t *start = w->p;
    put32(w, 0);
    put16(w, api_key);
    put16(w, version);
    put32(w, cid);
    put_str(w, CLIENT_ID);
    return start;
}
static void end_request(wr *w, uint8_t *start) { patch32(start, (int64_t)(w->p - start - 4)); }

/* --- decoding (bounds-checked) ------------------------------------------------------------- */

typedef struct { const uint8_t *p, *end; } rd;

static inline void need(rd *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) die("truncated response");
}
static inline int get8(rd *r) { need(r, 1); return (int8_t)*r->p++; }
static inline int get16(rd *r) {
    need(r, 2); int v = (int16_t)(((unsigned)r->p[0] << 8) | r->p[1]); r->p += 2; return v;
}
static inline int32_t get32(rd *r) {
    need(r, 4);
    uint32_t u = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) |
                 ((uint32_t)r->p[2] << 8) | r->p[3];
    r->p += 4;
    return (int32_t)u;
}
static inline int64_t get64(rd *r) {
    uint64_t hi = (uint32_t)get32(r);
    uint64_t lo = (uint32_t)get32(r);
    return (int64_t)((hi << 32) | lo);
}
static inline void skip(rd *r, int64_t n) {
    if (n < 0) return; /* null string / bytes */
    need(r, (size_t)n);
    r->p += n;
}
/* A string into out (truncated to cap), or "" for null; returns its length or -1. */
static int get_str(rd *r, char *out, size_t cap) {
    int n = get16(r);
    if (out && cap) out[0] = 0;
    if (n < 0) return -1;
    need(r, (size_t)n);
    if (out && cap) {
        size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
        memcpy(out, r->p, k);
        out[k] = 0;
    }
    r->p += n;
    return n;
}
/* Zigzag varint, at most 10 bytes. The one-byte case first: record attributes, offset deltas
 * below 64, null keys and header counts all fit in one byte. */
static inline int64_t get_varint(rd *r) {
    if (r->p < r->end && *r->p < 0x80) {
        uint64_t u = *r->p++;
        return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    }
    uint64_t u = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        need(r, 1);
        uint8_t b = *r->p++;
        u |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    }
    die("varint too long");
    return 0;
}

/* --- Metadata ------------------------------------------------------------------------------ */

typedef struct {
    int count;      /* partitions of the topic */
    int32_t leader; /* every partition's leader (one node) */
} topic_meta;

static void send_metadata(const char *topic, int32_t cid) {
    uint8_t buf[512];
    wr w = {buf};
    if (strlen(topic) > 249) die("topic name too long");
    uint8_t *start = begin_request(&w, 3, METADATA_VERSION, cid);
    put32(&w, 1);
    put_str(&w, topic);
    end_request(&w, start);
    write_all(buf, (size_t)(w.p - buf));
}

static topic_meta metadata(const char *topic) {
    int32_t cid = next_cid++;
    send_metadata(topic, cid);
    size_t n = read_frame(cid);
    rd r = {rbuf + 4, rbuf + n};
    int32_t brokers = get32(&r);
    for (int32_t i = 0; i < brokers; i++) {
        get32(&r);           /* node_id */
        get_str(&r, NULL, 0); /* host */
        get32(&r);           /* port */
        get_str(&r, NULL, 0); /* rack */
    }
    get32(&r); /* controller_id */
    topic_meta m = {0, -1};
    int32_t topics = get32(&r);
    for (int32_t t = 0; t < topics; t++) {
        char name[256];
        int err = get16(&r);
        get_str(&r, name, sizeof name);
        get8(&r); /* is_internal */
        if (strcmp(name, topic) != 0) die("metadata answered for topic %s", name);
        if (err) die("metadata for %s: error code %d", topic, err);
        int32_t parts = get32(&r);
        for (int32_t i = 0; i < parts; i++) {
            int perr = get16(&r);
            int32_t index = get32(&r);
            int32_t leader = get32(&r);
            skip(&r, 4 * (int64_t)get32(&r)); /* replica_nodes */
            skip(&r, 4 * (int64_t)get32(&r)); /* isr_nodes */
            if (perr) die("metadata for %s[%d]: error code %d", topic, index, perr);
            if (m.leader >= 0 && leader != m.leader)
                die("partitions of %s have several leaders; kafkagen talks to one node", topic);
            m.leader = leader;
        }
        m.count = parts;
    }
    if (m.count <= 0) die("topic %s has no partitions", topic);
    return m;
}

static void wait_go(void) {
    char line[64];
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin) || strncmp(line, "go", 2) != 0) exit(3);
}

/* --- produce ------------------------------------------------------------------------------- */

static int parse_acks(const char *s) {
    if (!strcmp(s, "all") || !strcmp(s, "-1")) return -1;
    if (!strcmp(s, "0")) return 0;
    if (!strcmp(s, "1")) return 1;
    die("ACKS must be 0, 1, all or -1: %s", s);
    return 0;
}

/* Encodes one Produce request for records [first, first + count) into buf; record i goes to
 * partition i % parts. Returns the frame size. */
static size_t encode_produce(uint8_t *buf, const char *topic, int parts, int acks, int32_t cid,
                             int64_t first, int64_t count) {
    wr w = {buf};
    uint8_t *start = begin_request(&w, 0, PRODUCE_VERSION, cid);
    put16(&w, -1);      /* transactional_id: null */
    put16(&w, acks);
    put32(&w, 30000);   /* timeout_ms */
    put32(&w, 1);       /* topics */
    put_str(&w, topic);
    int used = count < parts ? (int)count : parts;
    put32(&w, used);
    int64_t ts = wall_ms();
    uint8_t value[VALUE_SIZE];
    memset(value, 'x', sizeof value);
    for (int k = 0; k < used; k++) {
        int64_t i0 = first + k; /* first record of this request for partition i0 % parts */
        int part = (int)(i0 % parts);
        int64_t c = (count - k + parts - 1) / parts; /* records i0, i0 + parts, ... < end */
        put32(&w, part);
        uint8_t *size_at = w.p;
        put32(&w, 0);                 /* records: bytes length, patched below */
        uint8_t *batch = w.p;
        put64(&w, 0);                 /* baseOffset */
        put32(&w, 0);                 /* batchLength, patched */
        put32(&w, -1);                /* partitionLeaderEpoch */
        put8(&w, 2);                  /* magic */
        uint8_t *crc_at = w.p;
        put32(&w, 0);                 /* crc, patched */
        uint8_t *attrs = w.p;
        put16(&w, 0);                 /* attributes: no compression, CreateTime */
        put32(&w, c - 1);             /* lastOffsetDelta */
        put64(&w, ts);                /* baseTimestamp */
        put64(&w, ts);                /* maxTimestamp */
        put64(&w, -1);                /* producerId */
        put16(&w, -1);                /* producerEpoch */
        put32(&w, -1);                /* baseSequence */
        put32(&w, c);                 /* records count */
        for (int64_t j = 0; j < c; j++) {
            int64_t counter = i0 + j * parts;
            /* body: attributes, timestampDelta, offsetDelta, keyLength -1, valueLength,
             * value, headers count 0. Every record gets the batch timestamp (delta 0). */
            int64_t body = 1 + 1 + uvarint_len(zigzag(j)) + 1 + uvarint_len(zigzag(VALUE_SIZE)) +
                           VALUE_SIZE + 1;
            put_varint(&w, body);
            put8(&w, 0);
            put_varint(&w, 0);
            put_varint(&w, j);
            put_varint(&w, -1);
            put_varint(&w, VALUE_SIZE);
            memcpy(w.p, value, VALUE_SIZE);
            wr cw = {w.p};
            put64(&cw, counter);
            w.p += VALUE_SIZE;
            put_varint(&w, 0);
        }
        patch32(batch + 8, (int64_t)(w.p - batch - 12));
        patch32(crc_at, (int64_t)crc32c(attrs, (size_t)(w.p - attrs)));
        patch32(size_at, (int64_t)(w.p - batch));
    }
    end_request(&w, start);
    return (size_t)(w.p - buf);
}

static void check_produce_response(size_t n, int expect_parts, const char *topic) {
    rd r = {rbuf + 4, rbuf + n};
    int32_t topics = get32(&r);
    int seen = 0;
    for (int32_t t = 0; t < topics; t++) {
        char name[256];
        get_str(&r, name, sizeof name);
        int32_t parts = get32(&r);
        for (int32_t i = 0; i < parts; i++) {
            int32_t index = get32(&r);
            int err = get16(&r);
            get64(&r); /* base_offset */
            get64(&r); /* log_append_time_ms */
            get64(&r); /* log_start_offset */
            int32_t rec_errors = get32(&r);
            char msg[256] = "";
            for (int32_t e = 0; e < rec_errors; e++) {
                get32(&r);
                get_str(&r, rec_errors == 1 ? msg : NULL, sizeof msg);
            }
            char emsg[256];
            get_str(&r, emsg, sizeof emsg);
            if (err) die("produce %s[%d]: error code %d %s %s", name, index, err, emsg, msg);
            seen++;
        }
    }
    get32(&r); /* throttle_time_ms */
    if (seen != expect_parts)
        die("produce response for %s has %d partitions, expected %d", topic, seen, expect_parts);
}

static int produce(const char *bootstrap, const char *topic, int64_t n, const char *acks_s) {
    int acks = parse_acks(acks_s);
    connect_to(bootstrap);
    topic_meta m = metadata(topic);
    const int64_t per_request = REQUEST_BYTES / (VALUE_SIZE + 10); /* ~110 B per record */
    size_t cap = (size_t)per_request * (VALUE_SIZE + 24) + (size_t)m.count * 128 + 1024;
    uint8_t *buf = xmalloc(cap);
    int32_t ring_cid[MAX_IN_FLIGHT];
    int64_t ring_count[MAX_IN_FLIGHT];
    int ring_parts[MAX_IN_FLIGHT];
    int head = 0, inflight = 0;
    int64_t sent = 0, acked = 0, requests = 0;
    wait_go();
    double c0 = cpu_s(), t0 = now();
    while (sent < n || inflight > 0) {
        if (sent < n && (acks == 0 || inflight < MAX_IN_FLIGHT)) {
            int64_t count = n - sent < per_request ? n - sent : per_request;
            int32_t cid = next_cid++;
            size_t len = encode_produce(buf, topic, m.count, acks, cid, sent, count);
            if (len > cap) die("request buffer overflow");
            write_all(buf, len);
            sent += count;
            requests++;
            if (acks == 0) {
                acked += count;
            } else {
                int slot = (head + inflight) % MAX_IN_FLIGHT;
                ring_cid[slot] = cid;
                ring_count[slot] = count;
                ring_parts[slot] = count < m.count ? (int)count : m.count;
                inflight++;
            }
            continue;
        }
        size_t len = read_frame(ring_cid[head]);
        check_produce_response(len, ring_parts[head], topic);
        acked += ring_count[head];
        head = (head + 1) % MAX_IN_FLIGHT;
        inflight--;
        if (now() - t0 > TIMEOUT_S) die("timed out after %.0f s", TIMEOUT_S);
    }
    if (acks == 0) { /* requests are served in order: this answer means all were handled */
        int32_t cid = next_cid++;
        send_metadata(topic, cid);
        read_frame(cid);
    }
    double t1 = now(), c1 = cpu_s();
    printf("{\"n\": %lld, \"t0\": %.9f, \"t1\": %.9f, \"requests\": %lld, \"cpu_s\": %.3f}\n",
           (long long)acked, t0, t1, (long long)requests, c1 - c0);
    fflush(stdout);
    free(buf);
    close(sock);
    return 0;
}

/* --- consume ------------------------------------------------------------------------------- */

typedef struct {
    int32_t index;
    int64_t offset; /* next offset to fetch */
} fetch_part;

static size_t encode_fetch(uint8_t *buf, const char *topic, const fetch_part *ps, int np,
                           int32_t cid) {
    wr w = {buf};
    uint8_t *start = begin_request(&w, 1, FETCH_VERSION, cid);
    put32(&w, -1);        /* replica_id */
    put32(&w, 100);       /* max_wait_ms */
    put32(&w, 1);         /* min_bytes */
    put32(&w, FETCH_MAX_BYTES);
    put8(&w, 0);          /* isolation_level: read uncommitted */
    put32(&w, 0);         /* session_id */
    put32(&w, -1);        /* session_epoch: sessionless full fetch */
    put32(&w, 1);         /* topics */
    put_str(&w, topic);
    put32(&w, np);
    for (int i = 0; i < np; i++) {
        put32(&w, ps[i].index);
        put32(&w, -1);        /* current_leader_epoch */
        put64(&w, ps[i].offset);
        put64(&w, -1);        /* log_start_offset (consumers send -1) */
        put32(&w, FETCH_PARTITION_MAX_BYTES);
    }
    put32(&w, 0);         /* forgotten_topics_data */
    put_str(&w, "");      /* rack_id */
    end_request(&w, start);
    return (size_t)(w.p - buf);
}

/* Walks a records field: counts every record at or past p->offset, advances p->offset. */
static int64_t walk_records(const uint8_t *p, const uint8_t *end, fetch_part *fp,
                            int64_t *bytes) {
    int64_t got = 0;
    while (end - p >= 61) {
        rd h = {p, end};
        int64_t base = get64(&h);
        int32_t blen = get32(&h);
        if (blen < 49) die("partition %d offset %lld: batch length %d", fp->index,
                           (long long)base, blen);
        if ((int64_t)(end - p) - 12 < blen) break; /* trailing partial batch */
        const uint8_t *bend = p + 12 + blen;
        get32(&h); /* partitionLeaderEpoch */
        int magic = get8(&h);
        if (magic != 2) die("partition %d offset %lld: magic %d", fp->index, (long long)base, magic);
        get32(&h); /* crc: not checked, like librdkafka's default check.crcs=false */
        int attrs = get16(&h);
        int32_t last_delta = get32(&h);
        h.p += 8 + 8 + 8 + 2 + 4; /* timestamps, producer id, epoch, base sequence */
        int32_t count = get32(&h);
        if (attrs & 7) die("partition %d: compressed batch (attributes %d)", fp->index, attrs);
        int control = attrs & 0x20;
        rd r = {h.p, bend};
        for (int32_t k = 0; k < count; k++) {
            int64_t len = get_varint(&r);
            if (len < 0 || len > r.end - r.p) die("partition %d: bad record length", fp->index);
            const uint8_t *rend = r.p + len;
            get8(&r);                 /* attributes */
            get_varint(&r);           /* timestampDelta */
            int64_t od = get_varint(&r);
            skip(&r, get_varint(&r)); /* key */
            int64_t vlen = get_varint(&r);
            skip(&r, vlen);           /* value: handed out in place, not copied */
            int64_t headers = get_varint(&r);
            for (int64_t x = 0; x < headers; x++) {
                skip(&r, get_varint(&r));
                skip(&r, get_varint(&r));
            }
            if (r.p != rend) die("partition %d: record length mismatch", fp->index);
            if (!control && base + od >= fp->offset) {
                got++;
                if (vlen > 0) *bytes += vlen;
            }
        }
        if (r.p != bend) die("partition %d: batch length mismatch", fp->index);
        if (base + last_delta + 1 > fp->offset) fp->offset = base + last_delta + 1;
        p = bend;
    }
    return got;
}

static int consume(const char *bootstrap, const char *topic, int64_t n, char *list) {
    connect_to(bootstrap);
    topic_meta m = metadata(topic);
    fetch_part ps[1024];
    int np = 0;
    for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
        if (np == (int)(sizeof ps / sizeof ps[0])) die("too many partitions");
        int idx = atoi(s);
        if (idx < 0 || idx >= m.count) die("%s has no partition %d", topic, idx);
        ps[np].index = idx;
        ps[np].offset = 0;
        np++;
    }
    if (!np) die("no partitions given");
    size_t cap = 512 + (size_t)np * 32 + strlen(topic);
    uint8_t *buf = xmalloc(cap);
    /* The response buffer at its largest (max_bytes plus headers) and touched now: a running
     * client's buffers are warm, and page-faulting ~8 MB into a fresh buffer during the
     * first fetches cost ~1-2 ms of a ~65 ms run against the sink. */
    free(rbuf);
    rcap = FETCH_MAX_BYTES + (1 << 20);
    rbuf = xmalloc(rcap);
    memset(rbuf, 0, rcap);
    int64_t got = 0, bytes = 0, requests = 0;
    wait_go();
    double c0 = cpu_s(), t0 = now();
    while (got < n) {
        if (now() - t0 > TIMEOUT_S) die("timed out after %.0f s with %lld records", TIMEOUT_S,
                                        (long long)got);
        int32_t cid = next_cid++;
        write_all(buf, encode_fetch(buf, topic, ps, np, cid));
        requests++;
        size_t len = read_frame(cid);
        rd r = {rbuf + 4, rbuf + len};
        get32(&r); /* throttle_time_ms */
        int err = get16(&r);
        if (err) die("fetch: error code %d", err);
        get32(&r); /* session_id */
        int32_t topics = get32(&r);
        for (int32_t t = 0; t < topics; t++) {
            get_str(&r, NULL, 0);
            int32_t parts = get32(&r);
            for (int32_t i = 0; i < parts; i++) {
                int32_t index = get32(&r);
                int perr = get16(&r);
                get64(&r); /* high_watermark */
                get64(&r); /* last_stable_offset */
                get64(&r); /* log_start_offset */
                int32_t aborted = get32(&r);
                if (aborted > 0) skip(&r, 16 * (int64_t)aborted);
                get32(&r); /* preferred_read_replica */
                int32_t rlen = get32(&r);
                if (perr) die("fetch %s[%d]: error code %d", topic, index, perr);
                if (rlen <= 0) continue;
                need(&r, (size_t)rlen);
                fetch_part *fp = NULL;
                for (int k = 0; k < np; k++)
                    if (ps[k].index == index) fp = &ps[k];
                if (!fp) die("fetch answered for partition %d, not asked for", index);
                got += walk_records(r.p, r.p + rlen, fp, &bytes);
                r.p += rlen;
            }
        }
    }
    double t1 = now(), c1 = cpu_s();
    printf("{\"n\": %lld, \"t0\": %.9f, \"t1\": %.9f, \"bytes\": %lld, \"requests\": %lld, "
           "\"cpu_s\": %.3f}\n", (long long)got, t0, t1, (long long)bytes, (long long)requests,
           c1 - c0);
    fflush(stdout);
    free(buf);
    close(sock);
    return 0;
}

int main(int argc, char **argv) {
    crc_select();
    if (argc == 6 && !strcmp(argv[1], "produce"))
        return produce(argv[2], argv[3], atoll(argv[4]), argv[5]);
    if (argc == 6 && !strcmp(argv[1], "consume"))
        return consume(argv[2], argv[3], atoll(argv[4]), argv[5]);
    fprintf(stderr, "usage: kafkagen produce BOOTSTRAP TOPIC N ACKS | "
                    "consume BOOTSTRAP TOPIC N PARTITIONS\n");
    return 2;
}
