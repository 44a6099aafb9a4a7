/* cmd_validate.c — `tapwork validate`: load a config and report the first error. */
#include "cli/cli.h"
#include "conf/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STDIN_CAP (4u << 20)

static void usage(FILE *out)
{
	fprintf(out, "usage: tapwork validate -c FILE\n"
	             "       tapwork validate --print-default\n\n"
	             "Check a configuration file. Prints \"FILE: ok\" and exits 0, or prints the\n"
	             "first error as FILE:LINE:COL: KEY: message and exits 1.\n"
	             "  -c FILE           the file to check (\"-\" reads standard input)\n"
	             "  --print-default   print the embedded default configuration\n");
}

static int validate_stdin(struct tw_config **cfg, struct tw_err *err)
{
	char *buf = malloc(STDIN_CAP + 1);
	if (buf == NULL)
		return tw_err_set(err, TW_ENOMEM, "<stdin>: out of memory");
	size_t n = fread(buf, 1, STDIN_CAP + 1, stdin);
	int rc;
	if (ferror(stdin))
		rc = tw_err_set(err, TW_EIO, "<stdin>: read error");
	else if (n > STDIN_CAP)
		rc = tw_err_set(err, TW_ELIMIT, "<stdin>: larger than %u bytes", STDIN_CAP);
	else
		rc = tw_config_load_string("<stdin>", buf, n, cfg, err);
	free(buf);
	return rc;
}

static int cmd_validate(int argc, char **argv)
{
	const char *file = NULL;
	if (tw_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--print-default") == 0) {
			fputs(tw_config_default_yaml, stdout);
			return 0;
		}
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			file = argv[++i];
			continue;
		}
		usage(stderr);
		return 2;
	}
	if (file == NULL) {
		usage(stderr);
		return 2;
	}
	struct tw_config *cfg = NULL;
	struct tw_err err = {0};
	int rc = strcmp(file, "-") == 0 ? validate_stdin(&cfg, &err)
	                                : tw_config_load_file(file, &cfg, &err);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	for (const char *l = cfg->warnings; l && *l;) {
		const char *nl = strchr(l, '\n');
		int n = nl ? (int)(nl - l) : (int)strlen(l);
		fprintf(stderr, "warning: %.*s\n", n, l);
		l += n + (nl != NULL);
	}
	printf("%s: ok\n", cfg->source);
	tw_config_free(cfg);
	return 0;
}

TW_CLI_COMMAND(validate, "validate", "check a configuration file", cmd_validate)
