/*
 * test_csv.c - tmctl's CSV reader and writer (tools/tmctl/csv.c): RFC 4180 quoting,
 * CRLF and embedded line breaks, spreadsheet row numbers, errors that name row and
 * column, the formula guard, and write -> read round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tmctl.h"

/* Reads every record of text into a flat "row:field|field\n" dump, or the error. */
static void dump(const char *text, char *out, size_t len)
{
    struct ctl_csv *c = ctl_csv_create(text, strlen(text));
    char err[TM_ERR_LEN], **f;
    size_t n, used = 0;
    long row;
    int r;

    assert_non_null(c);
    out[0] = '\0';
    while ((r = ctl_csv_next(c, &f, &n, &row, err)) == 1) {
        used += (size_t)snprintf(out + used, len - used, "%ld:", row);
        for (size_t i = 0; i < n; i++)
            used += (size_t)snprintf(out + used, len - used, "%s%s", i ? "|" : "", f[i]);
        used += (size_t)snprintf(out + used, len - used, "\n");
    }
    if (r < 0)
        snprintf(out + used, len - used, "ERROR %s", err);
    ctl_csv_destroy(c);
}

static void test_csv_plain_and_quoted(void **state)
{
    char out[1024];

    (void)state;
    dump("id,description,cost\nN-1,plain,10\nN-2,\"a, b\",20\n", out, sizeof(out));
    assert_string_equal(out, "1:id|description|cost\n2:N-1|plain|10\n3:N-2|a, b|20\n");
    dump("a,\"say \"\"hi\"\"\",c\r\n\"x\"\"\",,\r\n", out, sizeof(out));
    assert_string_equal(out, "1:a|say \"hi\"|c\n2:x\"||\n");
}

static void test_csv_line_ends_bom_blank_lines(void **state)
{
    char out[1024];

    (void)state;
    /* BOM, CRLF, an embedded CRLF in quotes, blank lines counted, no final newline */
    dump("\xEF\xBB\xBFh1,h2\r\n\r\n1,\"two\r\nlines\"\r\n\n3,4", out, sizeof(out));
    assert_string_equal(out, "1:h1|h2\n3:1|two\r\nlines\n5:3|4\n");
    dump("", out, sizeof(out));
    assert_string_equal(out, "");
    dump("only\n", out, sizeof(out));
    assert_string_equal(out, "1:only\n");
    dump(",\n", out, sizeof(out));
    assert_string_equal(out, "1:|\n");
}

static void test_csv_errors_name_row_and_column(void **state)
{
    char out[1024];

    (void)state;
    dump("a,b\n1,\"open\n2,3\n", out, sizeof(out));
    assert_non_null(strstr(out, "ERROR row 2, column 2: quoted field never closed"));
    dump("a,b\n1,2\n3,\"x\"y\n", out, sizeof(out));
    assert_non_null(strstr(out, "ERROR row 3, column 2: 'y' after a closing quote"));
    dump("a,b\n\n1,ab\"c\n", out, sizeof(out));
    assert_non_null(strstr(out, "ERROR row 3, column 2: quote inside an unquoted field"));
    /* the rows before the error were read */
    assert_true(strncmp(out, "1:a|b\n", 6) == 0);
}

static void test_csv_nul_and_limits(void **state)
{
    static const char text[] = "a,b\n1,x\0y\n";
    struct ctl_csv *c = ctl_csv_create(text, sizeof(text) - 1);
    char err[TM_ERR_LEN], **f, *big;
    size_t n;
    long row;

    (void)state;
    assert_int_equal(ctl_csv_next(c, &f, &n, &row, err), 1);
    assert_int_equal(ctl_csv_next(c, &f, &n, &row, err), -1);
    assert_non_null(strstr(err, "row 2, column 2: NUL byte"));
    ctl_csv_destroy(c);

    big = malloc(70000);
    assert_non_null(big);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    c = ctl_csv_create(big, strlen(big));
    assert_int_equal(ctl_csv_next(c, &f, &n, &row, err), -1);
    assert_non_null(strstr(err, "longer than"));
    ctl_csv_destroy(c);
    free(big);
}

static void test_csv_write_quotes_and_guards(void **state)
{
    const char *fields[] = {"plain", "a,b", "say \"hi\"", "two\nlines", "=HYPERLINK(\"x\")",
                            "-12.5", "+1",  "@SUM(A1)",   "-x",         ""};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    assert_non_null(f);
    ctl_csv_write(f, fields, TM_ARRAY_LEN(fields));
    fclose(f);
    assert_string_equal(buf, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\","
                             "\"'=HYPERLINK(\"\"x\"\")\",-12.5,+1,\"'@SUM(A1)\",\"'-x\",\r\n");
    free(buf);
}

static void test_csv_round_trip(void **state)
{
    const char *fields[] = {"N-1", "a, \"quoted\" text", "multi\r\nline", "", "x"};
    char *buf = NULL, err[TM_ERR_LEN], **f;
    size_t len = 0, n;
    long row;
    FILE *fp = open_memstream(&buf, &len);
    struct ctl_csv *c;

    (void)state;
    assert_non_null(fp);
    ctl_csv_write(fp, fields, 5);
    ctl_csv_write(fp, fields, 5);
    fclose(fp);
    c = ctl_csv_create(buf, len);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(ctl_csv_next(c, &f, &n, &row, err), 1);
        assert_int_equal(row, r + 1);
        assert_int_equal(n, 5);
        for (size_t i = 0; i < 5; i++)
            assert_string_equal(f[i], fields[i]);
    }
    assert_int_equal(ctl_csv_next(c, &f, &n, &row, err), 0);
    ctl_csv_destroy(c);
    free(buf);
}

static void test_csv_read_file(void **state)
{
    char path[] = "/tmp/test-csv-XXXXXX", *data = NULL, err[TM_ERR_LEN];
    size_t len = 0;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "a,b\n", 4), 4);
    close(fd);
    assert_int_equal(ctl_read_file(path, &data, &len, err), 0);
    assert_int_equal(len, 4);
    assert_string_equal(data, "a,b\n");
    free(data);
    unlink(path);
    assert_int_equal(ctl_read_file(path, &data, &len, err), -1);
    assert_non_null(strstr(err, "cannot open"));
    assert_null(data);
    assert_int_equal(ctl_read_file("/tmp", &data, &len, err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_plain_and_quoted),
        cmocka_unit_test(test_csv_line_ends_bom_blank_lines),
        cmocka_unit_test(test_csv_errors_name_row_and_column),
        cmocka_unit_test(test_csv_nul_and_limits),
        cmocka_unit_test(test_csv_write_quotes_and_guards),
        cmocka_unit_test(test_csv_round_trip),
        cmocka_unit_test(test_csv_read_file),
    };
    return cmocka_run_group_tests_name("csv", tests, NULL, NULL);
}
