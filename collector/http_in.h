/*
 * http_in.h - HTTP ingest (http_in.c): POST /v1/events with NDJSON bodies, optionally
 * gzip-compressed, authenticated by bearer tokens mapped to operators. Runs on one
 * worker's loop and answers only after Kafka has acknowledged every line it accepted.
 */
#ifndef COLLECTOR_HTTP_IN_H
#define COLLECTOR_HTTP_IN_H

struct worker;
struct http_in;

/* Binds addr on the worker's event base (before the worker starts). NULL with err. */
struct http_in *http_in_create(struct worker *w, const char *addr, char *err);
/* The bound address, HOST:PORT. */
const char *http_in_address(const struct http_in *h);
void http_in_destroy(struct http_in *h);

#endif
