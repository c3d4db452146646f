/*
 * cmd_enroll.c - `tmctl enroll` and `tmctl revoke`: agents in and out of the collector's
 * identity map (docs/enrollment.md).
 *
 * enroll, direct: makes the agent's key and certificate here (signed with the CA of
 * [ca] dir), writes agent.crt, agent.key (0600) and ca.crt into --cert-out, adds the name
 * to [operator.ID] certs. enroll --token-ttl: records a one-time token (its digest only,
 * tm_tokens.h) that tm-agent enroll exchanges at the collector, which signs the agent's
 * own request and adds the name itself; the token is printed once.
 *
 * revoke: adds certificate names (an operator's, or one) to [revoked] certs and, with
 * --tokens, an operator's HTTP token digests to [revoked] tokens_sha256; an operator's
 * pending enrollment tokens are revoked too.
 *
 * Every change to the map or the token file happens under the map's lock file, the same
 * one tm-collector takes when it redeems a token, and is written atomically. After a map
 * change the collector is told to reload ([collector] pid_file or reload_command), or the
 * user is told how.
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tm/tm_config.h"
#include "tm/tm_file.h"
#include "tm/tm_idmap.h"
#include "tm/tm_inifile.h"
#include "tm/tm_pki.h"
#include "tm/tm_time.h"
#include "tm/tm_tokens.h"
#include "tmctl.h"

#define DEFAULT_TOKEN_TTL_MS (24LL * 3600000)
#define MAX_REVOKE 1024

static void usage_enroll(FILE *f)
{
    fprintf(f, "usage: tmctl enroll --operator ID [--sector S] [--region UA-NN] [--name NAME]\n"
               "                    [--cert-out DIR] [--days N] [--token | --token-ttl 24h]\n"
               "                    [--map FILE] [--dir CADIR] [--pid-file FILE] [--no-reload]\n"
               "\n"
               "Without --token: issues the agent's certificate and key now, into --cert-out\n"
               "(default ./NAME): agent.crt, agent.key (0600), ca.crt.\n"
               "With --token or --token-ttl: prints a one-time token for 'tm-agent enroll'\n"
               "(valid --token-ttl, default 24h); only its digest is kept.\n"
               "Either way NAME (default OPERATOR-RANDOM.[ca] name_domain) joins the\n"
               "operator's section of the identity map. --sector and --region are needed for\n"
               "an operator the map does not have yet.\n");
}

static void usage_revoke(FILE *f)
{
    fprintf(f, "usage: tmctl revoke NAME_OR_OPERATOR [--tokens] [--force] [--map FILE]\n"
               "                    [--pid-file FILE] [--no-reload]\n"
               "\n"
               "Adds a certificate name, or every certificate name of an operator, to the\n"
               "identity map's [revoked] list; the collector refuses them from the next\n"
               "connection after its reload. An operator's pending enrollment tokens are\n"
               "revoked too; --tokens also revokes its HTTP bearer tokens. --force denies a\n"
               "name the map does not know.\n");
}

/* Paths and the lock of one edit session. */
struct session {
    char map[512], tokens[512], lock[600];
    int lock_fd;
    struct tm_inifile *f;
    struct tm_tokens t;
};

static int session_open(struct ctl *c, const char *map, struct session *s)
{
    char err[TM_ERR_LEN];

    memset(s, 0, sizeof(*s));
    s->lock_fd = -1;
    if (map == NULL)
        map = c->cfg.identity_map;
    if (map[0] == '\0') {
        ctl_error("no identity map: set [collector] identity_map or give --map");
        return -1;
    }
    if (tm_strlcpy(s->map, map, sizeof(s->map)) != 0 ||
        tm_idmap_lock_path(map, s->lock, sizeof(s->lock)) != 0 ||
        (c->cfg.tokens[0] != '\0' ? tm_strlcpy(s->tokens, c->cfg.tokens, sizeof(s->tokens))
                                  : tm_idmap_tokens_path(map, s->tokens, sizeof(s->tokens))) != 0) {
        ctl_error("identity map path '%s' is too long", map);
        return -1;
    }
    s->lock_fd = tm_file_lock(s->lock, TM_IDMAP_LOCK_WAIT_MS, err);
    if (s->lock_fd < 0 || tm_inifile_load(s->map, &s->f, err) != 0 ||
        tm_tokens_load(s->tokens, &s->t, err) != 0) {
        ctl_error("%s", err);
        tm_file_unlock(s->lock_fd);
        tm_inifile_free(s->f);
        s->f = NULL;
        s->lock_fd = -1;
        return -1;
    }
    return 0;
}

static void session_close(struct session *s)
{
    tm_tokens_free(&s->t);
    tm_inifile_free(s->f);
    s->f = NULL;
    tm_file_unlock(s->lock_fd);
    s->lock_fd = -1;
}

/*
 * Tells the collector to reload the map: SIGHUP to the pid in pid_file, or
 * reload_command run (split on blanks, no shell), or a hint on stderr.
 */
static int reload_collector(struct ctl *c, const char *pid_file)
{
    char err[TM_ERR_LEN];

    if (pid_file == NULL)
        pid_file = c->cfg.pid_file;
    if (pid_file[0] != '\0') {
        char *text = NULL;
        int64_t pid;
        size_t n;

        if (tm_file_read(pid_file, 64, false, &text, NULL, err) != 0) {
            ctl_error("cannot reload the collector: %s", err);
            return -1;
        }
        n = strcspn(text, "\r\n");
        text[n] = '\0';
        if (tm_parse_int64(text, 2, 1 << 30, &pid) != 0) {
            ctl_error("cannot reload the collector: '%s' holds no pid", pid_file);
            free(text);
            return -1;
        }
        free(text);
        if (kill((pid_t)pid, SIGHUP) != 0) {
            ctl_error("cannot reload the collector: SIGHUP to %lld: %s", (long long)pid,
                      strerror(errno));
            return -1;
        }
        fprintf(stderr, "tmctl: collector (pid %lld) told to reload the identity map (SIGHUP)\n",
                (long long)pid);
        return 0;
    }
    if (c->cfg.reload_command[0] != '\0') {
        char cmd[sizeof(c->cfg.reload_command)], *args[32], *save = NULL;
        int n = 0, status = 0;
        pid_t child;

        tm_strlcpy(cmd, c->cfg.reload_command, sizeof(cmd));
        for (char *w = strtok_r(cmd, " \t", &save); w != NULL && n < 31;
             w = strtok_r(NULL, " \t", &save))
            args[n++] = w;
        args[n] = NULL;
        fflush(NULL);
        child = fork();
        if (child == 0) {
            execvp(args[0], args);
            _exit(127);
        }
        if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            ctl_error("cannot reload the collector: '%s' failed", c->cfg.reload_command);
            return -1;
        }
        fprintf(stderr, "tmctl: collector reloaded ('%s')\n", c->cfg.reload_command);
        return 0;
    }
    fprintf(stderr, "tmctl: the collector applies this after a reload: systemctl reload "
                    "tm-collector (or kill -HUP its pid) on every collector that reads this "
                    "map\n");
    return 0;
}

/* "ua-water-kyiv" -> "ua-water-kyiv-3f9a1c2e.DOMAIN" (lowercase, '.' and '_' as '-'). */
static int make_name(const char *op, const char *domain, char *out, size_t len)
{
    unsigned char rnd[4];
    char base[TM_IDMAP_OPERATOR_MAX + 1];
    size_t n = 0;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return -1;
    for (const char *p = op; *p != '\0' && n < sizeof(base) - 1; p++) {
        char ch = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
        if (ch == '.' || ch == '_')
            ch = '-';
        if (ch == '-' && (n == 0 || base[n - 1] == '-'))
            continue;
        base[n++] = ch;
    }
    while (n > 0 && base[n - 1] == '-')
        n--;
    base[n] = '\0';
    if (snprintf(out, len, "%s%s%02x%02x%02x%02x.%s", base, n > 0 ? "-" : "agent-", rnd[0], rnd[1],
                 rnd[2], rnd[3], domain) >= (int)len)
        return -1;
    return tm_idmap_name_valid(out) ? 0 : -1;
}

/* A pending token of another operator for name makes the name taken. */
static int name_free_in_tokens(const struct tm_tokens *t, const char *op, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].state == TM_TOKEN_PENDING && strcmp(t->v[i].name, name) == 0 &&
            strcmp(t->v[i].operator_id, op) != 0) {
            ctl_error("certificate name '%s' is promised to operator '%s' by a pending token", name,
                      t->v[i].operator_id);
            return -1;
        }
    return 0;
}

/* Writes the agent's files into dir (created 0750). Removes what it wrote when one fails. */
static int write_agent_files(const char *dir, const char *crt, size_t clen, const char *key,
                             size_t klen, const char *ca, size_t calen, char paths[3][600])
{
    static const char *const names[3] = {"agent.key", "agent.crt", "ca.crt"};
    const char *data[3] = {key, crt, ca};
    size_t lens[3] = {klen, clen, calen};
    mode_t modes[3] = {0600, 0644, 0644};
    char err[TM_ERR_LEN];

    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        ctl_error("cannot create '%s': %s", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < 3; i++)
        if (snprintf(paths[i], 600, "%s/%s", dir, names[i]) >= 600) {
            ctl_error("path '%s' is too long", dir);
            return -1;
        }
    for (int i = 0; i < 3; i++)
        if (tm_file_write_atomic(paths[i], data[i], lens[i], modes[i], TM_FILE_NO_REPLACE, err) !=
            0) {
            ctl_error("%s%s", err, errno == EEXIST ? " (choose another --cert-out)" : "");
            while (--i >= 0)
                unlink(paths[i]);
            return -1;
        }
    return 0;
}

struct enroll_opts {
    const char *op, *name, *out, *map, *ca_dir, *pid_file;
    char sector[32], region[8];
    int days;
    bool token, no_reload;
    int64_t ttl_ms;
};

/* Issues the certificate now. Called with the session open; closes nothing. */
static int enroll_direct(struct ctl *c, struct enroll_opts *o, struct session *s, const char *name,
                         bool *changed)
{
    char err[TM_ERR_LEN], out_dir[600], paths[3][600], when[TM_TIME_LEN];
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    char *kpem = NULL, *cpem = NULL, *capem = NULL;
    size_t klen = 0, clen = 0, calen = 0;
    int64_t not_after = 0;
    int rc = -1;

    if (ctl_ca_load(o->ca_dir, &ca, &ca_key, err) != 0) {
        ctl_error("%s (tmctl ca init makes one)", err);
        return -1;
    }
    if (snprintf(out_dir, sizeof(out_dir), "%s", o->out != NULL ? o->out : name) >=
        (int)sizeof(out_dir)) {
        ctl_error("--cert-out is too long");
        goto out;
    }
    key = tm_pki_key_new(err);
    cert = key != NULL
               ? tm_pki_issue(ca, ca_key, key, TM_PKI_CLIENT, name, NULL, 0, NULL, 0, o->days, err)
               : NULL;
    if (cert == NULL) {
        ctl_error("%s", err);
        goto out;
    }
    kpem = tm_pki_key_pem(key, &klen);
    cpem = tm_pki_cert_pem(cert, &clen);
    capem = tm_pki_cert_pem(ca, &calen);
    if (kpem == NULL || cpem == NULL || capem == NULL) {
        ctl_error("out of memory");
        goto out;
    }
    if (write_agent_files(out_dir, cpem, clen, kpem, klen, capem, calen, paths) != 0)
        goto out;
    if (tm_idmap_add_cert(s->f, o->op, o->sector, o->region, name, err) != 0 ||
        tm_inifile_save(s->f, s->map, 0640, err) != 0) {
        ctl_error("%s", err);
        for (int i = 0; i < 3; i++)
            unlink(paths[i]);
        goto out;
    }
    *changed = true;
    tm_pki_not_after(cert, &not_after);
    tm_time_format(not_after, when, sizeof(when));
    fprintf(c->out,
            "name: %s\noperator: %s\nsector: %s\nregion: %s\ncert: %s\nkey: %s\nca: %s\n"
            "not_after: %s\n",
            name, o->op, o->sector, o->region, paths[1], paths[0], paths[2], when);
    fprintf(stderr,
            "tmctl: give the three files to the agent's host (tm-agent.ini [shipper] tls_cert, "
            "tls_key, tls_ca); the key is secret\n");
    rc = 0;
out:
    if (kpem != NULL) {
        OPENSSL_cleanse(kpem, klen);
        free(kpem);
    }
    free(cpem);
    free(capem);
    X509_free(cert);
    EVP_PKEY_free(key);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}

/* Records a one-time token. Called with the session open. */
static int enroll_token(struct ctl *c, struct enroll_opts *o, struct session *s, const char *name)
{
    char token[TM_TOKEN_LEN], err[TM_ERR_LEN], when[TM_TIME_LEN];
    struct tm_token e;
    int rc = -1;

    memset(&e, 0, sizeof(e));
    if (tm_tokens_generate(token, e.digest, err) != 0) {
        ctl_error("%s", err);
        return -1;
    }
    e.expires_ms = c->now_ms + o->ttl_ms;
    e.state = TM_TOKEN_PENDING;
    tm_strlcpy(e.operator_id, o->op, sizeof(e.operator_id));
    tm_strlcpy(e.sector, o->sector, sizeof(e.sector));
    tm_strlcpy(e.region, o->region, sizeof(e.region));
    tm_strlcpy(e.name, name, sizeof(e.name));
    if (tm_tokens_add(&s->t, &e, err) != 0 ||
        tm_tokens_save(s->tokens, &s->t, tm_time_now_ms(), err) != 0) {
        ctl_error("%s", err);
        goto out;
    }
    tm_time_format(e.expires_ms, when, sizeof(when));
    fprintf(c->out, "name: %s\noperator: %s\nsector: %s\nregion: %s\ntoken: %s\nexpires: %s\n",
            name, o->op, o->sector, o->region, token, when);
    fprintf(stderr,
            "tmctl: the token is shown only this once and works once, until %s. On the agent's "
            "host, with the CA certificate (%s/ca.crt) beside it:\n"
            "  tm-agent enroll --token TOKEN --collector %s --ca ca.crt --out /etc/tm-agent\n",
            when, o->ca_dir,
            c->cfg.enroll_address[0] != '\0' ? c->cfg.enroll_address : "COLLECTOR:PORT");
    rc = 0;
out:
    OPENSSL_cleanse(token, sizeof(token));
    return rc;
}

int ctl_cmd_enroll(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"operator", required_argument, NULL, 'o'}, {"sector", required_argument, NULL, 's'},
        {"region", required_argument, NULL, 'r'},   {"name", required_argument, NULL, 'N'},
        {"cert-out", required_argument, NULL, 'O'}, {"days", required_argument, NULL, 'd'},
        {"token", no_argument, NULL, 'T'},          {"token-ttl", required_argument, NULL, 't'},
        {"map", required_argument, NULL, 'm'},      {"dir", required_argument, NULL, 'D'},
        {"pid-file", required_argument, NULL, 'p'}, {"no-reload", no_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct enroll_opts o;
    struct session s;
    char name[TM_IDMAP_NAME_MAX + 1];
    bool renewal = false, changed = false;
    char err[TM_ERR_LEN];
    int opt, rc = 1;
    int64_t v;

    memset(&o, 0, sizeof(o));
    o.ca_dir = c->cfg.ca_dir;
    o.days = (int)c->cfg.cert_days;
    o.ttl_ms = DEFAULT_TOKEN_TTL_MS;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            o.op = optarg;
            break;
        case 's':
            if (tm_strlcpy(o.sector, optarg, sizeof(o.sector)) != 0)
                goto bad;
            break;
        case 'r':
            if (tm_strlcpy(o.region, optarg, sizeof(o.region)) != 0)
                goto bad;
            break;
        case 'N':
            o.name = optarg;
            break;
        case 'O':
            o.out = optarg;
            break;
        case 'd':
            if (tm_parse_int64(optarg, 1, 3650, &v) != 0)
                goto bad;
            o.days = (int)v;
            break;
        case 'T':
            o.token = true;
            break;
        case 't':
            if (tm_config_parse_duration(optarg, &o.ttl_ms) != 0 || o.ttl_ms < 60000 ||
                o.ttl_ms > 30LL * 86400000) {
                ctl_error("--token-ttl '%s': expected 1m to 30d (24h, 90m, 7d)", optarg);
                return 2;
            }
            o.token = true;
            break;
        case 'm':
            o.map = optarg;
            break;
        case 'D':
            o.ca_dir = optarg;
            break;
        case 'p':
            o.pid_file = optarg;
            break;
        case 'R':
            o.no_reload = true;
            break;
        case 'h':
            usage_enroll(stdout);
            return 0;
        default:
            goto bad;
        }
    }
    if (optind != argc || o.op == NULL)
        goto bad;
    if (o.token && o.out != NULL) {
        ctl_error("--cert-out is for certificates issued now; a token's agent writes its own "
                  "files (tm-agent enroll --out)");
        return 2;
    }
    if (!tm_idmap_operator_valid(o.op)) {
        ctl_error("--operator '%s': 1-%d of A-Z a-z 0-9 . _ -", o.op, TM_IDMAP_OPERATOR_MAX);
        return 2;
    }
    if (o.name != NULL) {
        if (tm_strlcpy(name, o.name, sizeof(name)) != 0 || !tm_idmap_name_valid(name)) {
            ctl_error("--name '%s': a lowercase DNS name (a-z 0-9 - and dots)", o.name);
            return 2;
        }
    } else if (make_name(o.op, c->cfg.name_domain, name, sizeof(name)) != 0) {
        ctl_error("cannot make a certificate name from '%s' and [ca] name_domain '%s'", o.op,
                  c->cfg.name_domain);
        return 1;
    }
    if (session_open(c, o.map, &s) != 0)
        return 1;
    if (tm_idmap_check(s.f, o.op, o.sector, o.region, name, &renewal, err) != 0) {
        ctl_error("%s", err);
        goto out;
    }
    if (name_free_in_tokens(&s.t, o.op, name) != 0)
        goto out;
    if (renewal)
        fprintf(stderr, "tmctl: '%s' is already enrolled for '%s': issuing a renewal\n", name,
                o.op);
    if (o.token ? enroll_token(c, &o, &s, name) : enroll_direct(c, &o, &s, name, &changed))
        goto out;
    rc = 0;
out:
    session_close(&s);
    if (rc == 0 && changed && !o.no_reload && reload_collector(c, o.pid_file) != 0)
        rc = 1;
    return rc;
bad:
    usage_enroll(stderr);
    return 2;
}

/* ---- revoke ------------------------------------------------------------------------ */

struct names {
    char *v[MAX_REVOKE];
    size_t n;
};

static int collect_cb(void *arg, const char *item)
{
    struct names *l = arg;

    if (l->n >= MAX_REVOKE)
        return 1;
    l->v[l->n] = strdup(item);
    if (l->v[l->n] == NULL)
        return 1;
    l->n++;
    return 0;
}

static void names_free(struct names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

int ctl_cmd_revoke(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tokens", no_argument, NULL, 't'},
        {"force", no_argument, NULL, 'f'},
        {"map", required_argument, NULL, 'm'},
        {"pid-file", required_argument, NULL, 'p'},
        {"no-reload", no_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *map = NULL, *pid_file = NULL, *target;
    bool tokens = false, force = false, no_reload = false, map_changed = false, tok_changed = false;
    struct names certs = {{NULL}, 0}, digests = {{NULL}, 0};
    char err[TM_ERR_LEN], owner[TM_IDMAP_OPERATOR_MAX + 1], section[64];
    struct session s;
    size_t cancelled = 0, added = 0;
    int opt, rc = 1;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 't')
            tokens = true;
        else if (opt == 'f')
            force = true;
        else if (opt == 'm')
            map = optarg;
        else if (opt == 'p')
            pid_file = optarg;
        else if (opt == 'R')
            no_reload = true;
        else {
            usage_revoke(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1) {
        usage_revoke(stderr);
        return 2;
    }
    target = argv[optind];
    if (session_open(c, map, &s) != 0)
        return 1;
    snprintf(section, sizeof(section), "operator.%s", target);
    if (tm_idmap_operator_valid(target) && tm_inifile_has_section(s.f, section)) {
        /* an operator: all its names, its pending enrollments, with --tokens its tokens */
        if (tm_idmap_operator_certs(s.f, target, collect_cb, &certs) != 0 ||
            (tokens && tm_idmap_operator_tokens(s.f, target, collect_cb, &digests) != 0)) {
            ctl_error("out of memory");
            goto out;
        }
        for (size_t i = 0; i < s.t.n; i++)
            if (s.t.v[i].state == TM_TOKEN_PENDING && strcmp(s.t.v[i].operator_id, target) == 0) {
                tm_tokens_burn(&s.t, i, TM_TOKEN_REVOKED, c->now_ms);
                cancelled++;
            }
    } else if (tm_idmap_cert_owner(s.f, target, owner) || force ||
               tm_idmap_cert_revoked(s.f, target)) {
        if (!tm_idmap_name_valid(target)) {
            ctl_error("'%s' is not a certificate name (a lowercase DNS name)", target);
            goto out;
        }
        collect_cb(&certs, target);
    } else {
        /*
         * A name only a pending token promises, or an operator not in the map yet whose
         * only enrollments are pending tokens: those tokens are revoked (here, and by
         * name below).
         */
        bool pending = false;
        for (size_t i = 0; i < s.t.n; i++) {
            if (s.t.v[i].state != TM_TOKEN_PENDING)
                continue;
            if (strcmp(s.t.v[i].name, target) == 0)
                pending = true;
            if (strcmp(s.t.v[i].operator_id, target) == 0) {
                tm_tokens_burn(&s.t, i, TM_TOKEN_REVOKED, c->now_ms);
                cancelled++;
                pending = true;
            }
        }
        if (!pending) {
            ctl_error("'%s' is neither an operator nor a certificate name in '%s' (--force "
                      "denies it anyway)",
                      target, s.map);
            goto out;
        }
    }
    /* a pending enrollment for a revoked name must not complete */
    for (size_t k = 0; k < certs.n + 1; k++)
        for (size_t i = 0; i < s.t.n; i++) {
            const char *n = k < certs.n ? certs.v[k] : target;
            if (s.t.v[i].state == TM_TOKEN_PENDING && strcmp(s.t.v[i].name, n) == 0) {
                tm_tokens_burn(&s.t, i, TM_TOKEN_REVOKED, c->now_ms);
                cancelled++;
            }
        }
    tok_changed = cancelled > 0;
    for (size_t i = 0; i < certs.n; i++) {
        bool was_added = false;
        if (tm_idmap_revoke_cert(s.f, certs.v[i], &was_added, err) != 0) {
            ctl_error("%s", err);
            goto out;
        }
        fprintf(c->out, "revoked cert: %s%s\n", certs.v[i], was_added ? "" : " (already)");
        added += was_added;
    }
    for (size_t i = 0; i < digests.n; i++) {
        bool was_added = false;
        if (tm_idmap_revoke_token(s.f, digests.v[i], &was_added, err) != 0) {
            ctl_error("%s", err);
            goto out;
        }
        fprintf(c->out, "revoked token_sha256: %s%s\n", digests.v[i],
                was_added ? "" : " (already)");
        added += was_added;
    }
    if (cancelled > 0)
        fprintf(c->out, "revoked pending enrollment tokens: %zu\n", cancelled);
    map_changed = added > 0;
    if (map_changed && tm_inifile_save(s.f, s.map, 0640, err) != 0) {
        ctl_error("%s", err);
        goto out;
    }
    if (tok_changed && tm_tokens_save(s.tokens, &s.t, tm_time_now_ms(), err) != 0) {
        ctl_error("%s", err);
        goto out;
    }
    if (certs.n + digests.n + cancelled == 0)
        fprintf(stderr, "tmctl: operator '%s' has nothing to revoke\n", target);
    rc = 0;
out:
    session_close(&s);
    names_free(&certs);
    names_free(&digests);
    if (rc == 0 && map_changed && !no_reload && reload_collector(c, pid_file) != 0)
        rc = 1;
    return rc;
}
