/*
 * replay.c - runs a fuzz target over files without libFuzzer, so that every corpus
 * (tests/fuzz/corpus/NAME) also runs in plain 'make test', under gcc and the sanitizers.
 * Arguments are files or directories (not recursive). Each input is one check: it must
 * be readable, the target must return 0 (libFuzzer's contract) and must not abort (the
 * targets abort() when an invariant they check fails: a rejection without a reason, a
 * decode/encode round trip that differs, ...; the abort fails this program). A directory without
 * inputs fails too, so a corpus that went missing is noticed. Prints the summary lines
 * tests/run-tests.sh counts ("[  PASSED  ] N test(s).").
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "cannot open '%s'\n", path);
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    /* An exact-size heap copy, so the sanitizers catch reads past the input. */
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
        goto out;
    rc = LLVMFuzzerTestOneInput(buf, (size_t)n) == 0 ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "'%s': the target returned non-zero\n", path);
out:
    free(buf);
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    int files = 0, errors = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        DIR *d;
        struct dirent *de;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "cannot stat '%s'\n", argv[i]);
            errors++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            errors += run_file(argv[i]) != 0;
            files++;
            continue;
        }
        d = opendir(argv[i]);
        if (d == NULL) {
            fprintf(stderr, "cannot open '%s'\n", argv[i]);
            errors++;
            continue;
        }
        int before = files;
        while ((de = readdir(d)) != NULL) {
            char path[4096];
            if (de->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
            errors += run_file(path) != 0;
            files++;
        }
        closedir(d);
        if (files == before) {
            fprintf(stderr, "'%s': no inputs\n", argv[i]);
            errors++;
        }
    }
    printf("replayed %d inputs\n", files);
    if (files == 0 || errors > 0) {
        printf("[  FAILED  ] %d test(s), listed below:\n", errors > 0 ? errors : 1);
        return 1;
    }
    printf("[  PASSED  ] %d test(s).\n", files);
    return 0;
}
