/* Unit tests for the untrusted-input parsers of src/storage/s3.c: the AWS
 * shared credentials file, the ListObjectsV2 XML scanner and the
 * ListMultipartUploads / ListParts scanners with their timestamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3.h"

static int parse(const char *text, const char *profile, struct tw_s3_creds *c)
{
	struct tw_err e = {0};
	return tw_s3_parse_credentials(text, strlen(text), profile, c, &e);
}

static void credentials(void **state)
{
	struct tw_s3_creds c;
	const char *f = "# comment\n"
			"[default]\n"
			"aws_access_key_id = AKIDEFAULT\n"
			"aws_secret_access_key=secret/default+x\n"
			"\n"
			"[profile other]\r\n"
			"  aws_access_key_id\t=  AKIOTHER  \r\n"
			"aws_secret_access_key = s2\r\n"
			"aws_session_token = tok==\r\n"
			"region = eu-west-1\r\n"
			"[empty]\n"
			"; nothing\n"
			"[half]\n"
			"aws_access_key_id = only\n";
	assert_int_equal(parse(f, "default", &c), 0);
	assert_string_equal(c.key_id, "AKIDEFAULT");
	assert_string_equal(c.secret, "secret/default+x");
	assert_string_equal(c.token, "");
	assert_int_equal(parse(f, "other", &c), 0);
	assert_string_equal(c.key_id, "AKIOTHER");
	assert_string_equal(c.secret, "s2");
	assert_string_equal(c.token, "tok==");
	assert_int_equal(parse(f, "missing", &c), TW_ENOENT);
	assert_int_equal(parse(f, "empty", &c), TW_ENOENT);
	assert_int_equal(parse(f, "half", &c), TW_ENOENT);
	/* a prefix of a profile name is not that profile */
	assert_int_equal(parse(f, "defaul", &c), TW_ENOENT);

	/* malformed input */
	assert_int_equal(parse("[default\naws_access_key_id=a\n", "default", &c), TW_EINVAL);
	assert_int_equal(parse("[default]\njust words\n", "default", &c), TW_EINVAL);
	assert_int_equal(parse("[default]\naws_access_key_id=a\x01b\naws_secret_access_key=x\n",
			       "default", &c),
			 TW_EINVAL);
	/* oversized value */
	char big[600];
	memset(big, 'k', sizeof big);
	char *t = malloc(800);
	snprintf(t, 800, "[default]\naws_access_key_id=%.*s\naws_secret_access_key=x\n",
		 (int)sizeof big, big);
	assert_int_equal(parse(t, "default", &c), TW_ELIMIT);
	free(t);

	/* not NUL-terminated: the parser stops at len */
	const char *g = "[default]\naws_access_key_id=AK\naws_secret_access_key=SK\nXXXXXXXX";
	struct tw_err e = {0};
	assert_int_equal(tw_s3_parse_credentials(g, strlen(g) - 8, "default", &c, &e), 0);
	assert_string_equal(c.secret, "SK");
}

struct keys {
	int n;
	char first[64], last[64];
	uint64_t total;
};

static int on_key(void *arg, const char *key, size_t len, uint64_t size)
{
	struct keys *k = arg;
	assert_int_equal(strlen(key), len);
	if (k->n == 0)
		snprintf(k->first, sizeof k->first, "%s", key);
	snprintf(k->last, sizeof k->last, "%s", key);
	k->n++;
	k->total += size;
	return 0;
}

static int stop_at_two(void *arg, const char *key, size_t len, uint64_t size)
{
	struct keys *k = arg;
	return ++k->n == 2 ? 42 : 0;
}

static void list_xml(void **state)
{
	const char *x =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"x\">"
		"<Name>b</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
		"<IsTruncated>true</IsTruncated>"
		"<Contents><Key>p/a</Key><Size>10</Size><ETag>&quot;e&quot;</ETag></Contents>"
		"<Contents><Size>5</Size><Key>p/b&amp;c</Key></Contents>"
		"<Contents><Key>p/&#65;</Key><LastModified>x</LastModified><Size>0</Size></Contents>"
		"<NextContinuationToken>1/Ab+c=</NextContinuationToken></ListBucketResult>";
	struct keys k = {0};
	struct tw_s3_list_page pg;
	struct tw_err e = {0};
	assert_int_equal(tw_s3_parse_list(x, strlen(x), on_key, &k, &pg, &e), 0);
	assert_int_equal(k.n, 3);
	assert_string_equal(k.first, "p/a");
	assert_string_equal(k.last, "p/A");
	assert_int_equal(k.total, 15);
	assert_int_equal(pg.truncated, 1);
	assert_int_equal(pg.nkeys, 3);
	assert_string_equal(pg.next_token, "1/Ab+c=");

	memset(&k, 0, sizeof k);
	assert_int_equal(tw_s3_parse_list(x, strlen(x), stop_at_two, &k, &pg, &e), 42);

	const char *end = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
	memset(&k, 0, sizeof k);
	assert_int_equal(tw_s3_parse_list(end, strlen(end), on_key, &k, &pg, &e), 0);
	assert_int_equal(k.n, 0);
	assert_int_equal(pg.truncated, 0);

	/* malformed */
	const char *bad[] = {
		"<Contents><Key>a</Key><Size>1</Size>",                 /* unterminated */
		"<Contents><Key>a</Key></Contents>",                    /* no Size */
		"<Contents><Key>a</Key><Size>-1</Size></Contents>",     /* bad size */
		"<Contents><Key>a</Key><Size>99999999999999999999</Size></Contents>",
		"<Contents><Key>a&bogus;</Key><Size>1</Size></Contents>", /* entity */
		"<Contents><Key>a&#0;</Key><Size>1</Size></Contents>",
		"<IsTruncated>true</IsTruncated>", /* truncated, no token */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&k, 0, sizeof k);
		assert_int_equal(tw_s3_parse_list(bad[i], strlen(bad[i]), on_key, &k, &pg, &e),
				 TW_EPROTO);
	}
	/* an oversized key is refused */
	size_t cap = 3000;
	char *big = malloc(cap);
	int n = snprintf(big, cap, "<Contents><Key>");
	memset(big + n, 'a', 1100);
	n += 1100;
	n += snprintf(big + n, cap - (size_t)n, "</Key><Size>1</Size></Contents>");
	assert_int_equal(tw_s3_parse_list(big, (size_t)n, on_key, &k, &pg, &e), TW_EPROTO);
	free(big);

	char code[16];
	const char *err = "<Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error>";
	assert_int_equal(tw_s3_xml_text(err, strlen(err), "Code", code, sizeof code), 0);
	assert_string_equal(code, "SignatureDoesNo"); /* truncated to the buffer */
	assert_int_equal(tw_s3_xml_text(err, strlen(err), "UploadId", code, sizeof code),
			 TW_ENOENT);
}

static void times(void **state)
{
	int64_t t;
	assert_int_equal(tw_s3_parse_time("1970-01-01T00:00:00Z", 20, &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(tw_s3_parse_time("2026-12-07T12:00:01.000Z", 24, &t), 0);
	assert_int_equal(t, 1796644801);
	assert_int_equal(tw_s3_parse_time("2024-02-29T23:59:59.123456789Z", 30, &t), 0);
	assert_int_equal(t, 1709251199);
	const char *bad[] = {"2026-12-07T12:00:01", "2026-12-07 12:00:01Z", "2026-13-07T12:00:01Z",
			     "2023-02-29T00:00:00Z", "2026-12-07T24:00:00Z", "2026-12-07T12:00:01.Z",
			     "2026-12-07T12:00:01.0000000000Z", "1969-12-31T23:59:59Z",
			     "2026-12-07T12:00:01ZZ", "2026-1a-07T12:00:01Z", "", "2026-12-07T12:00:01+01:00"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(tw_s3_parse_time(bad[i], strlen(bad[i]), &t), TW_EPROTO);
}

struct ups {
	int n;
	char key[64], id[64];
	int64_t initiated;
};

static int on_upload(void *arg, const char *key, size_t klen, const char *id, int64_t initiated)
{
	struct ups *u = arg;
	assert_int_equal(strlen(key), klen);
	u->n++;
	snprintf(u->key, sizeof u->key, "%s", key);
	snprintf(u->id, sizeof u->id, "%s", id);
	u->initiated = initiated;
	return 0;
}

static void uploads_xml(void **state)
{
	const char *x =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult xmlns=\"x\">"
		"<Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
		"<NextKeyMarker>p/d&amp;e</NextKeyMarker><NextUploadIdMarker>U2</NextUploadIdMarker>"
		"<MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>"
		"<Upload><Key>p/a</Key><UploadId>U1.x_y-z~</UploadId><Initiator><ID>i</ID></Initiator>"
		"<Initiated>1970-01-01T00:01:00.000Z</Initiated></Upload>"
		"<Upload><Initiated>1970-01-02T00:00:00Z</Initiated><UploadId>U2+/=</UploadId>"
		"<Key>p/d&amp;e</Key></Upload></ListMultipartUploadsResult>";
	struct ups u = {0};
	struct tw_s3_uploads_page pg;
	struct tw_err e = {0};
	assert_int_equal(tw_s3_parse_uploads(x, strlen(x), on_upload, &u, &pg, &e), 0);
	assert_int_equal(u.n, 2);
	assert_string_equal(u.key, "p/d&e");
	assert_string_equal(u.id, "U2+/=");
	assert_int_equal(u.initiated, 86400);
	assert_int_equal(pg.truncated, 1);
	assert_int_equal(pg.nuploads, 2);
	assert_string_equal(pg.next_key, "p/d&e");
	assert_string_equal(pg.next_upload, "U2");

	const char *bad[] = {
		"<Upload><Key>k</Key><UploadId>u</UploadId>", /* unterminated */
		"<Upload><Key>k</Key><Initiated>2026-01-01T00:00:00Z</Initiated></Upload>",
		"<Upload><Key>k</Key><UploadId>u</UploadId><Initiated>yesterday</Initiated></Upload>",
		"<Upload><Key>k</Key><UploadId>u\"x</UploadId><Initiated>2026-01-01T00:00:00Z</Initiated></Upload>",
		"<Upload><Key>k</Key><UploadId></UploadId><Initiated>2026-01-01T00:00:00Z</Initiated></Upload>",
		"<Upload><Key>k&bogus;</Key><UploadId>u</UploadId><Initiated>2026-01-01T00:00:00Z</Initiated></Upload>",
		"<IsTruncated>true</IsTruncated>", /* no marker */
		"<NextUploadIdMarker>a b</NextUploadIdMarker>",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&u, 0, sizeof u);
		assert_int_equal(tw_s3_parse_uploads(bad[i], strlen(bad[i]), on_upload, &u, &pg, &e),
				 TW_EPROTO);
	}
	/* an oversized UploadId is refused */
	char big[700];
	int n = snprintf(big, sizeof big, "<Upload><Key>k</Key><UploadId>");
	memset(big + n, 'a', 401);
	n += 401;
	n += snprintf(big + n, sizeof big - (size_t)n,
		      "</UploadId><Initiated>2026-01-01T00:00:00Z</Initiated></Upload>");
	assert_int_equal(tw_s3_parse_uploads(big, (size_t)n, on_upload, &u, &pg, &e), TW_EPROTO);
}

static void parts_xml(void **state)
{
	const char *x = "<ListPartsResult><PartNumberMarker>0</PartNumberMarker>"
			"<NextPartNumberMarker>2</NextPartNumberMarker><IsTruncated>true</IsTruncated>"
			"<Part><PartNumber>1</PartNumber><LastModified>1970-01-01T00:00:10.000Z</LastModified>"
			"<ETag>\"e\"</ETag><Size>8388608</Size></Part>"
			"<Part><PartNumber>2</PartNumber><LastModified>1970-01-01T00:00:05Z</LastModified>"
			"<Size>3</Size></Part></ListPartsResult>";
	struct tw_s3_parts_page pg;
	struct tw_err e = {0};
	assert_int_equal(tw_s3_parse_parts(x, strlen(x), &pg, &e), 0);
	assert_int_equal(pg.nparts, 2);
	assert_int_equal(pg.bytes, 8388611);
	assert_int_equal(pg.newest, 10);
	assert_int_equal(pg.truncated, 1);
	assert_int_equal(pg.next_marker, 2);
	const char *none = "<ListPartsResult><IsTruncated>false</IsTruncated></ListPartsResult>";
	assert_int_equal(tw_s3_parse_parts(none, strlen(none), &pg, &e), 0);
	assert_int_equal(pg.nparts, 0);
	assert_int_equal(pg.newest, 0);
	const char *bad[] = {
		"<Part><Size>1</Size>",
		"<Part><Size>1</Size></Part>",
		"<Part><Size>-1</Size><LastModified>1970-01-01T00:00:05Z</LastModified></Part>",
		"<Part><Size>18446744073709551615</Size><LastModified>1970-01-01T00:00:05Z</LastModified></Part>"
		"<Part><Size>1</Size><LastModified>1970-01-01T00:00:05Z</LastModified></Part>",
		"<IsTruncated>true</IsTruncated>",
		"<NextPartNumberMarker>x</NextPartNumberMarker>",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(tw_s3_parse_parts(bad[i], strlen(bad[i]), &pg, &e), TW_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(credentials),
		cmocka_unit_test(list_xml),
		cmocka_unit_test(times),
		cmocka_unit_test(uploads_xml),
		cmocka_unit_test(parts_xml),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
