/*
 * fuzz_parse.c - libFuzzer target for the log parsers. The input is one line; every
 * parser in tm_parsers reads exactly size bytes of it (an exact-size heap copy with no
 * NUL, so the sanitizers catch a read past the end). Whatever a parser calls an event must
 * validate as submitted and survive an encode/decode round trip; whatever it rejects must
 * say why. tm_syslog_split() must leave msg and sd inside the line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_event.h"
#include "tm/tm_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_event(const struct tm_event *e)
{
    static struct tm_event back;
    char err[TM_ERR_LEN] = "";
    size_t len;
    char *text;

    if (tm_event_validate(e, TM_EVENT_SUBMITTED, err) != TM_EVENT_OK)
        abort();
    text = tm_event_encode(e, &len);
    if (text == NULL)
        abort();
    if (tm_event_decode(&back, text, len, TM_EVENT_SUBMITTED, err) != TM_EVENT_OK ||
        !tm_event_equal(e, &back))
        abort();
    free(text);
}

static void check_split(const struct tm_parse_ctx *ctx, const char *line, size_t size)
{
    struct tm_syslog_msg m;
    char err[TM_ERR_LEN] = "";

    if (tm_syslog_split(ctx, line, size, &m, err) != 0) {
        if (err[0] == '\0')
            abort();
        return;
    }
    if (m.msg < line || m.msg + m.msg_len > line + size || m.facility < 0 || m.facility > 23 ||
        m.severity < 0 || m.severity > 7 || (m.rfc != 5424 && m.rfc != 3164))
        abort();
    if (m.sd != NULL && (m.sd < line || m.sd + m.sd_len > line + size))
        abort();
    if (strlen(m.host) >= sizeof(m.host) || strlen(m.app) >= sizeof(m.app))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A fixed "now" keeps runs reproducible (RFC 3164 years, default times). */
    static const struct tm_parse_ctx ctx = {.now_ms = 1767225600000LL};
    static struct tm_event e;
    char *line = malloc(size > 0 ? size : 1);

    if (line == NULL)
        return 0;
    if (size > 0)
        memcpy(line, data, size);
    for (size_t i = 0; i < tm_parsers_count; i++) {
        char err[TM_ERR_LEN] = "";
        enum tm_parse_result r = tm_parsers[i].parse(&ctx, line, size, &e, err);

        if (r == TM_PARSE_EVENT)
            check_event(&e);
        else if (r == TM_PARSE_ERROR && err[0] == '\0')
            abort();
        else if (r != TM_PARSE_ERROR && r != TM_PARSE_SKIP)
            abort();
    }
    check_split(&ctx, line, size);
    free(line);
    return 0;
}
