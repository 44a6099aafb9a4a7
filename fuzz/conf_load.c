/* conf_load.c — libFuzzer target: arbitrary bytes through the YAML config
 * loader (tw_config_load_string), then free. Name resolution is off so the
 * fuzzer never waits on DNS. */
#include "conf/config.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tw_config *cfg = NULL;
	struct tw_err err;
	tw_config_set_dns(0);
	if (tw_config_load_string("fuzz.yaml", (const char *)data, size, &cfg, &err) == 0) {
		/* the loader promises these (sites may come from the API server
		 * alone when `kubernetes:` is present) */
		if ((cfg->nsites == 0 && !cfg->has_k8s) || cfg->workers == 0)
			__builtin_trap();
		tw_config_free(cfg);
	}
	return 0;
}
