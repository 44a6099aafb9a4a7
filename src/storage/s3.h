/* s3.h — the S3 storage driver (behind struct tw_storage) and its two
 * parsers of untrusted input, exposed for tests and fuzzing.
 *
 * Location: "s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX][?style=vhost&region=R]".
 * Signing is libcurl's CURLOPT_AWS_SIGV4. See docs/internals/s3.md. */
#ifndef TW_STORAGE_S3_H
#define TW_STORAGE_S3_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "storage/storage.h"

/* Open (create=1: create the bucket if missing and fail TW_EEXIST when
 * PREFIX/config exists already). location starts with "s3:". */
int tw_s3_open(const char *location, int create, struct tw_storage **out, struct tw_err *e);

/* Credentials as read from the environment or a shared credentials file. */
#define TW_S3_KEY_MAX 256
#define TW_S3_TOKEN_MAX 4096
struct tw_s3_creds {
	char key_id[TW_S3_KEY_MAX];
	char secret[TW_S3_KEY_MAX];
	char token[TW_S3_TOKEN_MAX]; /* "" when none */
};

/* Parse an AWS shared credentials file (INI) held in buf[0..len) and fill
 * *out from section [profile] (or [profile NAME]). TW_ENOENT when the
 * profile or its key pair is missing, TW_EINVAL/TW_ELIMIT on malformed or
 * oversized input. Never reads past len; buf need not be NUL-terminated. */
int tw_s3_parse_credentials(const char *buf, size_t len, const char *profile,
			    struct tw_s3_creds *out, struct tw_err *e);

/* One page of a ListObjectsV2 response. */
#define TW_S3_TOKEN_CAP 1024
struct tw_s3_list_page {
	int truncated;
	char next_token[TW_S3_TOKEN_CAP]; /* "" when absent */
	unsigned nkeys;
};

typedef int (*tw_s3_key_cb)(void *arg, const char *key, size_t key_len, uint64_t size);

/* Scan a ListObjectsV2 XML body: cb(key, size) per <Contents> (key is
 * entity-decoded and NUL-terminated, at most 1024 bytes), then *page.
 * A non-zero return of cb stops the scan and is returned. Keys longer than
 * 1024 bytes, sizes that do not fit, more than 100000 entries or an
 * unterminated element fail TW_EPROTO. */
int tw_s3_parse_list(const char *buf, size_t len, tw_s3_key_cb cb, void *arg,
		     struct tw_s3_list_page *page, struct tw_err *e);

/* One page of a ListMultipartUploads response (uploads never completed). */
#define TW_S3_UPLOAD_ID_MAX 400
struct tw_s3_uploads_page {
	int truncated;
	char next_key[1025];                     /* NextKeyMarker, "" when absent */
	char next_upload[TW_S3_UPLOAD_ID_MAX + 1]; /* NextUploadIdMarker */
	unsigned nuploads;
};

/* key (entity-decoded, NUL-terminated, at most 1024 bytes), upload id (at
 * most TW_S3_UPLOAD_ID_MAX bytes of [A-Za-z0-9._~+/=-]) and Initiated as
 * Unix seconds. */
typedef int (*tw_s3_upload_cb)(void *arg, const char *key, size_t key_len, const char *upload_id,
			       int64_t initiated);

/* Scan a ListMultipartUploads XML body: cb per <Upload>, then *page. A
 * non-zero return of cb stops the scan and is returned. An entry without
 * Key, UploadId or a valid Initiated, oversized fields, more than 100000
 * entries or a truncated page without markers fail TW_EPROTO. */
int tw_s3_parse_uploads(const char *buf, size_t len, tw_s3_upload_cb cb, void *arg,
			struct tw_s3_uploads_page *page, struct tw_err *e);

/* One page of a ListParts response, summed. */
struct tw_s3_parts_page {
	int truncated;
	unsigned next_marker; /* NextPartNumberMarker */
	unsigned nparts;
	uint64_t bytes;  /* sum of the parts' Size */
	int64_t newest;  /* latest part LastModified (Unix seconds), 0 if no part */
};

/* Scan a ListParts XML body. Bad numbers or times, sums that overflow, more
 * than 100000 parts or a truncated page without a marker fail TW_EPROTO. */
int tw_s3_parse_parts(const char *buf, size_t len, struct tw_s3_parts_page *page,
		      struct tw_err *e);

/* An S3 timestamp "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (UTC) to Unix seconds.
 * 0 or TW_EPROTO. */
int tw_s3_parse_time(const char *p, size_t n, int64_t *t);

/* Text of the first <tag>...</tag> in buf[0..len) (raw, no entity decoding),
 * copied into out (cap bytes incl. NUL, truncated). 0 or TW_ENOENT. */
int tw_s3_xml_text(const char *buf, size_t len, const char *tag, char *out, size_t cap);

#endif
