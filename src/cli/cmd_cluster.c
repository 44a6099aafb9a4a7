/* cmd_cluster.c — `tapwork cluster check`: preflight for the Helm chart.
 *
 * Reads the nodes from `kubectl get nodes -o json` (or a saved copy given by
 * --nodes-json / --from-file) and the StorageClasses from `kubectl get
 * storageclasses -o json` (or --storageclasses-json), parses them with
 * jansson and prints one line per requirement: OK, WARN, FAIL or SKIP.
 * Exit status: 0 when the cluster meets the spec, 1 when it does not, 2 on
 * usage errors or unreadable input. The thresholds are in cli/cluster.h. */
#include "cli/cli.h"
#include "cli/cluster.h"
#include "cli/subproc.h"
#include "core/dbuf.h"
#include "core/err.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CAP (64u << 20)
#define KUBECTL_TIMEOUT_MS 60000
#define MAX_ZONES 64

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: tapwork cluster check [--kubeconfig FILE] [--context NAME]\n"
	        "       tapwork cluster check --nodes-json FILE [--storageclasses-json FILE]\n\n"
	        "Check that a Kubernetes cluster can run the tapwork Helm chart:\n"
	        "  - at least %d Ready, schedulable nodes (not cordoned, no NoSchedule or\n"
	        "    NoExecute taint) that each have >= %d CPUs and >= 16 GiB of memory\n"
	        "    capacity; %d%% below 16 GiB is tolerated (a 16 GB machine reports\n"
	        "    e.g. 16393216Ki); allocatable is shown too\n"
	        "  - those nodes spread over zones (topology.kubernetes.io/zone) where\n"
	        "    the label exists: one zone only is a WARN\n"
	        "  - a default StorageClass\n"
	        "Without --nodes-json it runs `kubectl get nodes -o json` and `kubectl get\n"
	        "storageclasses -o json`. Exit status: 0 = meets the spec, 1 = does not,\n"
	        "2 = usage error or unreadable input.\n"
	        "  --kubeconfig FILE            passed to kubectl\n"
	        "  --context NAME               passed to kubectl\n"
	        "  --nodes-json FILE            saved `kubectl get nodes -o json` output\n"
	        "  --from-file FILE             the same as --nodes-json\n"
	        "  --storageclasses-json FILE   saved `kubectl get storageclasses -o json`\n",
	        TW_CLUSTER_MIN_NODES, TW_CLUSTER_MIN_CPU, TW_CLUSTER_MEM_TOLERANCE_PCT);
}

/* ---- quantities ---------------------------------------------------------- */

static int mul_u64(unsigned long long a, unsigned long long b, unsigned long long *out)
{
	return __builtin_mul_overflow(a, b, out) ? TW_ELIMIT : 0;
}

int tw_cluster_parse_quantity(const char *s, size_t len, unsigned long long *milli)
{
	static const struct {
		const char *sfx;
		unsigned long long mult;
	} sfx[] = {
	    {"Ki", 1ULL << 10},      {"Mi", 1ULL << 20},         {"Gi", 1ULL << 30},
	    {"Ti", 1ULL << 40},      {"Pi", 1ULL << 50},         {"Ei", 1ULL << 60},
	    {"k", 1000ULL},          {"M", 1000000ULL},          {"G", 1000000000ULL},
	    {"T", 1000000000000ULL}, {"P", 1000000000000000ULL}, {"E", 1000000000000000000ULL},
	};
	size_t i = 0;
	unsigned long long base = 0; /* the number in thousandths */
	int digits = 0;

	if (i < len && s[i] == '+')
		i++;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
		if (mul_u64(base, 10, &base) != 0 ||
		    __builtin_add_overflow(base, s[i] - '0', &base))
			return TW_ELIMIT;
	if (mul_u64(base, 1000, &base) != 0)
		return TW_ELIMIT;
	if (i < len && s[i] == '.') {
		unsigned long long scale = 100;
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
			base += (unsigned long long)(s[i] - '0') * scale; /* cannot overflow */
			scale /= 10;
		}
	}
	if (digits == 0)
		return TW_EINVAL;
	const char *rest = s + i;
	size_t rl = len - i;
	if (rl == 0) {
		*milli = base;
		return 0;
	}
	if (rl == 1 && rest[0] == 'm') {
		*milli = base / 1000;
		return 0;
	}
	/* A decimal exponent ("2e3", "15E-1") when only digits follow; else "E" is exa. */
	size_t j = 1;
	if ((rest[0] == 'e' || rest[0] == 'E') && rl >= 2) {
		int neg = 0;
		if (rest[j] == '+' || rest[j] == '-')
			neg = rest[j++] == '-';
		int exp = 0, ndig = 0;
		for (; j < rl && rest[j] >= '0' && rest[j] <= '9' && exp <= 100; j++, ndig++)
			exp = exp * 10 + (rest[j] - '0');
		if (ndig > 0 && j == rl) {
			for (int k = 0; k < exp; k++) {
				if (neg)
					base /= 10;
				else if (mul_u64(base, 10, &base) != 0)
					return TW_ELIMIT;
			}
			*milli = base;
			return 0;
		}
	}
	for (size_t k = 0; k < sizeof sfx / sizeof sfx[0]; k++)
		if (strlen(sfx[k].sfx) == rl && memcmp(sfx[k].sfx, rest, rl) == 0)
			return mul_u64(base, sfx[k].mult, milli);
	return TW_EINVAL;
}

/* ---- input --------------------------------------------------------------- */

static int read_file(const char *path, struct tw_dbuf *out, struct tw_err *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return tw_err_set(err, TW_ENOENT, "%s: cannot open", path);
	char buf[65536];
	int rc = 0;
	size_t n;
	while (rc == 0 && (n = fread(buf, 1, sizeof buf, f)) > 0)
		if (tw_dbuf_append(out, buf, n) != 0)
			rc =
			    tw_err_set(err, TW_ELIMIT, "%s: larger than %zu bytes", path, out->cap);
	if (rc == 0 && ferror(f))
		rc = tw_err_set(err, TW_EIO, "%s: read error", path);
	fclose(f);
	return rc;
}

static int run_kubectl(const char *kubeconfig, const char *context, const char *what,
                       struct tw_dbuf *out, struct tw_err *err)
{
	char *argv[12];
	int n = 0, status = -1;
	argv[n++] = "kubectl";
	if (kubeconfig != NULL) {
		argv[n++] = "--kubeconfig";
		argv[n++] = (char *)kubeconfig;
	}
	if (context != NULL) {
		argv[n++] = "--context";
		argv[n++] = (char *)context;
	}
	argv[n++] = "get";
	argv[n++] = (char *)what;
	argv[n++] = "-o";
	argv[n++] = "json";
	argv[n++] = "--request-timeout=30s";
	argv[n] = NULL;
	int rc = tw_subproc_capture(argv, 0, KUBECTL_TIMEOUT_MS, out, &status, err);
	if (rc == TW_ENOENT)
		return tw_err_set(err, rc, "kubectl not found in PATH (or use --nodes-json FILE)");
	if (rc != 0)
		return rc;
	if (status != 0)
		return tw_err_set(err, TW_EIO, "`kubectl get %s -o json` exited %d", what, status);
	return 0;
}

static json_t *parse_list(const char *src, const struct tw_dbuf *b, const char *kind,
                          struct tw_err *err)
{
	json_error_t je;
	json_t *root = json_loadb(b->data, b->len, 0, &je);
	if (root == NULL) {
		tw_err_set(err, TW_EINVAL, "%s:%d:%d: %s", src, je.line, je.column, je.text);
		return NULL;
	}
	/* A List, or a single object as `kubectl get node NAME -o json` prints. */
	const char *k = json_string_value(json_object_get(root, "kind"));
	json_t *items = json_object_get(root, "items");
	if (json_is_array(items)) {
		json_incref(items);
		json_decref(root);
		return items;
	}
	if (k != NULL && strcmp(k, kind) == 0) {
		json_t *arr = json_array();
		if (arr != NULL)
			json_array_append_new(arr, root);
		else
			json_decref(root);
		return arr;
	}
	json_decref(root);
	tw_err_set(err, TW_EINVAL, "%s: neither a List with items nor a %s", src, kind);
	return NULL;
}

/* ---- the checks ---------------------------------------------------------- */

struct node {
	const char *name;
	const char *zone;
	int ready, schedulable;
	unsigned long long cpu, mem, cpu_alloc, mem_alloc; /* milli */
	const char *why;                                   /* why it does not count */
};

static unsigned long long quantity_of(json_t *obj, const char *key, int *bad)
{
	const char *s = json_string_value(json_object_get(obj, key));
	unsigned long long v = 0;
	if (s == NULL || tw_cluster_parse_quantity(s, strlen(s), &v) != 0)
		*bad = 1;
	return v;
}

static void read_node(json_t *item, struct node *n)
{
	json_t *meta = json_object_get(item, "metadata");
	json_t *labels = json_object_get(meta, "labels");
	json_t *status = json_object_get(item, "status");
	json_t *spec = json_object_get(item, "spec");
	int bad = 0;

	memset(n, 0, sizeof *n);
	n->name = json_string_value(json_object_get(meta, "name"));
	if (n->name == NULL)
		n->name = "(unnamed)";
	n->zone = json_string_value(json_object_get(labels, "topology.kubernetes.io/zone"));
	if (n->zone == NULL)
		n->zone = json_string_value(
		    json_object_get(labels, "failure-domain.beta.kubernetes.io/zone"));
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(status, "conditions"), i, c)
	{
		const char *t = json_string_value(json_object_get(c, "type"));
		const char *s = json_string_value(json_object_get(c, "status"));
		if (t != NULL && strcmp(t, "Ready") == 0)
			n->ready = s != NULL && strcmp(s, "True") == 0;
	}
	n->schedulable = !json_is_true(json_object_get(spec, "unschedulable"));
	json_t *taint;
	json_array_foreach(json_object_get(spec, "taints"), i, taint)
	{
		const char *e = json_string_value(json_object_get(taint, "effect"));
		if (e != NULL && (strcmp(e, "NoSchedule") == 0 || strcmp(e, "NoExecute") == 0))
			n->schedulable = 0;
	}
	json_t *cap = json_object_get(status, "capacity");
	json_t *alloc = json_object_get(status, "allocatable");
	n->cpu = quantity_of(cap, "cpu", &bad);
	n->mem = quantity_of(cap, "memory", &bad);
	n->cpu_alloc = quantity_of(alloc, "cpu", &bad);
	n->mem_alloc = quantity_of(alloc, "memory", &bad);
	if (bad)
		n->why = "capacity or allocatable missing or unreadable";
	else if (!n->ready)
		n->why = "not Ready";
	else if (!n->schedulable)
		n->why = "not schedulable (cordoned or tainted NoSchedule/NoExecute)";
}

static double gib(unsigned long long milli)
{
	return (double)milli / 1000.0 / (double)(1ULL << 30);
}

static int check_nodes(json_t *items, const char *src)
{
	const unsigned long long min_cpu = TW_CLUSTER_MIN_CPU * 1000ULL;
	const unsigned long long min_mem =
	    TW_CLUSTER_MIN_MEM_BYTES / 100 * (100 - TW_CLUSTER_MEM_TOLERANCE_PCT) * 1000ULL;
	size_t count = json_array_size(items);
	struct node *nodes = calloc(count > 0 ? count : 1, sizeof *nodes);
	const char *zones[MAX_ZONES];
	size_t nzones = 0, good = 0, unlabelled = 0;
	int fails = 0;

	if (nodes == NULL) {
		fprintf(stderr, "cluster check: out of memory\n");
		return 2;
	}
	printf("cluster check: %zu node%s from %s\n", count, count == 1 ? "" : "s", src);
	printf("  %-24s %-6s %-16s %-24s %s\n", "NODE", "READY", "CPU (ALLOC)",
	       "MEMORY GiB (ALLOC)", "ZONE");
	for (size_t i = 0; i < count; i++) {
		struct node *n = &nodes[i];
		read_node(json_array_get(items, i), n);
		char cpu[32], mem[32];
		snprintf(cpu, sizeof cpu, "%.3g (%.3g)", (double)n->cpu / 1000,
		         (double)n->cpu_alloc / 1000);
		snprintf(mem, sizeof mem, "%.2f (%.2f)", gib(n->mem), gib(n->mem_alloc));
		printf("  %-24s %-6s %-16s %-24s %s\n", n->name, n->ready ? "yes" : "no", cpu, mem,
		       n->zone != NULL ? n->zone : "-");
	}
	for (size_t i = 0; i < count; i++) {
		struct node *n = &nodes[i];
		if (n->why != NULL) {
			printf("WARN  node %s does not count: %s\n", n->name, n->why);
			continue;
		}
		if (n->cpu < min_cpu || n->mem < min_mem) {
			printf("WARN  node %s is too small: %.3g CPU, %.2f GiB (need >= %d CPU, "
			       ">= %.2f GiB)\n",
			       n->name, (double)n->cpu / 1000, gib(n->mem), TW_CLUSTER_MIN_CPU,
			       gib(min_mem));
			continue;
		}
		good++;
		if (n->zone == NULL) {
			unlabelled++;
			continue;
		}
		size_t z = 0;
		while (z < nzones && strcmp(zones[z], n->zone) != 0)
			z++;
		if (z == nzones && nzones < MAX_ZONES)
			zones[nzones++] = n->zone;
	}
	if (good >= TW_CLUSTER_MIN_NODES) {
		printf("OK    nodes: %zu Ready, schedulable nodes with >= %d CPU and >= %.2f GiB "
		       "(need >= %d)\n",
		       good, TW_CLUSTER_MIN_CPU, gib(min_mem), TW_CLUSTER_MIN_NODES);
	} else {
		printf("FAIL  nodes: %zu Ready, schedulable node%s with >= %d CPU and >= %.2f GiB "
		       "(need >= %d)\n",
		       good, good == 1 ? "" : "s", TW_CLUSTER_MIN_CPU, gib(min_mem),
		       TW_CLUSTER_MIN_NODES);
		fails++;
	}
	if (nzones == 0)
		printf("SKIP  zones: no node carries topology.kubernetes.io/zone\n");
	else if (nzones == 1)
		printf("WARN  zones: every labelled node is in zone %s (no zone redundancy)\n",
		       zones[0]);
	else
		printf("OK    zones: nodes spread over %zu zones%s\n", nzones,
		       unlabelled > 0 ? " (some nodes unlabelled)" : "");
	free(nodes);
	return fails;
}

static int check_storage(json_t *items)
{
	size_t i;
	json_t *sc;
	json_array_foreach(items, i, sc)
	{
		json_t *meta = json_object_get(sc, "metadata");
		json_t *ann = json_object_get(meta, "annotations");
		const char *d = json_string_value(
		    json_object_get(ann, "storageclass.kubernetes.io/is-default-class"));
		if (d == NULL)
			d = json_string_value(json_object_get(
			    ann, "storageclass.beta.kubernetes.io/is-default-class"));
		if (d != NULL && strcmp(d, "true") == 0) {
			const char *name = json_string_value(json_object_get(meta, "name"));
			printf("OK    storage: default StorageClass %s\n",
			       name != NULL ? name : "?");
			return 0;
		}
	}
	printf("FAIL  storage: no default StorageClass among %zu\n", json_array_size(items));
	return 1;
}

static int cluster_check(int argc, char **argv)
{
	const char *kubeconfig = NULL, *context = NULL, *nodes_file = NULL, *sc_file = NULL;
	for (int i = 2; i < argc; i += 2) { /* every option takes a value */
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v != NULL && strcmp(a, "--kubeconfig") == 0)
			kubeconfig = v;
		else if (v != NULL && strcmp(a, "--context") == 0)
			context = v;
		else if (v != NULL &&
		         (strcmp(a, "--nodes-json") == 0 || strcmp(a, "--from-file") == 0))
			nodes_file = v;
		else if (v != NULL && strcmp(a, "--storageclasses-json") == 0)
			sc_file = v;
		else {
			fprintf(stderr, "cluster check: unknown or incomplete argument '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}

	struct tw_dbuf nb, sb;
	struct tw_err err = {0};
	json_t *nodes = NULL, *scs = NULL;
	int rc = 2;
	tw_dbuf_init(&nb, JSON_CAP);
	tw_dbuf_init(&sb, JSON_CAP);

	const char *src = nodes_file != NULL ? nodes_file : "kubectl get nodes";
	if ((nodes_file != NULL ? read_file(nodes_file, &nb, &err)
	                        : run_kubectl(kubeconfig, context, "nodes", &nb, &err)) != 0)
		goto out;
	if ((nodes = parse_list(src, &nb, "Node", &err)) == NULL)
		goto out;
	if (nodes_file == NULL || sc_file != NULL) {
		const char *ssrc = sc_file != NULL ? sc_file : "kubectl get storageclasses";
		if ((sc_file != NULL
		         ? read_file(sc_file, &sb, &err)
		         : run_kubectl(kubeconfig, context, "storageclasses", &sb, &err)) != 0)
			goto out;
		if ((scs = parse_list(ssrc, &sb, "StorageClass", &err)) == NULL)
			goto out;
	}
	int fails = check_nodes(nodes, src);
	if (fails > 1) /* out of memory */
		goto out;
	if (scs != NULL)
		fails += check_storage(scs);
	else
		printf("SKIP  storage: default StorageClass not checked (no "
		       "--storageclasses-json)\n");
	printf("cluster check: %s\n", fails == 0 ? "the cluster meets the spec" : "FAILED");
	rc = fails == 0 ? 0 : 1;
out:
	if (rc == 2 && err.msg[0] != '\0')
		fprintf(stderr, "cluster check: %s\n", err.msg);
	json_decref(nodes);
	json_decref(scs);
	tw_dbuf_free(&nb);
	tw_dbuf_free(&sb);
	return rc;
}

static int cmd_cluster(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "check") == 0) {
		if (tw_cli_wants_help(argc - 1, argv + 1)) {
			usage(stdout);
			return 0;
		}
		return cluster_check(argc, argv);
	}
	if (tw_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "cluster: unknown subcommand (try: tapwork cluster check)\n");
	usage(stderr);
	return 2;
}

TW_CLI_COMMAND(cluster, "cluster", "check a Kubernetes cluster meets the spec (cluster check)",
               cmd_cluster)
