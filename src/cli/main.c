/* main.c — dispatch argv[1] to a registered command. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		tw_cli_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0)
		argv[1] = "version";
	const struct tw_cmd *cmd = tw_cli_find(argv[1]);
	if (cmd == NULL) {
		fprintf(stderr, "tapwork: unknown command '%s'\n\n", argv[1]);
		tw_cli_usage(stderr);
		return 2;
	}
	return cmd->run(argc - 1, argv + 1);
}
