/* Unit tests for tw_listen_socket (src/edge/worker.c): the options accepted
 * client sockets get from the listener. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "edge/edge.h"

/* tw_conn_accept sets no TCP_NODELAY of its own: every accepted socket must
 * inherit it from the listener, or small answers wait on Nagle. */
static void accepted_sockets_have_nodelay(void **state)
{
	(void)state;
	struct tw_err err = {0};
	struct tw_addr a = {.len = sizeof(struct sockaddr_in)};
	struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* port 0: any free one */
	int l = tw_listen_socket(&a, 1, &err);
	assert_true(l >= 0);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	assert_int_equal(getsockname(l, (struct sockaddr *)&ss, &sl), 0);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(c >= 0);
	assert_int_equal(connect(c, (struct sockaddr *)&ss, sl), 0);
	int s = -1;
	for (int i = 0; i < 1000 && s < 0; i++) { /* the listener is non-blocking */
		s = accept(l, NULL, NULL);
		if (s < 0)
			usleep(1000);
	}
	assert_true(s >= 0);
	int v = 0;
	socklen_t vl = sizeof v;
	assert_int_equal(getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
	assert_int_equal(v, 1);
	close(s);
	close(c);
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepted_sockets_have_nodelay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
