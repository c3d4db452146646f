/*
 * tm_parse_eve.c - Suricata EVE JSON, one record per line, read with jansson.
 *
 * Only two event types are security events: "alert" (a signature matched) and "anomaly"
 * (a malformed or unexpected packet or protocol); every other type (flow, dns, http, tls,
 * fileinfo, stats, ...) is well-formed telemetry that is not an attack and is skipped.
 * Text that is not JSON, or JSON that is not an EVE record, is an error. A line with
 * invalid UTF-8 (which jansson refuses) is read again with the bad bytes replaced by '?'.
 *
 * Suricata writes "2019-03-15T21:35:36.418743+0100": the offset has no colon, which RFC
 * 3339 requires, so it is added before tm_time_parse().
 *
 * Mappings (also in docs/parsers.md):
 *   severity   alert.severity (Suricata's priority, 1 = most severe) 1 -> 8, 2 -> 6,
 *              3 -> 4, 4 and above -> 3; absent -> 4 (Suricata's default priority is 3).
 *              Anomalies are 3.
 *   category   alert.category, the classtype's description from classification.config
 *              (or the classtype name itself), through the classtypes table below; when
 *              that says "other" or is unknown, the ET/ETPRO/GPL signature class
 *              ("ET SCAN ...", "ET MALWARE ...") refines it (signature_classes below).
 *              Anomalies are "other".
 *   attack     alert.metadata.mitre_technique_id[0] when it is a valid technique id;
 *              alert.metadata.mitre_tactic_name[0] ("Command_And_Control") lowercased
 *              with '-' for '_' and ' ' when it is a known tactic.
 *   confidence alert.metadata.confidence[0]: Low 30, Medium 60, High 90.
 *   summary    "[gid:sid:rev] signature" for alerts, "[anomaly] type: event" for
 *              anomalies.
 */
#include "tm/tm_parse.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tm/tm_common.h"
#include "tm/tm_event.h"
#include "tm/tm_tables.h"
#include "tm/tm_time.h"
#include "tm_parse_internal.h"

/*
 * Suricata/Emerging Threats classtypes (classification.config): the name, the
 * description that EVE writes as alert.category, and the category it maps to.
 */
static const struct {
    const char *classtype;
    const char *description;
    const char *category;
} classtypes[] = {
    {"not-suspicious", "Not Suspicious Traffic", "other"},
    {"unknown", "Unknown Traffic", "other"},
    {"bad-unknown", "Potentially Bad Traffic", "other"},
    {"attempted-recon", "Attempted Information Leak", "scan"},
    {"successful-recon-limited", "Information Leak", "data-leak"},
    {"successful-recon-largescale", "Large Scale Information Leak", "data-leak"},
    {"attempted-dos", "Attempted Denial of Service", "ddos"},
    {"successful-dos", "Denial of Service", "ddos"},
    {"attempted-user", "Attempted User Privilege Gain", "exploit"},
    {"unsuccessful-user", "Unsuccessful User Privilege Gain", "exploit"},
    {"successful-user", "Successful User Privilege Gain", "intrusion"},
    {"attempted-admin", "Attempted Administrator Privilege Gain", "exploit"},
    {"successful-admin", "Successful Administrator Privilege Gain", "intrusion"},
    {"rpc-portmap-decode", "Decode of an RPC Query", "other"},
    {"shellcode-detect", "Executable code was detected", "exploit"},
    {"string-detect", "A suspicious string was detected", "other"},
    {"suspicious-filename-detect", "A suspicious filename was detected", "other"},
    {"suspicious-login", "An attempted login using a suspicious username was detected",
     "bruteforce"},
    {"system-call-detect", "A system call was detected", "other"},
    {"tcp-connection", "A TCP connection was detected", "other"},
    {"trojan-activity", "A Network Trojan was detected", "malware"},
    {"unusual-client-port-connection", "A client was using an unusual port", "other"},
    {"network-scan", "Detection of a Network Scan", "scan"},
    {"denial-of-service", "Detection of a Denial of Service Attack", "ddos"},
    {"non-standard-protocol", "Detection of a non-standard protocol or event", "other"},
    {"protocol-command-decode", "Generic Protocol Command Decode", "other"},
    {"web-application-activity", "access to a potentially vulnerable web application", "other"},
    {"web-application-attack", "Web Application Attack", "exploit"},
    {"misc-activity", "Misc activity", "other"},
    {"misc-attack", "Misc Attack", "other"},
    {"icmp-event", "Generic ICMP event", "other"},
    {"inappropriate-content", "Inappropriate Content was Detected", "other"},
    {"policy-violation", "Potential Corporate Privacy Violation", "other"},
    {"default-login-attempt", "Attempt to login by a default username and password", "bruteforce"},
    {"targeted-activity", "Targeted Malicious Activity was Detected", "intrusion"},
    {"exploit-kit", "Exploit Kit Activity Detected", "exploit"},
    {"external-ip-check", "Device Retrieving External IP Address Detected", "other"},
    {"domain-c2", "Domain Observed Used for C2 Detected", "malware"},
    {"pup-activity", "Possibly Unwanted Program Detected", "malware"},
    {"credential-theft", "Successful Credential Theft Detected", "phishing"},
    {"social-engineering", "Possible Social Engineering Attempted", "phishing"},
    {"coin-mining", "Crypto Currency Mining Activity Detected", "malware"},
    {"command-and-control", "Malware Command and Control Activity Detected", "malware"},
};

/* Signature classes of ET/ETPRO/GPL rules ("ET SCAN Nmap ..."), used when the classtype
 * says nothing more specific than "other". */
static const struct {
    const char *word;
    const char *category;
} signature_classes[] = {
    {"MALWARE", "malware"},
    {"TROJAN", "malware"},
    {"MOBILE_MALWARE", "malware"},
    {"CNC", "malware"},
    {"BOTCC", "malware"},
    {"WORM", "malware"},
    {"PHISHING", "phishing"},
    {"SCAN", "scan"},
    {"DOS", "ddos"},
    {"EXPLOIT", "exploit"},
    {"EXPLOIT_KIT", "exploit"},
    {"WEB_SERVER", "exploit"},
    {"WEB_SPECIFIC_APPS", "exploit"},
    {"SHELLCODE", "exploit"},
    {"ACTIVEX", "exploit"},
    {"ATTACK_RESPONSE", "intrusion"},
};

static const char *category_of(const char *category, const char *signature)
{
    const char *result = "other", *w;
    size_t n;

    for (size_t i = 0; category != NULL && i < TM_ARRAY_LEN(classtypes); i++) {
        if (strcasecmp(category, classtypes[i].description) == 0 ||
            strcasecmp(category, classtypes[i].classtype) == 0) {
            result = classtypes[i].category;
            break;
        }
    }
    if (strcmp(result, "other") != 0 || signature == NULL)
        return result;
    if (strncmp(signature, "ET ", 3) == 0)
        w = signature + 3;
    else if (strncmp(signature, "ETPRO ", 6) == 0)
        w = signature + 6;
    else if (strncmp(signature, "GPL ", 4) == 0)
        w = signature + 4;
    else
        return result;
    n = strcspn(w, " ");
    for (size_t i = 0; i < TM_ARRAY_LEN(signature_classes); i++)
        if (strlen(signature_classes[i].word) == n && strncmp(w, signature_classes[i].word, n) == 0)
            return signature_classes[i].category;
    return result;
}

static int severity_of(const json_t *v)
{
    json_int_t s;

    if (!json_is_integer(v))
        return 4;
    s = json_integer_value(v);
    return s <= 1 ? 8 : s == 2 ? 6 : s == 3 ? 4 : 3;
}

/* The first string of an ET metadata array ("confidence": ["High"]), or NULL. */
static const char *meta_first(const json_t *metadata, const char *key)
{
    return json_string_value(json_array_get(json_object_get(metadata, key), 0));
}

static void attack_of(const json_t *metadata, struct tm_event *out)
{
    const char *technique = meta_first(metadata, "mitre_technique_id");
    const char *tactic = meta_first(metadata, "mitre_tactic_name");
    const char *confidence = meta_first(metadata, "confidence");
    char name[sizeof(out->attack.tactic)];

    if (technique != NULL && strlen(technique) < sizeof(out->attack.technique) &&
        tm_attack_technique_valid(technique))
        tm_strlcpy(out->attack.technique, technique, sizeof(out->attack.technique));
    if (tactic != NULL && tm_strlcpy(name, tactic, sizeof(name)) == 0) {
        for (char *c = name; *c != '\0'; c++)
            *c = *c == '_' || *c == ' ' ? '-' : *c >= 'A' && *c <= 'Z' ? (char)(*c + 32) : *c;
        if (tm_tactic_index(name) >= 0)
            tm_strlcpy(out->attack.tactic, name, sizeof(out->attack.tactic));
    }
    if (confidence != NULL)
        out->confidence = strcasecmp(confidence, "high") == 0     ? 90
                          : strcasecmp(confidence, "medium") == 0 ? 60
                          : strcasecmp(confidence, "low") == 0    ? 30
                                                                  : -1;
}

/* "...+0100" -> "...+01:00", then RFC 3339. */
static int eve_time(const char *s, int64_t *out)
{
    char buf[64];
    size_t n = strlen(s);

    if (n + 2 > sizeof(buf))
        return -1;
    memcpy(buf, s, n + 1);
    if (n >= 5 && (buf[n - 5] == '+' || buf[n - 5] == '-') &&
        strspn(buf + n - 4, "0123456789") == 4) {
        memmove(buf + n - 1, buf + n - 2, 3);
        buf[n - 2] = ':';
        n++;
    }
    if (tm_time_parse(buf, n, out) != 0 || *out < 0)
        return -1;
    return 0;
}

static void endpoint(const json_t *root, const char *ip_key, const char *port_key,
                     struct tm_endpoint *ep)
{
    const char *ip = json_string_value(json_object_get(root, ip_key));
    const json_t *port = json_object_get(root, port_key);

    if (ip != NULL)
        tm_parse_ip(ip, strlen(ip), ep->ip);
    if (json_is_integer(port) && json_integer_value(port) >= 0 && json_integer_value(port) <= 65535)
        ep->port = (int)json_integer_value(port);
}

/* Fields every EVE record has: time, addresses, sensor. */
static int common(const json_t *root, struct tm_event *out, char *err)
{
    const char *ts = json_string_value(json_object_get(root, "timestamp"));
    const char *host = json_string_value(json_object_get(root, "host"));

    if (ts == NULL)
        return tm_err(err, "eve: field 'timestamp': required string");
    if (eve_time(ts, &out->ts) != 0)
        return tm_err(err, "eve: field 'timestamp': '%.40s' is not a time stamp", ts);
    endpoint(root, "src_ip", "src_port", &out->src);
    endpoint(root, "dest_ip", "dest_port", &out->dst);
    tm_strlcpy(out->source.kind, "suricata", sizeof(out->source.kind));
    if (host != NULL)
        tm_parse_copy_text(out->source.host, sizeof(out->source.host), host, strlen(host));
    return 0;
}

static int alert(const json_t *root, struct tm_event *out, char *err)
{
    const json_t *a = json_object_get(root, "alert");
    const char *signature, *category;
    char summary[TM_EVENT_SUMMARY_MAX + 16]; /* cut later, at a boundary */
    json_int_t gid, sid, rev;

    if (!json_is_object(a))
        return tm_err(err, "eve: field 'alert': required object in an alert record");
    signature = json_string_value(json_object_get(a, "signature"));
    category = json_string_value(json_object_get(a, "category"));
    gid = json_is_integer(json_object_get(a, "gid")) ? json_integer_value(json_object_get(a, "gid"))
                                                     : 1;
    sid = json_integer_value(json_object_get(a, "signature_id"));
    rev = json_integer_value(json_object_get(a, "rev"));
    out->severity = severity_of(json_object_get(a, "severity"));
    tm_strlcpy(out->category, category_of(category, signature), sizeof(out->category));
    attack_of(json_object_get(a, "metadata"), out);
    snprintf(summary, sizeof(summary), "[%lld:%lld:%lld] %s", (long long)gid, (long long)sid,
             (long long)rev, signature != NULL ? signature : "(no signature)");
    tm_parse_set_summary(out, summary, strlen(summary));
    return 0;
}

static void anomaly(const json_t *root, struct tm_event *out)
{
    const json_t *a = json_object_get(root, "anomaly");
    const char *type = json_string_value(json_object_get(a, "type"));
    const char *event = json_string_value(json_object_get(a, "event"));
    const char *proto = json_string_value(json_object_get(a, "app_proto"));
    char summary[TM_EVENT_SUMMARY_MAX + 16]; /* cut later, at a boundary */

    out->severity = 3;
    tm_strlcpy(out->category, "other", sizeof(out->category));
    snprintf(summary, sizeof(summary), "[anomaly] %s: %s%s%s%s", type != NULL ? type : "unknown",
             event != NULL ? event : "(no event)", proto != NULL ? " (" : "",
             proto != NULL ? proto : "", proto != NULL ? ")" : "");
    tm_parse_set_summary(out, summary, strlen(summary));
}

enum tm_parse_result tm_parse_eve_cb(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                                     struct tm_event *out, char *err)
{
    enum tm_parse_result r = TM_PARSE_ERROR;
    json_t *root = NULL;
    json_error_t je;
    char *clean = NULL;
    const char *type;
    (void)ctx;

    tm_event_init(out);
    len = tm_parse_trim_eol(line, len);
    root = json_loadb(line, len, 0, &je);
    if (root == NULL && json_error_code(&je) == json_error_invalid_utf8) {
        /* Same length: each bad byte becomes one '?'. */
        if ((clean = malloc(len + 1)) == NULL) {
            tm_err(err, "eve: out of memory");
            goto out;
        }
        tm_parse_copy_text(clean, len + 1, line, len);
        root = json_loadb(clean, strlen(clean), 0, &je);
    }
    if (root == NULL) {
        tm_err(err, "eve: not a json record: %s at column %d", je.text, je.column);
        goto out;
    }
    if (!json_is_object(root)) {
        tm_err(err, "eve: expected a json object, got %s",
               json_is_array(root) ? "an array" : "a scalar");
        goto out;
    }
    type = json_string_value(json_object_get(root, "event_type"));
    if (type == NULL) {
        tm_err(err, "eve: field 'event_type': required string");
        goto out;
    }
    if (strcmp(type, "alert") != 0 && strcmp(type, "anomaly") != 0) {
        r = TM_PARSE_SKIP;
        goto out;
    }
    if (common(root, out, err) != 0)
        goto out;
    if (strcmp(type, "alert") == 0) {
        if (alert(root, out, err) != 0)
            goto out;
    } else {
        anomaly(root, out);
    }
    tm_parse_set_raw(out, line, len);
    r = tm_parse_finish(out, err);
out:
    json_decref(root);
    free(clean);
    return r;
}
