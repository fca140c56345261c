/* A C load generator on librdkafka (Debian's librdkafka-dev), built by the bench into a
 * temporary directory:  cc -O2 -o loadgen loadgen.c -lrdkafka
 *
 *   loadgen produce BOOTSTRAP TOPIC N ACKS
 *   loadgen consume BOOTSTRAP TOPIC N PARTITIONS(comma list)
 *
 * Same protocol as bench/loadgen.py: connect and fetch metadata, print "ready", wait for a
 * "go" line on stdin, do the work, print one JSON line {"n":..,"t0":..,"t1":..} with
 * CLOCK_MONOTONIC seconds (the clock of Python's time.perf_counter()).
 * Records: 100-byte values, no key, librdkafka's default partitioner; producer settings as
 * in bench/loadgen.py (linger.ms=5, batch.size 1 MB, no compression, no idempotence). */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long delivered_ok = 0, delivered_err = 0;
static char first_err[256] = "";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "config %s=%s: %s\n", k, v, err);
        exit(2);
    }
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk; (void)opaque;
    if (m->err) {
        if (!delivered_err++)
            snprintf(first_err, sizeof first_err, "%s", rd_kafka_err2str(m->err));
    } else {
        delivered_ok++;
    }
}

static void wait_go(void) {
    char line[64];
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin) || strncmp(line, "go", 2) != 0) exit(3);
}

static int produce(const char *bootstrap, const char *topic, long n, const char *acks) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "acks", acks);
    set(conf, "linger.ms", "5");
    set(conf, "batch.size", "1000000");
    set(conf, "batch.num.messages", "100000");
    set(conf, "queue.buffering.max.messages", "4000000");
    set(conf, "queue.buffering.max.kbytes", "2000000");
    set(conf, "compression.type", "none");
    set(conf, "enable.idempotence", "false");
    set(conf, "message.max.bytes", "1000000");
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) { fprintf(stderr, "%s\n", err); return 2; }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 20000)) { fprintf(stderr, "no metadata\n"); return 2; }
    rd_kafka_metadata_destroy(md);
    char value[100];
    memset(value, 'x', sizeof value);
    wait_go();
    double t0 = now();
    for (long i = 0; i < n; i++) {
        while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value,
                                sizeof value, NULL, 0, NULL) == -1) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "produce: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
                return 2;
            }
            rd_kafka_poll(rk, 1);
        }
        if ((i & 0xffff) == 0) rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 300000);
    double t1 = now();
    printf("{\"n\": %ld, \"t0\": %.9f, \"t1\": %.9f, \"undelivered\": %ld, "
           "\"errors\": [\"%s\"]}\n", delivered_ok, t0, t1, n - delivered_ok, first_err);
    fflush(stdout);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return delivered_ok == n ? 0 : 1;
}

static int consume(const char *bootstrap, const char *topic, long n, char *parts) {
    char err[512], gid[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(gid, sizeof gid, "bench-c-%ld", (long)(now() * 1e6));
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "group.id", gid);
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.partition.eof", "false");
    set(conf, "fetch.max.bytes", "52428800");
    set(conf, "max.partition.fetch.bytes", "10485760");
    set(conf, "fetch.wait.max.ms", "100");
    set(conf, "queued.min.messages", "1000000");
    set(conf, "queued.max.messages.kbytes", "1000000");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) { fprintf(stderr, "%s\n", err); return 2; }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 20000)) { fprintf(stderr, "no metadata\n"); return 2; }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(8);
    for (char *p = strtok(parts, ","); p; p = strtok(NULL, ","))
        rd_kafka_topic_partition_list_add(tpl, topic, atoi(p))->offset = RD_KAFKA_OFFSET_BEGINNING;
    wait_go();
    double t0 = now();
    rd_kafka_assign(rk, tpl);
    long got = 0;
    long bytes = 0;
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    static rd_kafka_message_t *batch[10000];
    while (got < n && now() - t0 < 300) {
        /* Ask for no more than is left: a full-size request for the last few records waits
         * its whole timeout (1 s) for records that will never come. */
        size_t want = n - got < 10000 ? (size_t)(n - got) : 10000;
        ssize_t k = rd_kafka_consume_batch_queue(q, 1000, batch, want);
        for (ssize_t i = 0; i < k; i++) {
            rd_kafka_message_t *m = batch[i];
            if (m->err) {
                fprintf(stderr, "consume: %s\n", rd_kafka_message_errstr(m));
                return 2;
            }
            got++;
            bytes += (long)m->len;
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_queue_destroy(q);
    double t1 = now();
    printf("{\"n\": %ld, \"t0\": %.9f, \"t1\": %.9f, \"bytes\": %ld}\n", got, t0, t1, bytes);
    fflush(stdout);
    rd_kafka_topic_partition_list_destroy(tpl);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "produce"))
        return produce(argv[2], argv[3], atol(argv[4]), argv[5]);
    if (argc == 6 && !strcmp(argv[1], "consume"))
        return consume(argv[2], argv[3], atol(argv[4]), argv[5]);
    fprintf(stderr, "usage: loadgen produce BOOTSTRAP TOPIC N ACKS | "
                    "consume BOOTSTRAP TOPIC N PARTITIONS\n");
    return 2;
}
