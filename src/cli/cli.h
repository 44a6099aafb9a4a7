/* cli.h — subcommands register themselves; main() knows none of them.
 *
 * A subsystem declares its command next to its code:
 *     TW_CLI_COMMAND(version, "version", "print the version", cmd_version)
 * and main() dispatches argv[1] to it. The command's run() gets argc/argv
 * starting at the command name and returns the process exit code. Every
 * command answers --help / -h itself (tw_cli_wants_help helps). */
#ifndef TW_CLI_CLI_H
#define TW_CLI_CLI_H

#include <stdio.h>

struct tw_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
	struct tw_cmd *next;
};

void tw_cli_register(struct tw_cmd *cmd);
const struct tw_cmd *tw_cli_find(const char *name);
const struct tw_cmd *tw_cli_first(void); /* sorted by name */

/* True when argv[1..] holds -h or --help (stops at "--"). */
int tw_cli_wants_help(int argc, char **argv);

/* Print the top-level usage listing all commands. */
void tw_cli_usage(FILE *out);

#define TW_CLI_COMMAND(ident, name_, summary_, fn)                                                 \
	static struct tw_cmd tw_cmd_##ident = {name_, summary_, fn, NULL};                         \
	__attribute__((constructor)) static void tw_cmd_register_##ident(void)                     \
	{                                                                                          \
		tw_cli_register(&tw_cmd_##ident);                                                  \
	}

#define TW_VERSION "0.1.0"

#endif
