/* fuzz/k8s_ingress.c — libFuzzer target for the Ingress translator
 * (src/k8s/ingress.c): Ingress, IngressClass, Service, EndpointSlice and
 * Secret objects come from the cluster's users (any namespace), so they are
 * untrusted input, annotations and all.
 *
 * Input: a JSON object {"ingresses":[...], "classes":[...], "services":[...],
 * "slices":[...], "secrets":[...]} (anything else is ignored). The objects
 * are put in stores and translated twice onto a fresh config — the second
 * time with the first call's last-good store — and the two configs must
 * have the same shape (the translation is deterministic). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "core/log.h"
#include "k8s/ingress.h"

static const char base_yaml[] = "listen: {http: 127.0.0.1:1}\n"
				"kubernetes:\n  ingress: {class: tapwork, external_name: false}\n";

static struct tw_k8s_store *fill(json_t *root, const char *key)
{
	struct tw_k8s_store *s = tw_k8s_store_new();
	if (s == NULL)
		abort();
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(root, key), i, o)
	{
		if (i >= 64)
			break;
		(void)tw_k8s_store_put(s, o); /* objects without a name are refused */
	}
	return s;
}

static void translate(const struct tw_k8s_view *v, struct tw_k8s_store *last_good, size_t *nsites,
		      size_t *nbackends)
{
	struct tw_config *cfg = NULL;
	struct tw_err err;
	if (tw_config_load_string("fuzz", base_yaml, sizeof base_yaml - 1, &cfg, &err) != 0)
		abort();
	struct tw_k8s_report rep = {0};
	int rc = tw_k8s_ingress_apply(cfg, v, last_good, &rep, &err);
	if (rc != 0 && rc != TW_ELIMIT)
		abort();
	*nsites = cfg->nsites;
	*nbackends = cfg->nbackends;
	tw_k8s_report_clear(&rep);
	tw_config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	if (!init) {
		tw_config_set_dns(0);
		tw_log_level = TW_LOG_ERROR - 1; /* quiet */
		init = 1;
	}
	if (size > 1 << 16)
		return 0;
	json_error_t je;
	json_t *root = json_loadb((const char *)data, size, 0, &je);
	if (!json_is_object(root)) {
		json_decref(root);
		return 0;
	}
	struct tw_k8s_store *st[5] = {fill(root, "ingresses"), fill(root, "classes"), fill(root, "services"),
				      fill(root, "slices"), fill(root, "secrets")};
	struct tw_k8s_view v = {.ingresses = st[0],
				.ingress_classes = st[1],
				.services = st[2],
				.endpointslices = st[3],
				.secrets = st[4]};
	struct tw_k8s_store *lg = tw_k8s_store_new();
	size_t s1, b1, s2, b2;
	translate(&v, lg, &s1, &b1);
	translate(&v, lg, &s2, &b2);
	if (s1 != s2 || b1 != b2)
		abort();
	tw_k8s_store_free(lg);
	for (int i = 0; i < 5; i++)
		tw_k8s_store_free(st[i]);
	json_decref(root);
	return 0;
}
