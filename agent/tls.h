/*
 * tls.h - tm-agent's TLS client, on mbedTLS (docs/agent.md, "Footprint", says why the agent
 * does not use OpenSSL like the servers do).
 *
 * A tls_client holds what every connection shares: the pinned CA (the only trust anchor),
 * the agent's own certificate and key (optional), and a seeded random generator. TLS 1.2
 * with ECDHE and AES-GCM or ChaCha20-Poly1305 only, the peer's certificate always checked
 * against the CA, renegotiation off.
 *
 * A tls_conn is one connection. Its records travel either through two evbuffers (the
 * socket bufferevent's input and output: the shipper, on the event loop) or over a
 * blocking socket with timeouts (`tm-agent enroll`). Over evbuffers nothing blocks:
 * handshake and receive say when they need more input, and a send always completes into
 * the output evbuffer.
 */
#ifndef TM_AGENT_TLS_H
#define TM_AGENT_TLS_H

#include <stddef.h>

struct evbuffer;
struct tls_client;
struct tls_conn;

/* tls_conn_handshake and tls_conn_recv: more input is needed (evbuffer transport). */
#define TLS_AGAIN (-2)

/*
 * A client trusting only the CA certificates in ca_file, presenting cert_file/key_file
 * (PEM) when both are given. NULL with err set when a file does not load or the key does
 * not match the certificate.
 */
struct tls_client *tls_client_new(const char *ca_file, const char *cert_file, const char *key_file,
                                  char *err);
void tls_client_free(struct tls_client *c);

/* mbedTLS's random callback shape, drawing from the client's generator (for key pairs). */
int tls_client_random(void *client, unsigned char *out, size_t len);

/*
 * A connection that expects the server's certificate to name `name`: an IP literal must
 * be one of its IP SANs, another name a DNS SAN or the CN (and is sent as SNI). NULL:
 * any certificate that chains to the CA. Then give it exactly one transport.
 */
struct tls_conn *tls_conn_new(struct tls_client *c, const char *name, char *err);
void tls_conn_free(struct tls_conn *t);
void tls_conn_use_evbuffers(struct tls_conn *t, struct evbuffer *in, struct evbuffer *out);
void tls_conn_use_fd(struct tls_conn *t, int fd);
/* The socket reached its end: what the input evbuffer holds is all there will be. */
void tls_conn_input_ended(struct tls_conn *t);

/* Returns 1 once the handshake is done, TLS_AGAIN, or -1 with why set. */
int tls_conn_handshake(struct tls_conn *t, char *why, size_t whylen);

/* Encrypts len bytes (or the whole of buf, which it drains). Returns 0 or -1 with why. */
int tls_conn_send(struct tls_conn *t, const void *data, size_t len, char *why, size_t whylen);
int tls_conn_send_buffer(struct tls_conn *t, struct evbuffer *buf, char *why, size_t whylen);

/*
 * Up to len decrypted bytes: their number, 0 when the peer closed (close_notify, or end
 * of a blocking socket), TLS_AGAIN, or -1 with why set.
 */
int tls_conn_recv(struct tls_conn *t, void *buf, size_t len, char *why, size_t whylen);

#endif
