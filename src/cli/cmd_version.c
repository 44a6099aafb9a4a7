/* cmd_version.c — `tapwork version`. */
#include "cli/cli.h"

#include <nghttp2/nghttp2ver.h>
#include <openssl/opensslv.h>
#include <stdio.h>
#include <yaml.h>
#include <zstd.h>

static int cmd_version(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		printf("usage: tapwork version\n\nPrint tapwork's version and the versions of the "
		       "libraries it was built with.\n");
		return 0;
	}
	printf("tapwork %s\n", TW_VERSION);
	printf("  openssl %s\n  libyaml %s\n  zstd %s\n  nghttp2 %s\n", OPENSSL_VERSION_TEXT,
	       yaml_get_version_string(), ZSTD_versionString(), NGHTTP2_VERSION);
	return 0;
}

TW_CLI_COMMAND(version, "version", "print the version", cmd_version)
