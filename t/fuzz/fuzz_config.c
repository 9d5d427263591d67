/* fuzz_config - a configuration file through libconfig and our
 * validation (src/config.c): every key checked, "FILE:LINE: KEY: reason"
 * on refusal. The file is written to a private temporary file because
 * config_load reads a path, as mxrelayd -t does. @include is left out:
 * it reads other files, which is the operator's business, not an attack. */
#include "autoconf.h"

#include <netdb.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static char path[64];

/* getaddrinfo - a test double of the resolver: without server.hostname
 * config_load looks up the host's FQDN, a DNS query per input that would
 * make this target a resolver benchmark; "no answer" keeps gethostname's */
int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	*res = NULL;
	return EAI_NONAME;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CONFIG_ERR_MAX];
	struct config *cfg;
	FILE *fp;

	if (size > 64 * 1024 || memmem(data, size, "include", 7) != NULL)
		return 0;
	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/fuzz_config.%ld.conf", (long)getpid());
	if ((fp = fopen(path, "w")) == NULL)
		abort();
	if (size > 0 && fwrite(data, size, 1, fp) != 1)
		abort();
	fclose(fp);
	err[0] = '\0';
	cfg = config_load(path, err, sizeof(err));
	if (cfg == NULL) {
		FUZZ_ASSERT(err[0] != '\0');
		FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL);
	} else {
		FUZZ_ASSERT(cfg->nlisten >= 1 && cfg->nlisten <= CONFIG_MAX_LISTEN);
		FUZZ_ASSERT(cfg->command_timeout >= 1 && cfg->data_timeout >= 1);
		FUZZ_ASSERT(cfg->max_message_size >= 1);
		FUZZ_ASSERT(cfg->nretry_schedule >= 1 && cfg->nretry_schedule <= CONFIG_MAX_LIST);
		config_free(cfg);
	}
	unlink(path);
	return 0;
}
