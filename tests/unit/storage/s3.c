/* Integration tests for src/storage/s3.c against a real moto_server.
 *
 * The group setup starts moto_server on a free loopback port (skips with a
 * message when it is not on PATH), creates an IAM user with an allow-all
 * policy and an access key through moto's IAM API, after which moto
 * enforces SigV4 (INITIAL_NO_AUTH_ACTION_COUNT=3). A small fault-injecting
 * proxy (threads, one request per connection) sits in front of moto for
 * the retry tests. moto is stopped by PID at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/sha.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/s3.h"

#include "contract.h"

static pid_t moto_pid = -1;
static int moto_port;
static char key_id[64], secret[128];
static char url[256];

/* ---- helpers ------------------------------------------------------ */

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	if (fd == -1 || bind(fd, (struct sockaddr *)&a, sizeof a) == -1 ||
	    getsockname(fd, (struct sockaddr *)&a, &l) == -1)
		return -1;
	close(fd);
	return ntohs(a.sin_port);
}

static int connect_port(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct body {
	char buf[8192];
	size_t len;
};

static size_t collect_body(char *p, size_t s, size_t n, void *u)
{
	struct body *b = u;
	size_t k = s * n;
	size_t room = sizeof b->buf - 1 - b->len;
	size_t c = k < room ? k : room;
	memcpy(b->buf + b->len, p, c);
	b->len += c;
	b->buf[b->len] = '\0';
	return k;
}

/* One IAM API call (moto routes by the signature's service name). */
static int iam(const char *form, struct body *out)
{
	char u[64];
	snprintf(u, sizeof u, "http://127.0.0.1:%d/", moto_port);
	CURL *h = curl_easy_init();
	out->len = 0;
	out->buf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, u);
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:iam");
	curl_easy_setopt(h, CURLOPT_USERPWD, "AKIASETUP:setup");
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
	CURLcode cc = curl_easy_perform(h);
	long st = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(h);
	return cc == CURLE_OK && st == 200 ? 0 : -1;
}

/* A signed PUT straight to moto, bypassing the driver (foreign objects). */
static int raw_put(const char *path)
{
	char u[300], user[256];
	snprintf(u, sizeof u, "http://127.0.0.1:%d/%s", moto_port, path);
	snprintf(user, sizeof user, "%s:%s", key_id, secret);
	CURL *h = curl_easy_init();
	struct curl_slist *hl = curl_slist_append(
		NULL, "x-amz-content-sha256: "
		      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hl = curl_slist_append(hl, "Content-Type: application/octet-stream");
	curl_easy_setopt(h, CURLOPT_URL, u);
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
	curl_easy_setopt(h, CURLOPT_USERPWD, user);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
	struct body b = {.len = 0};
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	CURLcode cc = curl_easy_perform(h);
	long st = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	return cc == CURLE_OK && st == 200 ? 0 : -1;
}

static int moto_on_path(void)
{
	const char *path = getenv("PATH");
	char buf[4096];
	if (path == NULL)
		return 0;
	snprintf(buf, sizeof buf, "%s", path);
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char f[4200];
		snprintf(f, sizeof f, "%s/moto_server", d);
		if (access(f, X_OK) == 0)
			return 1;
	}
	return 0;
}

static void use_env_creds(const char *sec)
{
	setenv("AWS_ACCESS_KEY_ID", key_id, 1);
	setenv("AWS_SECRET_ACCESS_KEY", sec, 1);
	unsetenv("AWS_SESSION_TOKEN");
}

static int group_setup(void **state)
{
	if (!moto_on_path()) {
		fprintf(stderr, "SKIP s3: moto_server not on PATH\n");
		return 0;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	moto_port = free_port();
	char port[16];
	snprintf(port, sizeof port, "%d", moto_port);
	moto_pid = fork();
	if (moto_pid == 0) {
		/* moto dies with this test even when the test crashes */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(1);
		setenv("INITIAL_NO_AUTH_ACTION_COUNT", "3", 1);
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull != -1 && getenv("S3_TEST_MOTO_LOG") == NULL) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execlp("moto_server", "moto_server", "-H", "127.0.0.1", "-p", port, (char *)NULL);
		_exit(127);
	}
	if (moto_pid == -1)
		return -1;
	double deadline = now_s() + 30;
	int fd = -1;
	while (now_s() < deadline && (fd = connect_port(moto_port)) == -1) {
		int st;
		if (waitpid(moto_pid, &st, WNOHANG) == moto_pid) {
			moto_pid = -1;
			fprintf(stderr, "moto_server exited early\n");
			return -1;
		}
		usleep(50000);
	}
	if (fd == -1)
		return -1;
	close(fd);
	/* exactly three unauthenticated actions, then SigV4 is enforced */
	struct body b;
	if (iam("Action=CreateUser&UserName=tw&Version=2010-05-08", &b) != 0 ||
	    iam("Action=PutUserPolicy&UserName=tw&PolicyName=all&Version=2010-05-08&"
		"PolicyDocument=%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B"
		"%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22"
		"%7D%5D%7D",
		&b) != 0 ||
	    iam("Action=CreateAccessKey&UserName=tw&Version=2010-05-08", &b) != 0 ||
	    tw_s3_xml_text(b.buf, b.len, "AccessKeyId", key_id, sizeof key_id) != 0 ||
	    tw_s3_xml_text(b.buf, b.len, "SecretAccessKey", secret, sizeof secret) != 0) {
		fprintf(stderr, "IAM setup failed: %s\n", b.buf);
		return -1;
	}
	use_env_creds(secret);
	setenv("AWS_REGION", "us-east-1", 1);
	setenv("TAPWORK_S3_RETRY_BASE_MS", "20", 1);
	snprintf(url, sizeof url, "s3:http://127.0.0.1:%d/twbucket/repo/one", moto_port);
	return 0;
}

static int group_teardown(void **state)
{
	if (moto_pid > 0) {
		kill(moto_pid, SIGTERM);
		int st;
		for (int i = 0; i < 100 && waitpid(moto_pid, &st, WNOHANG) == 0; i++)
			usleep(50000);
		if (kill(moto_pid, 0) == 0) {
			kill(moto_pid, SIGKILL);
			waitpid(moto_pid, &st, 0);
		}
	}
	return 0;
}

#define NEED_MOTO()                                                                                \
	do {                                                                                       \
		if (moto_pid <= 0) {                                                               \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static struct tw_storage *open_repo(const char *u, int create)
{
	struct tw_storage *st = NULL;
	struct tw_err e = {0};
	int rc = tw_s3_open(u, create, &st, &e);
	if (rc != 0)
		fail_msg("open %s: %s", u, e.msg);
	return st;
}

/* ---- basic operations --------------------------------------------- */

/* listings are counted with contract.h's contract_seen / contract_count */

static void basic_ops(void **state)
{
	NEED_MOTO();
	struct tw_err e = {0};
	struct tw_storage *st = NULL;
	/* the bucket does not exist yet: open fails clearly, init creates it */
	assert_int_equal(tw_storage_open(url, 0, &st, &e), TW_ENOENT);
	assert_non_null(strstr(e.msg, "does not exist"));
	assert_int_equal(tw_storage_open(url, 1, &st, &e), 0);

	storage_contract_write_read(st);

	/* objects that do not fit the layout are not listed */
	assert_int_equal(raw_put("twbucket/repo/one/data/zz/aa99"), 0);   /* wrong fan-out */
	assert_int_equal(raw_put("twbucket/repo/one/data/aa/x/aa1"), 0);  /* too deep */
	assert_int_equal(raw_put("twbucket/repo/one/data/.hidden"), 0);
	assert_int_equal(raw_put("twbucket/repo/one/snapshots/d/x"), 0);
	assert_int_equal(raw_put("twbucket/repo/oneX/data/aa/aa77"), 0); /* a neighbour */
	storage_contract_list_delete(st);
	/* S3 names the missing key in the error */
	uint8_t *buf = NULL;
	size_t n = 0;
	assert_int_equal(tw_storage_get(st, TW_ST_DATA, CONTRACT_B, 0, TW_ST_WHOLE, &buf, &n, &e),
			 TW_ENOENT);
	assert_non_null(strstr(e.msg, "NoSuchKey"));

	/* conditional put */
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "l1", "one", 3, TW_ST_EXCL, &e), 0);
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "l1", "two", 3, TW_ST_EXCL, &e), TW_EEXIST);
	assert_int_equal(tw_storage_get(st, TW_ST_LOCK, "l1", 0, TW_ST_WHOLE, &buf, &n, &e), 0);
	assert_memory_equal(buf, "one", 3);
	free(buf);
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "l1", "three", 5, 0, &e), 0);

	/* config: list and the second init */
	assert_int_equal(tw_storage_put(st, TW_ST_CONFIG, "config", "cfg", 3, 0, &e), 0);
	struct contract_seen s = {0};
	assert_int_equal(tw_storage_list(st, TW_ST_CONFIG, contract_count, &s, &e), 0);
	assert_int_equal(s.n, 1);
	tw_storage_close(st);
	assert_int_equal(tw_storage_open(url, 1, &st, &e), TW_EEXIST);
	/* another prefix in the same bucket is another repository */
	char other[300];
	snprintf(other, sizeof other, "s3:http://127.0.0.1:%d/twbucket/repo/two/", moto_port);
	st = open_repo(other, 1);
	memset(&s, 0, sizeof s);
	assert_int_equal(tw_storage_list(st, TW_ST_DATA, contract_count, &s, &e), 0);
	assert_int_equal(s.n, 0);
	tw_storage_close(st);
}

/* ---- many objects from several threads, paged listing ------------- */

struct putter {
	struct tw_storage *st;
	int first, step, total;
	int failed;
	struct tw_err e;
};

static void *put_many(void *arg)
{
	struct putter *p = arg;
	for (int i = p->first; i < p->total; i += p->step) {
		char name[32];
		snprintf(name, sizeof name, "%02x%06d", i % 256, i);
		if (tw_storage_put(p->st, TW_ST_DATA, name, name, 8, 0, &p->e) != 0) {
			p->failed = 1;
			break;
		}
	}
	return NULL;
}

static int proxy_start(void);
static void proxy_stop(void);
static int seen(const char *method, const char *path);
static int px_port(void);

static void many_objects_paged_list(void **state)
{
	NEED_MOTO();
	/* through the (pass-through) proxy, to count the list requests */
	assert_int_equal(proxy_start(), 0);
	char u[300];
	snprintf(u, sizeof u, "s3:http://127.0.0.1:%d/twbucket/many", px_port());
	struct tw_storage *st = open_repo(u, 1);
	enum { N = 1111, T = 4 };
	pthread_t th[T];
	struct putter p[T];
	double t0 = now_s();
	for (int i = 0; i < T; i++) {
		p[i] = (struct putter){st, i, T, N, 0, {0}};
		pthread_create(&th[i], NULL, put_many, &p[i]);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		if (p[i].failed)
			fail_msg("put: %s", p[i].e.msg);
	}
	double t1 = now_s();
	struct contract_seen s = {0};
	struct tw_err e = {0};
	assert_int_equal(tw_storage_list(st, TW_ST_DATA, contract_count, &s, &e), 0);
	fprintf(stderr, "measure: %d small puts from %d threads in %.2fs, list in %.2fs\n", N, T,
		t1 - t0, now_s() - t1);
	assert_int_equal(s.n, N); /* more than moto's page of 1000 */
	assert_int_equal(s.total, 8 * N);
	assert_true(seen("GET", "list-type=2&prefix=many") >= 1);
	assert_int_equal(seen("GET", "continuation-token="), 1);
	tw_storage_close(st);
	proxy_stop();
}

/* Virtual-host style: BUCKET.localhost (curl resolves *.localhost to
 * loopback itself, moto takes the bucket from the Host header). */
static void vhost_style(void **state)
{
	NEED_MOTO();
	char u[300];
	snprintf(u, sizeof u, "s3:http://localhost:%d/twbucket/vh?style=vhost", moto_port);
	struct tw_storage *st = open_repo(u, 1);
	struct tw_err e = {0};
	assert_int_equal(tw_storage_put(st, TW_ST_INDEX, "v1", "vhost", 5, TW_ST_EXCL, &e), 0);
	tw_storage_close(st);
	/* the same object through a path-style URL */
	snprintf(u, sizeof u, "s3:http://127.0.0.1:%d/twbucket/vh", moto_port);
	st = open_repo(u, 0);
	uint8_t *buf;
	size_t n;
	assert_int_equal(tw_storage_get(st, TW_ST_INDEX, "v1", 0, TW_ST_WHOLE, &buf, &n, &e), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "vhost", 5);
	free(buf);
	struct contract_seen s = {0};
	assert_int_equal(tw_storage_list(st, TW_ST_INDEX, contract_count, &s, &e), 0);
	assert_int_equal(s.n, 1);
	tw_storage_close(st);
	/* TAPWORK_S3_VHOST=1 does the same */
	setenv("TAPWORK_S3_VHOST", "1", 1);
	snprintf(u, sizeof u, "s3:http://localhost:%d/twbucket/vh", moto_port);
	st = open_repo(u, 0);
	unsetenv("TAPWORK_S3_VHOST");
	assert_int_equal(tw_storage_put(st, TW_ST_INDEX, "v1", "again", 5, TW_ST_EXCL, &e),
			 TW_EEXIST);
	tw_storage_close(st);
}

/* ---- multipart ------------------------------------------------------ */

static void multipart(void **state)
{
	NEED_MOTO();
	struct tw_storage *st = open_repo(url, 0);
	size_t len = (size_t)72 << 20; /* above SINGLE_PUT_MAX (64 MiB) */
	uint8_t *big = malloc(len);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(big + i, &x, 8);
	}
	struct tw_err e = {0};
	double t0 = now_s();
	assert_int_equal(tw_storage_put(st, TW_ST_DATA, "cc0000big", big, len, 0, &e), 0);
	double t1 = now_s();
	uint64_t size;
	assert_int_equal(tw_storage_stat(st, TW_ST_DATA, "cc0000big", &size, &e), 0);
	assert_int_equal(size, len);
	uint8_t *got;
	size_t n;
	assert_int_equal(tw_storage_get(st, TW_ST_DATA, "cc0000big", 0, TW_ST_WHOLE, &got, &n, &e), 0);
	fprintf(stderr, "measure: 72 MiB multipart put %.2fs, get %.2fs\n", t1 - t0, now_s() - t1);
	assert_int_equal(n, len);
	assert_memory_equal(got, big, len);
	free(got);

	/* TAPWORK_S3_LIMIT_RATE caps each transfer: 1 MiB at 512 KiB/s */
	setenv("TAPWORK_S3_LIMIT_RATE", "524288", 1);
	struct tw_storage *slow = open_repo(url, 0);
	unsetenv("TAPWORK_S3_LIMIT_RATE");
	t0 = now_s();
	assert_int_equal(tw_storage_put(slow, TW_ST_DATA, "cc0000slow", big, 1 << 20, 0, &e), 0);
	t1 = now_s();
	fprintf(stderr, "measure: 1 MiB at a 512 KiB/s limit in %.2fs\n", t1 - t0);
	assert_true(t1 - t0 >= 1.5);
	tw_storage_close(slow);
	/* a range across the 8 MiB part boundary */
	size_t off = ((size_t)8 << 20) - 100;
	assert_int_equal(tw_storage_get(st, TW_ST_DATA, "cc0000big", off, 300, &got, &n, &e), 0);
	assert_int_equal(n, 300);
	assert_memory_equal(got, big + off, 300);
	free(got);
	free(big);
	tw_storage_close(st);
}

/* ---- credentials ---------------------------------------------------- */

static void credentials(void **state)
{
	NEED_MOTO();
	struct tw_storage *st = NULL;
	struct tw_err e = {0};
	use_env_creds("wrong-secret");
	int rc = tw_s3_open(url, 0, &st, &e);
	use_env_creds(secret);
	assert_int_equal(rc, TW_EPERM);
	assert_non_null(strstr(e.msg, "S3 403 SignatureDoesNotMatch"));
	assert_null(strstr(e.msg, "wrong-secret"));

	/* shared credentials file, named profile */
	char path[] = "/tmp/tw-s3-cred-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd != -1);
	char text[512];
	int n = snprintf(text, sizeof text,
			 "[default]\naws_access_key_id = nope\naws_secret_access_key = nope\n"
			 "[profile ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
			 key_id, secret);
	assert_int_equal(write(fd, text, (size_t)n), n);
	close(fd);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	setenv("AWS_PROFILE", "ci", 1);
	rc = tw_s3_open(url, 0, &st, &e);
	setenv("AWS_PROFILE", "missing", 1);
	struct tw_storage *st2 = NULL;
	int rc2 = tw_s3_open(url, 0, &st2, &e);
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unlink(path);
	use_env_creds(secret);
	assert_int_equal(rc, 0);
	tw_storage_close(st);
	assert_int_equal(rc2, TW_ENOENT);
	assert_non_null(strstr(e.msg, "[missing]"));

	/* another region: the bucket is created with a LocationConstraint and
	 * requests are signed for that region */
	char eu[300];
	snprintf(eu, sizeof eu, "s3:http://127.0.0.1:%d/eubucket/x?region=eu-west-1", moto_port);
	st = open_repo(eu, 1);
	assert_int_equal(tw_storage_put(st, TW_ST_KEY, "k1", "key", 3, TW_ST_EXCL, &e), 0);
	uint64_t size;
	assert_int_equal(tw_storage_stat(st, TW_ST_KEY, "k1", &size, &e), 0);
	assert_int_equal(size, 3);
	tw_storage_close(st);

	/* malformed locations */
	assert_int_equal(tw_s3_open("s3:ftp://h/b", 0, &st, &e), TW_EINVAL);
	assert_int_equal(tw_s3_open("s3:http://h", 0, &st, &e), TW_EINVAL);
	assert_int_equal(tw_s3_open("s3:http://h/Bad_Bucket", 0, &st, &e), TW_EINVAL);
	assert_int_equal(tw_s3_open("s3:http://h/bkt/a//b", 0, &st, &e), TW_EINVAL);
	assert_int_equal(tw_s3_open("s3:http://h/bkt/a?style=odd", 0, &st, &e), TW_EINVAL);
}

/* ---- fault-injecting proxy ------------------------------------------ */

enum act { FORWARD, R500, R503, CUT, STALL, FWD_CUT };

struct rule {
	char method[8];
	char path[64]; /* substring of the request target */
	enum act act;
	int times;
};

struct proxy {
	int lfd, port;
	pthread_t th;
	atomic_int stop, active;
	pthread_mutex_t mu;
	struct rule rules[32];
	int nrules;
	char log[2048][192]; /* "METHOD target [md5] sha=HEX" of every request */
	int nlog;
};

static struct proxy px;

static int px_port(void) { return px.port; }

static int read_request(int fd, char *buf, size_t cap, size_t *len)
{
	size_t n = 0;
	char *end = NULL;
	while (end == NULL) {
		if (n + 1 >= cap)
			return -1;
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	size_t head = (size_t)(end + 4 - buf);
	size_t cl = 0;
	const char *h = strcasestr(buf, "\r\nContent-Length:");
	if (h != NULL && h < end)
		cl = strtoul(h + 17, NULL, 10);
	if (head + cl >= cap)
		return -1;
	while (n < head + cl) {
		ssize_t r = read(fd, buf + n, head + cl - n);
		if (r <= 0)
			return -1;
		n += (size_t)r;
	}
	*len = n;
	return 0;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void *conn_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	size_t cap = (size_t)20 << 20, len;
	char *buf = malloc(cap);
	if (buf == NULL || read_request(fd, buf, cap, &len) != 0)
		goto out;
	char method[8] = "", target[512] = "";
	sscanf(buf, "%7s %511s", method, target);
	enum act act = FORWARD;
	pthread_mutex_lock(&px.mu);
	char *eoh = strstr(buf, "\r\n\r\n");
	const char *md5 = strcasestr(buf, "\r\nContent-MD5:");
	const char *sha = strcasestr(buf, "\r\nx-amz-content-sha256:");
	int shalen = 0;
	if (sha != NULL && sha < eoh) {
		sha += 24;
		while (*sha == ' ')
			sha++;
		while (shalen < 64 && sha[shalen] != '\r')
			shalen++;
	} else
		sha = "";
	if (px.nlog < 2048)
		snprintf(px.log[px.nlog++], sizeof px.log[0], "%s %.100s%s sha=%.*s", method, target,
			 md5 != NULL && md5 < eoh ? " md5" : "", shalen, sha);
	for (int i = 0; i < px.nrules; i++) {
		struct rule *r = &px.rules[i];
		if (r->times > 0 && strcmp(r->method, method) == 0 && strstr(target, r->path)) {
			r->times--;
			act = r->act;
			break;
		}
	}
	pthread_mutex_unlock(&px.mu);
	const char *reply = NULL;
	if (act == R500)
		reply = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: "
			"close\r\n\r\n";
	else if (act == R503)
		reply = "HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	if (reply) {
		write_all(fd, reply, strlen(reply));
		goto out;
	}
	if (act == CUT)
		goto out;
	if (act == STALL) {
		struct pollfd p = {fd, POLLIN, 0};
		poll(&p, 1, 6000); /* until the client gives up */
		goto out;
	}
	int up = connect_port(moto_port);
	if (up == -1)
		goto out;
	write_all(up, buf, len);
	ssize_t r;
	while ((r = read(up, buf, cap)) > 0)
		if (act == FORWARD)
			write_all(fd, buf, (size_t)r);
	close(up);
out:
	free(buf);
	close(fd);
	atomic_fetch_sub(&px.active, 1);
	return NULL;
}

static void *accept_thread(void *arg)
{
	while (!atomic_load(&px.stop)) {
		struct pollfd p = {px.lfd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept4(px.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -1)
			continue;
		pthread_t t;
		atomic_fetch_add(&px.active, 1);
		if (pthread_create(&t, NULL, conn_thread, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
		else {
			atomic_fetch_sub(&px.active, 1);
			close(fd);
		}
	}
	return NULL;
}

static int proxy_start(void)
{
	memset(&px, 0, sizeof px);
	pthread_mutex_init(&px.mu, NULL);
	px.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	if (px.lfd == -1 || bind(px.lfd, (struct sockaddr *)&a, sizeof a) == -1 ||
	    listen(px.lfd, 64) == -1 || getsockname(px.lfd, (struct sockaddr *)&a, &l) == -1)
		return -1;
	px.port = ntohs(a.sin_port);
	return pthread_create(&px.th, NULL, accept_thread, NULL);
}

static void proxy_stop(void)
{
	atomic_store(&px.stop, 1);
	pthread_join(px.th, NULL);
	for (int i = 0; i < 200 && atomic_load(&px.active) > 0; i++)
		usleep(50000);
	close(px.lfd);
	pthread_mutex_destroy(&px.mu);
}

static void rule(const char *method, const char *path, enum act act, int times)
{
	pthread_mutex_lock(&px.mu);
	assert_true(px.nrules < 32);
	struct rule *r = &px.rules[px.nrules++];
	snprintf(r->method, sizeof r->method, "%s", method);
	snprintf(r->path, sizeof r->path, "%s", path);
	r->act = act;
	r->times = times;
	pthread_mutex_unlock(&px.mu);
}

/* Count requests in the log with this method and target substring. */
static int seen(const char *method, const char *path)
{
	int c = 0;
	size_t ml = strlen(method);
	pthread_mutex_lock(&px.mu);
	for (int i = 0; i < px.nlog; i++)
		if (strncmp(px.log[i], method, ml) == 0 && px.log[i][ml] == ' ' &&
		    strstr(px.log[i], path))
			c++;
	pthread_mutex_unlock(&px.mu);
	return c;
}

static void faults(void **state)
{
	NEED_MOTO();
	assert_int_equal(proxy_start(), 0);
	setenv("TAPWORK_S3_STALL_SECS", "2", 1);
	char u[300];
	snprintf(u, sizeof u, "s3:http://127.0.0.1:%d/twbucket/faults", px.port);
	struct tw_storage *st = open_repo(u, 1);
	unsetenv("TAPWORK_S3_STALL_SECS");
	struct tw_err e = {0};
	uint8_t *buf;
	size_t n;

	/* idempotent requests retry through 500, 503, a cut connection and a stall */
	rule("PUT", "/data/f0/f0put", CUT, 1);
	rule("PUT", "/data/f0/f0put", R503, 1);
	assert_int_equal(tw_storage_put(st, TW_ST_DATA, "f0put", "payload", 7, 0, &e), 0);
	assert_int_equal(seen("PUT", "/data/f0/f0put"), 3);
	rule("GET", "/data/f0/f0put", R500, 2);
	rule("GET", "/data/f0/f0put", STALL, 1);
	double t0 = now_s();
	assert_int_equal(tw_storage_get(st, TW_ST_DATA, "f0put", 0, TW_ST_WHOLE, &buf, &n, &e), 0);
	double took = now_s() - t0;
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "payload", 7);
	free(buf);
	assert_int_equal(seen("GET", "/data/f0/f0put"), 4);
	assert_true(took >= 1.5 && took < 10); /* the stall was cut by the timeout */

	/* persistent failure: gives up after TAPWORK_S3_TRIES (5) attempts */
	rule("GET", "/snapshots/gone", R503, 50);
	assert_int_equal(tw_storage_get(st, TW_ST_SNAPSHOT, "gone", 0, TW_ST_WHOLE, &buf, &n, &e),
			 TW_EIO);
	assert_non_null(strstr(e.msg, "503"));
	assert_int_equal(seen("GET", "/snapshots/gone"), 5);

	/* conditional put answered 500 before reaching the store: HEAD shows
	 * it absent, then it is sent again */
	rule("PUT", "/locks/c1", R500, 1);
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "c1", "mine", 4, TW_ST_EXCL, &e), 0);
	assert_int_equal(seen("PUT", "/locks/c1"), 2);
	assert_int_equal(seen("HEAD", "/locks/c1"), 1);

	/* conditional put that landed but whose reply was lost: not resent,
	 * HEAD finds our bytes (same MD5): success, not a false EEXIST */
	rule("PUT", "/locks/c2", FWD_CUT, 1);
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "c2", "mine", 4, TW_ST_EXCL, &e), 0);
	assert_int_equal(seen("PUT", "/locks/c2"), 1);
	assert_int_equal(seen("HEAD", "/locks/c2"), 1);
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "c2", "theirs", 6, TW_ST_EXCL, &e),
			 TW_EEXIST);

	/* someone else's object is there and our reply was lost: EEXIST after
	 * one PUT and a HEAD, never a blind second PUT */
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "c3", "theirs", 6, TW_ST_EXCL, &e), 0);
	int puts_before = seen("PUT", "/locks/c3");
	rule("PUT", "/locks/c3", R500, 1);
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "c3", "mine", 4, TW_ST_EXCL, &e),
			 TW_EEXIST);
	assert_int_equal(seen("PUT", "/locks/c3") - puts_before, 1);

	/* a pack named by its SHA-256: that digest is signed as the payload hash
	 * and no MD5 is computed; other puts carry Content-MD5 */
	{
		static const char pack[] = "pack bytes named by their digest";
		uint8_t d[32];
		char hex[65];
		SHA256((const uint8_t *)pack, sizeof pack - 1, d);
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", d[i]);
		assert_int_equal(tw_storage_put(st, TW_ST_DATA, hex, pack, sizeof pack - 1,
						TW_ST_SHA256_NAME, &e), 0);
		char want[80];
		snprintf(want, sizeof want, " sha=%s", hex);
		assert_int_equal(seen("PUT", want), 1);
		assert_int_equal(seen("PUT", " md5 sha="), seen("PUT", " sha=") - 1);
		assert_int_equal(tw_storage_get(st, TW_ST_DATA, hex, 0, TW_ST_WHOLE, &buf, &n, &e), 0);
		assert_int_equal(n, sizeof pack - 1);
		assert_memory_equal(buf, pack, n);
		free(buf);
		/* a name that is not a digest is not trusted: hashed as usual, with MD5 */
		assert_int_equal(tw_storage_put(st, TW_ST_DATA, "notadigest", pack, sizeof pack - 1,
						TW_ST_SHA256_NAME, &e), 0);
		assert_int_equal(seen("PUT", "/notadigest md5 sha="), 1);
	}

	/* a client error is never retried */
	int gets_before = seen("GET", "/index/nothere");
	assert_int_equal(tw_storage_get(st, TW_ST_INDEX, "nothere", 0, TW_ST_WHOLE, &buf, &n, &e),
			 TW_ENOENT);
	assert_int_equal(seen("GET", "/index/nothere") - gets_before, 1);

	/* a multipart part failing once is retried; the object is whole */
	size_t len = (size_t)65 << 20; /* just above SINGLE_PUT_MAX: multipart */
	uint8_t *big = malloc(len);
	for (size_t i = 0; i < len; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 12));
	rule("PUT", "partNumber=2", R500, 1);
	assert_int_equal(tw_storage_put(st, TW_ST_DATA, "ddmp", big, len, 0, &e), 0);
	assert_int_equal(seen("PUT", "partNumber=2"), 2);
	assert_int_equal(tw_storage_get(st, TW_ST_DATA, "ddmp", len - 10, 10, &buf, &n, &e), 0);
	assert_int_equal(n, 10);
	assert_memory_equal(buf, big + len - 10, 10);
	free(buf);
	/* a part failing for good aborts the upload (DELETE ?uploadId=) */
	rule("PUT", "partNumber=3", R500, 50);
	assert_int_not_equal(tw_storage_put(st, TW_ST_DATA, "ddmp2", big, len, 0, &e), 0);
	assert_int_equal(seen("DELETE", "ddmp2?uploadId="), 1);
	uint64_t size;
	assert_int_equal(tw_storage_stat(st, TW_ST_DATA, "ddmp2", &size, &e), TW_ENOENT);
	free(big);

	tw_storage_close(st);
	proxy_stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(basic_ops),
		cmocka_unit_test(many_objects_paged_list),
		cmocka_unit_test(vhost_style),
		cmocka_unit_test(multipart),
		cmocka_unit_test(credentials),
		cmocka_unit_test(faults),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
