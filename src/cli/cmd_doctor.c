/* cmd_doctor.c — `tapwork doctor`: is this machine set up like everyone else's?
 *
 * The pinned versions live in one file, deploy/versions.env (KEY=VALUE lines).
 * doctor finds it by --versions FILE, $TAPWORK_VERSIONS, or by looking for
 * deploy/versions.env in the current directory and its parents (it is a tool
 * for a checkout); the container image installs a copy at
 * /usr/share/tapwork/versions.env. Each check prints one line:
 *     OK | MISSING | WRONG VERSION   NAME  LOCAL  (pinned P)
 * A pinned version matches when it is a dot-boundary prefix of the local one.
 *
 * `tapwork doctor --health URL` is the container health check: GET URL with
 * libcurl (already linked), exit 0 on a 2xx answer, 1 otherwise. It saves
 * shipping curl or a shell in the runtime image. */
#include "backup/proc.h"
#include "cli/cli.h"
#include "cli/subproc.h"
#include "core/dbuf.h"
#include "core/err.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>
#include <zstd.h>

#define VERSIONS_REL "deploy/versions.env"
#define VERSIONS_INSTALLED "/usr/share/tapwork/versions.env"
#define VERSIONS_CAP (64u * 1024)
#define MAX_PINS 128
#define TOOL_OUTPUT_CAP (64u * 1024)
#define TOOL_TIMEOUT_MS 15000
#define HEALTH_TIMEOUT_MS 3000

enum group { G_BUILD, G_LIBS, G_CONTAINERS, G_APP, G_KUBERNETES, G_BACKUP, G_COUNT };

static const char *const group_names[G_COUNT] = {"build",      "libraries", "containers",
                                                 "app",        "kubernetes", "backup"};
static const char *const group_titles[G_COUNT] = {
    "build (compiler)",
    "libraries (what this tapwork binary runs with)",
    "containers (one engine and one compose tool)",
    "app (examples/app runtime)",
    "kubernetes (client tools for the Helm chart)",
    "backup (PostgreSQL client tools for postgres sources of backup jobs)",
};

/* A library's version comes from the library itself, a tool's from running it. */
enum probe_kind { PROBE_LIB, PROBE_TOOL };

struct check {
	enum group group;
	const char *name;
	const char *key; /* key in versions.env */
	const char *alt; /* non-NULL: one of the checks with this alt id is enough */
	enum probe_kind kind;
	const char *(*lib_version)(void);
	const char *argv[5];
	const char *install; /* hint printed with MISSING */
};

static const char *v_openssl(void)
{
	return OpenSSL_version(OPENSSL_VERSION_STRING);
}
static const char *v_libyaml(void)
{
	return yaml_get_version_string();
}
static const char *v_zstd(void)
{
	return ZSTD_versionString();
}
static const char *v_nghttp2(void)
{
	const nghttp2_info *i = nghttp2_version(0);
	return i != NULL ? i->version_str : NULL;
}
static const char *v_curl(void)
{
	const curl_version_info_data *d = curl_version_info(CURLVERSION_NOW);
	return d != NULL ? d->version : NULL;
}
static const char *v_jansson(void)
{
	return jansson_version_str();
}

static const struct check checks[] = {
    {G_BUILD,
     "gcc",
     "GCC_VERSION",
     NULL,
     PROBE_TOOL,
     NULL,
     {"gcc", "-dumpfullversion", NULL},
     "apt-get install build-essential"},
    {G_LIBS, "openssl", "OPENSSL_VERSION", NULL, PROBE_LIB, v_openssl, {NULL}, "libssl-dev"},
    {G_LIBS, "libyaml", "LIBYAML_VERSION", NULL, PROBE_LIB, v_libyaml, {NULL}, "libyaml-dev"},
    {G_LIBS, "zstd", "ZSTD_VERSION", NULL, PROBE_LIB, v_zstd, {NULL}, "libzstd-dev"},
    {G_LIBS, "nghttp2", "NGHTTP2_VERSION", NULL, PROBE_LIB, v_nghttp2, {NULL}, "libnghttp2-dev"},
    {G_LIBS, "curl", "CURL_VERSION", NULL, PROBE_LIB, v_curl, {NULL}, "libcurl4-openssl-dev"},
    {G_LIBS, "jansson", "JANSSON_VERSION", NULL, PROBE_LIB, v_jansson, {NULL}, "libjansson-dev"},
    {G_CONTAINERS,
     "podman",
     "PODMAN_VERSION",
     "engine",
     PROBE_TOOL,
     NULL,
     {"podman", "--version", NULL},
     "apt-get install podman runc"},
    {G_CONTAINERS,
     "docker",
     "DOCKER_VERSION",
     "engine",
     PROBE_TOOL,
     NULL,
     {"docker", "--version", NULL},
     "https://docs.docker.com/engine/install/"},
    {G_CONTAINERS,
     "docker-compose",
     "DOCKER_COMPOSE_VERSION",
     "compose",
     PROBE_TOOL,
     NULL,
     {"docker-compose", "--version", NULL},
     "apt-get install docker-compose"},
    {G_CONTAINERS,
     "podman-compose",
     "PODMAN_COMPOSE_VERSION",
     "compose",
     PROBE_TOOL,
     NULL,
     {"podman-compose", "--version", NULL},
     "apt-get install podman-compose"},
    {G_APP,
     "node",
     "NODE_VERSION",
     NULL,
     PROBE_TOOL,
     NULL,
     {"node", "--version", NULL},
     "apt-get install nodejs npm"},
    {G_KUBERNETES,
     "kubectl",
     "KUBECTL_VERSION",
     NULL,
     PROBE_TOOL,
     NULL,
     {"kubectl", "version", "--client", NULL},
     "https://kubernetes.io/docs/tasks/tools/"},
    {G_KUBERNETES,
     "helm",
     "HELM_VERSION",
     NULL,
     PROBE_TOOL,
     NULL,
     {"helm", "version", "--short", NULL},
     "https://helm.sh/docs/intro/install/"},
    {G_BACKUP,
     "pg_dump",
     "POSTGRES_CLIENT_VERSION",
     NULL,
     PROBE_TOOL,
     NULL,
     {"pg_dump", "--version", NULL},
     "apt-get install postgresql-client-15"},
    {G_BACKUP,
     "pg_restore",
     "POSTGRES_CLIENT_VERSION",
     NULL,
     PROBE_TOOL,
     NULL,
     {"pg_restore", "--version", NULL},
     "apt-get install postgresql-client-15"},
};
#define NCHECKS (sizeof checks / sizeof checks[0])

struct pin {
	char key[64];
	char value[128];
};

struct pins {
	struct pin v[MAX_PINS];
	size_t n;
	char path[PATH_MAX];
};

enum status { ST_OK, ST_MISSING, ST_WRONG, ST_NOPIN };

static void usage(FILE *out)
{
	fprintf(out, "usage: tapwork doctor [--versions FILE] [GROUP...]\n"
	             "       tapwork doctor --health URL\n\n"
	             "Check this machine against the pinned versions in deploy/versions.env and\n"
	             "print one line per tool: OK, MISSING or WRONG VERSION.\n"
	             "Groups: build (gcc), libraries (OpenSSL, libyaml, zstd, nghttp2, curl,\n"
	             "jansson: the versions this binary runs with), containers (podman or docker,\n"
	             "and docker-compose or podman-compose), app (node), kubernetes (kubectl,\n"
	             "helm), backup (pg_dump, pg_restore: found in PATH, then\n"
	             "/usr/lib/postgresql/15/bin, as backup jobs do). Without GROUP all are\n"
	             "checked and kubernetes and backup are optional;\n"
	             "a named group is required. Exit status: 0 when every required tool is\n"
	             "present at its pinned version, 1 when not, 2 on usage errors or when the\n"
	             "versions file cannot be read.\n"
	             "  --versions FILE   the versions file (default: $TAPWORK_VERSIONS, else\n"
	             "                    deploy/versions.env in this directory or a parent, else\n"
	             "                    " VERSIONS_INSTALLED ")\n"
	             "  --health URL      GET URL (2xx = healthy, exit 0; else exit 1); the\n"
	             "                    container image's HEALTHCHECK\n");
}

/* ---- versions file ------------------------------------------------------- */

static int find_versions(const char *given, struct pins *p, struct tw_err *err)
{
	const char *env = getenv("TAPWORK_VERSIONS");
	if (given == NULL && env != NULL && env[0] != '\0')
		given = env;
	if (given != NULL) {
		if ((size_t)snprintf(p->path, sizeof p->path, "%s", given) >= sizeof p->path)
			return tw_err_set(err, TW_EINVAL, "versions file path too long");
		return 0;
	}
	char dir[PATH_MAX];
	if (getcwd(dir, sizeof dir) == NULL)
		return tw_err_set(err, TW_EIO, "getcwd failed");
	for (int depth = 0; depth < 64; depth++) {
		int n = snprintf(p->path, sizeof p->path, "%s%s" VERSIONS_REL, dir,
		                 strcmp(dir, "/") == 0 ? "" : "/");
		if (n > 0 && (size_t)n < sizeof p->path) {
			FILE *f = fopen(p->path, "r");
			if (f != NULL) {
				fclose(f);
				return 0;
			}
		}
		char *slash = strrchr(dir, '/');
		if (slash == NULL || strcmp(dir, "/") == 0)
			break;
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	FILE *f = fopen(VERSIONS_INSTALLED, "r");
	if (f != NULL) {
		fclose(f);
		snprintf(p->path, sizeof p->path, "%s", VERSIONS_INSTALLED);
		return 0;
	}
	return tw_err_set(err, TW_ENOENT,
	                  "no versions file: run from a tapwork checkout, or pass --versions FILE");
}

static int load_versions(struct pins *p, struct tw_err *err)
{
	FILE *f = fopen(p->path, "r");
	if (f == NULL)
		return tw_err_set(err, TW_ENOENT, "%s: cannot open", p->path);
	char *buf = malloc(VERSIONS_CAP + 1);
	if (buf == NULL) {
		fclose(f);
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	}
	size_t len = fread(buf, 1, VERSIONS_CAP + 1, f);
	int rc = 0;
	if (ferror(f))
		rc = tw_err_set(err, TW_EIO, "%s: read error", p->path);
	else if (len > VERSIONS_CAP)
		rc = tw_err_set(err, TW_ELIMIT, "%s: larger than %u bytes", p->path, VERSIONS_CAP);
	fclose(f);
	size_t pos = 0;
	int lineno = 0;
	while (rc == 0 && pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - line) : len - pos;
		pos += ll + (nl != NULL);
		lineno++;
		while (ll > 0 &&
		       (line[ll - 1] == '\r' || line[ll - 1] == ' ' || line[ll - 1] == '\t'))
			ll--;
		if (ll == 0 || line[0] == '#')
			continue;
		const char *eq = memchr(line, '=', ll);
		size_t kl = eq != NULL ? (size_t)(eq - line) : 0;
		size_t vl = eq != NULL ? ll - kl - 1 : 0;
		if (eq == NULL || kl == 0 || vl == 0) {
			rc = tw_err_set(err, TW_EINVAL, "%s:%d: expected KEY=VALUE", p->path,
			                lineno);
			break;
		}
		if (kl >= sizeof p->v[0].key || vl >= sizeof p->v[0].value) {
			rc = tw_err_set(err, TW_ELIMIT, "%s:%d: key or value too long", p->path,
			                lineno);
			break;
		}
		if (p->n == MAX_PINS) {
			rc = tw_err_set(err, TW_ELIMIT, "%s: more than %d entries", p->path,
			                MAX_PINS);
			break;
		}
		memcpy(p->v[p->n].key, line, kl);
		p->v[p->n].key[kl] = '\0';
		memcpy(p->v[p->n].value, eq + 1, vl);
		p->v[p->n].value[vl] = '\0';
		p->n++;
	}
	free(buf);
	return rc;
}

static const char *pin_of(const struct pins *p, const char *key)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].key, key) == 0)
			return p->v[i].value;
	return NULL;
}

/* ---- versions ------------------------------------------------------------ */

/* The first dotted number in text ("gcc (Debian 12.2.0-14) 12.2.0" -> 12.2.0,
 * "Client Version: v1.32.4" -> 1.32.4). A number needs at least one dot. */
static int extract_version(const char *text, size_t len, char *out, size_t cap)
{
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)text[i]))
			continue;
		if (i > 0 && (isalnum((unsigned char)text[i - 1]) && text[i - 1] != 'v'))
			continue;
		size_t j = i, dots = 0;
		while (j < len &&
		       (isdigit((unsigned char)text[j]) ||
		        (text[j] == '.' && j + 1 < len && isdigit((unsigned char)text[j + 1])))) {
			dots += text[j] == '.';
			j++;
		}
		if (dots == 0) {
			i = j;
			continue;
		}
		if (j - i >= cap)
			return TW_ELIMIT;
		memcpy(out, text + i, j - i);
		out[j - i] = '\0';
		return 0;
	}
	return TW_ENOENT;
}

/* "3.0" matches "3.0.19" and "3.0", not "3.01" or "3.10". */
static int version_matches(const char *pinned, const char *local)
{
	size_t n = strlen(pinned);
	if (strncmp(pinned, local, n) != 0)
		return 0;
	return local[n] == '\0' || local[n] == '.' || local[n] == '-' || local[n] == '+';
}

static enum status probe(const struct check *c, const struct pins *p, char *local, size_t cap)
{
	local[0] = '\0';
	if (c->kind == PROBE_LIB) {
		const char *v = c->lib_version();
		if (v == NULL)
			return ST_MISSING;
		snprintf(local, cap, "%s", v);
	} else {
		struct tw_dbuf out;
		struct tw_err e = {0};
		int status = -1;
		const char *argv[sizeof c->argv / sizeof c->argv[0]];
		char found[PATH_MAX];
		memcpy(argv, c->argv, sizeof argv);
		/* Backup tools are found as backup jobs find them (tw_proc_find: PATH,
		 * then /usr/lib/postgresql/15/bin, where the image keeps them). */
		if (c->group == G_BACKUP) {
			if (tw_proc_find(NULL, c->argv[0], found, sizeof found, &e) != 0)
				return ST_MISSING;
			argv[0] = found;
		}
		tw_dbuf_init(&out, TOOL_OUTPUT_CAP);
		int rc = tw_subproc_capture((char *const *)argv, 1, TOOL_TIMEOUT_MS, &out, &status,
		                            &e);
		int ok = rc == 0 && status == 0 && out.len > 0 &&
		         extract_version(out.data, out.len, local, cap) == 0;
		tw_dbuf_free(&out);
		if (!ok) {
			local[0] = '\0';
			return ST_MISSING;
		}
	}
	const char *pinned = pin_of(p, c->key);
	if (pinned == NULL)
		return ST_NOPIN;
	return version_matches(pinned, local) ? ST_OK : ST_WRONG;
}

/* ---- health -------------------------------------------------------------- */

static size_t discard(char *ptr, size_t size, size_t n, void *ud)
{
	size_t *total = ud;
	*total += size * n;
	return *total > (1u << 20) ? 0 : size * n; /* a health answer is small */
}

static int health(const char *url)
{
	CURL *h = curl_easy_init();
	if (h == NULL) {
		fprintf(stderr, "doctor --health: curl init failed\n");
		return 1;
	}
	size_t total = 0;
	long code = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)HEALTH_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &total);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tapwork-doctor/" TW_VERSION);
	CURLcode rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		fprintf(stderr, "unhealthy: %s: %s\n", url, curl_easy_strerror(rc));
		return 1;
	}
	if (code < 200 || code > 299) {
		fprintf(stderr, "unhealthy: %s: HTTP %ld\n", url, code);
		return 1;
	}
	printf("healthy: %s: HTTP %ld\n", url, code);
	return 0;
}

/* ---- the report ---------------------------------------------------------- */

static const char *status_word(enum status s)
{
	switch (s) {
	case ST_OK: return "OK";
	case ST_MISSING: return "MISSING";
	case ST_WRONG: return "WRONG VERSION";
	case ST_NOPIN: return "NOT PINNED";
	}
	return "?";
}

static int run_checks(const struct pins *p, const int *selected, const int *required)
{
	enum status st[NCHECKS];
	char local[NCHECKS][64];
	int problems = 0;

	printf("tapwork doctor: pinned versions from %s\n", p->path);
	for (size_t i = 0; i < NCHECKS; i++)
		if (selected[checks[i].group])
			st[i] = probe(&checks[i], p, local[i], sizeof local[i]);
	for (int g = 0; g < G_COUNT; g++) {
		if (!selected[g])
			continue;
		printf("%s%s\n", group_titles[g], required[g] ? "" : " [optional]");
		for (size_t i = 0; i < NCHECKS; i++) {
			const struct check *c = &checks[i];
			if (c->group != (enum group)g)
				continue;
			const char *pinned = pin_of(p, c->key);
			/* An alternative is only needed when none of its peers is OK. */
			int alt_ok = 0;
			if (c->alt != NULL)
				for (size_t j = 0; j < NCHECKS; j++)
					if (j != i && checks[j].alt != NULL &&
					    strcmp(checks[j].alt, c->alt) == 0 && st[j] == ST_OK)
						alt_ok = 1;
			int counts = required[g] && !alt_ok && st[i] != ST_OK;
			/* Of a group of alternatives, report one problem, on its first member. */
			if (counts && c->alt != NULL)
				for (size_t j = 0; j < i; j++)
					if (checks[j].alt != NULL &&
					    strcmp(checks[j].alt, c->alt) == 0)
						counts = 0;
			problems += counts;
			printf("  %-14s %-15s", status_word(st[i]), c->name);
			if (st[i] == ST_MISSING)
				printf(" (pinned %s; %s)", pinned != NULL ? pinned : "-",
				       c->install);
			else if (st[i] == ST_NOPIN)
				printf(" %s (no %s in the versions file)", local[i], c->key);
			else
				printf(" %s (pinned %s)", local[i], pinned);
			if (st[i] != ST_OK && !counts)
				printf(alt_ok ? " [not needed: an alternative is OK]"
				              : " [optional]");
			printf("\n");
		}
	}
	if (problems > 0) {
		printf("doctor: %d problem%s\n", problems, problems == 1 ? "" : "s");
		return 1;
	}
	printf("doctor: every required tool is present at its pinned version\n");
	return 0;
}

static int cmd_doctor(int argc, char **argv)
{
	const char *versions = NULL;
	int selected[G_COUNT] = {0}, required[G_COUNT] = {0};
	int named = 0;

	if (tw_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--health") == 0 && i + 1 < argc)
			return health(argv[i + 1]);
		if (strcmp(argv[i], "--versions") == 0 && i + 1 < argc) {
			versions = argv[++i];
			continue;
		}
		int g = 0;
		while (g < G_COUNT && strcmp(argv[i], group_names[g]) != 0)
			g++;
		if (g == G_COUNT) {
			fprintf(stderr, "doctor: unknown argument or group '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
		selected[g] = required[g] = 1;
		named = 1;
	}
	if (!named)
		for (int g = 0; g < G_COUNT; g++) {
			selected[g] = 1;
			required[g] = g != G_KUBERNETES && g != G_BACKUP;
		}

	struct pins *p = calloc(1, sizeof *p);
	struct tw_err err = {0};
	if (p == NULL) {
		fprintf(stderr, "doctor: out of memory\n");
		return 2;
	}
	int rc = 2;
	if (find_versions(versions, p, &err) == 0 && load_versions(p, &err) == 0)
		rc = run_checks(p, selected, required);
	else
		fprintf(stderr, "doctor: %s\n", err.msg);
	free(p);
	return rc;
}

TW_CLI_COMMAND(doctor, "doctor", "check tool and library versions against deploy/versions.env",
               cmd_doctor)
