#include "cli/cli.h"

#include <string.h>

static struct tw_cmd *commands;

void tw_cli_register(struct tw_cmd *cmd)
{
	struct tw_cmd **pp = &commands;
	while (*pp != NULL && strcmp((*pp)->name, cmd->name) < 0)
		pp = &(*pp)->next;
	cmd->next = *pp;
	*pp = cmd;
}

const struct tw_cmd *tw_cli_first(void) { return commands; }

const struct tw_cmd *tw_cli_find(const char *name)
{
	for (const struct tw_cmd *c = commands; c != NULL; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

int tw_cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	}
	return 0;
}

void tw_cli_usage(FILE *out)
{
	fprintf(out, "tapwork %s — edge proxy and backup engine\n\n"
		     "usage: tapwork COMMAND [options]   (tapwork COMMAND --help for details)\n\n"
		     "commands:\n",
		TW_VERSION);
	for (const struct tw_cmd *c = commands; c != NULL; c = c->next)
		fprintf(out, "  %-12s %s\n", c->name, c->summary);
}
