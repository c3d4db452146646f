/*
 * fuzz_event.c - libFuzzer target for the canonical event decoder. Whatever decodes must
 * also validate, encode, and decode again to an equal event; whatever fails must carry a
 * reason and a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tm_event e, back;
    char err[TM_ERR_LEN] = "";
    enum tm_event_mode mode = size > 0 && (data[0] & 1) ? TM_EVENT_SUBMITTED : TM_EVENT_STAMPED;
    enum tm_event_reason r;
    size_t len;
    char *text;

    r = tm_event_decode(&e, (const char *)data, size, mode, err);
    if (r != TM_EVENT_OK) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    if (tm_event_validate(&e, mode, err) != TM_EVENT_OK)
        abort();
    text = tm_event_encode(&e, &len);
    if (text == NULL)
        abort();
    if (tm_event_decode(&back, text, len, mode, err) != TM_EVENT_OK || !tm_event_equal(&e, &back))
        abort();
    free(text);
    return 0;
}
