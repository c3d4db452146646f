/*
 * bench_codec.c - throughput of the canonical event codec against jansson alone on the
 * same input, measured in the same run: decode+validate against a bare json_loadb, and
 * encode against a bare json_dumpb of the parsed tree. The ratio is what our schema
 * checks cost on top of the JSON library, and it does not depend on how busy the machine is.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tm/tm_event.h"

#define EVENTS 4096

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    static const char *const sectors[] = {"local-government", "public-administration",
                                          "defence-industry", "energy", "ict-services"};
    static const char *const cats[] = {"phishing", "malware", "bruteforce", "scan", "ddos"};
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    char **texts = calloc(EVENTS, sizeof(char *));
    size_t *lens = calloc(EVENTS, sizeof(size_t));
    size_t bytes = 0;
    struct tm_event e;
    char err[TM_ERR_LEN], buf[TM_EVENT_JSON_MAX];
    double t0, t_lib, t_ours, t_enc_lib, t_enc_ours;
    long n = 0;
    json_t *trees[64];

    for (int i = 0; i < EVENTS; i++) {
        tm_event_init(&e);
        tm_id_new(e.id);
        e.ts = 1795418525123LL + i;
        e.received = e.ts + 40;
        snprintf(e.operator_id, sizeof(e.operator_id), "ua-op-%03d", i % 300);
        snprintf(e.sector, sizeof(e.sector), "%s", sectors[i % 5]);
        snprintf(e.region, sizeof(e.region), "UA-%02d", i % 2 ? 32 : 46);
        snprintf(e.agent, sizeof(e.agent), "agent-%04d", i % 1000);
        e.seq = i;
        snprintf(e.source.kind, sizeof(e.source.kind), "suricata");
        snprintf(e.category, sizeof(e.category), "%s", cats[i % 5]);
        e.severity = 1 + i % 10;
        snprintf(e.src.ip, sizeof(e.src.ip), "198.51.100.%d", i % 250);
        e.src.port = 40000 + i % 20000;
        snprintf(e.dst.ip, sizeof(e.dst.ip), "10.20.%d.%d", i % 200, i % 250);
        e.dst.port = 443;
        snprintf(e.attack.technique, sizeof(e.attack.technique), "T1190");
        snprintf(e.summary, sizeof(e.summary), "ET EXPLOIT attempt %d against public web app", i);
        texts[i] = tm_event_encode(&e, &lens[i]);
        bytes += lens[i];
    }

    /* Reference: jansson parsing the same texts, no schema. */
    t0 = now_s();
    for (long r = 0; r < rounds; r++)
        for (int i = 0; i < EVENTS; i++) {
            json_error_t je;
            json_t *j = json_loadb(texts[i], lens[i], JSON_REJECT_DUPLICATES, &je);
            n += j != NULL;
            json_decref(j);
        }
    t_lib = now_s() - t0;

    t0 = now_s();
    for (long r = 0; r < rounds; r++)
        for (int i = 0; i < EVENTS; i++)
            n += tm_event_decode(&e, texts[i], lens[i], TM_EVENT_STAMPED, err) == TM_EVENT_OK;
    t_ours = now_s() - t0;
    if (n != 2 * rounds * EVENTS) {
        fprintf(stderr, "bench_codec: %ld of %ld inputs failed to decode\n",
                2 * rounds * EVENTS - n, 2 * rounds * EVENTS);
        return 1;
    }

    for (int i = 0; i < 64; i++)
        trees[i] = json_loadb(texts[i], lens[i], 0, NULL);
    t0 = now_s();
    for (long r = 0; r < rounds; r++)
        for (int i = 0; i < EVENTS; i++)
            json_dumpb(trees[i % 64], buf, sizeof(buf), JSON_COMPACT | JSON_PRESERVE_ORDER);
    t_enc_lib = now_s() - t0;
    tm_event_decode(&e, texts[0], lens[0], TM_EVENT_STAMPED, err);
    t0 = now_s();
    for (long r = 0; r < rounds; r++)
        for (int i = 0; i < EVENTS; i++)
            tm_event_encode_buf(&e, buf, sizeof(buf));
    t_enc_ours = now_s() - t0;

    double total = (double)rounds * EVENTS;
    printf("codec: %d distinct events, mean %zu bytes, %ld rounds\n", EVENTS, bytes / EVENTS,
           rounds);
    printf("  decode+validate  %10.0f events/s   jansson json_loadb  %10.0f events/s   "
           "ratio %.2f\n",
           total / t_ours, total / t_lib, t_lib / t_ours);
    printf("  encode           %10.0f events/s   jansson json_dumpb  %10.0f events/s   "
           "ratio %.2f\n",
           total / t_enc_ours, total / t_enc_lib, t_enc_lib / t_enc_ours);
    for (int i = 0; i < 64; i++)
        json_decref(trees[i]);
    for (int i = 0; i < EVENTS; i++)
        free(texts[i]);
    free(texts);
    free(lens);
    return 0;
}
