/* test_log.c - log_batch: the loop thread's info lines wait for
 * log_flush, in order; a warning goes at once, after them; other threads
 * and lines after log_batch(NULL) are written at once; another thread's
 * fatal error writes the gathered lines before its own */
#include "autoconf.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

static int pipefd[2];
static int scheduled;

static void
schedule(void)
{
	scheduled++;
}

/* drain - what reached stderr since the last call */
static const char *
drain(void)
{
	static char buf[65536];
	ssize_t n, got = 0;

	while ((n = read(pipefd[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
		got += n;
	buf[got] = '\0';
	return buf;
}

static void *
other_thread(void *arg)
{
	log_info("from another thread");
	return arg;
}

static void *
fatal_thread(void *arg)
{
	fatalx("a worker's fatal error");
}

/* fatal_elsewhere - in a child (fatalx exits): the loop thread gathers a
 * line, another thread dies; the child's status */
static int
fatal_elsewhere(void)
{
	pid_t pid = fork();
	pthread_t t;
	int st;

	if (pid == 0) {
		log_batch(schedule);
		log_info("the loop's last line");
		pthread_create(&t, NULL, fatal_thread, NULL);
		pthread_join(t, NULL);
		_exit(0);	/* not reached */
	}
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) ?
	    WEXITSTATUS(st) : -1;
}

int
main(void)
{
	int saved = dup(STDERR_FILENO);
	pthread_t t;
	char big[3000];

	if (pipe(pipefd) < 0 || fcntl(pipefd[0], F_SETFL, O_NONBLOCK) < 0)
		return 1;
	fcntl(pipefd[1], F_SETPIPE_SZ, 1 << 20);
	dup2(pipefd[1], STDERR_FILENO);
	log_init("t", 0);

	log_batch(schedule);
	log_info("one");
	log_info("two");
	is_str(drain(), "", "info lines wait for the flush");
	is_int(scheduled, 1, "the flush is scheduled once per batch");
	log_flush();
	is_str(drain(), "t: one\nt: two\n", "log_flush writes them, in order");

	log_info("three");
	log_warnx("a warning");
	is_str(drain(), "t: three\nt: a warning\n",
	    "a warning is written at once, after the lines gathered before it");

	log_info("four");
	pthread_create(&t, NULL, other_thread, NULL);
	pthread_join(t, NULL);
	is_str(drain(), "t: from another thread\n", "another thread writes at once");

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 8; i++)
		log_info("%s", big);
	ok(strncmp(drain(), "t: four\nt: xxx", 14) == 0,
	    "a full batch is written without waiting for the flush");

	drain();
	log_info("six");
	log_batch(NULL);
	ok(strstr(drain(), "t: six\n") != NULL, "log_batch(NULL) flushes");
	log_info("five");
	is_str(drain(), "t: five\n", "after log_batch(NULL) lines are written at once");

	is_int(fatal_elsewhere(), 1, "another thread's fatal error exits 1");
	is_str(drain(), "t: the loop's last line\nt: a worker's fatal error\n",
	    "the lines gathered before it are written first");

	dup2(saved, STDERR_FILENO);
	return done_testing();
}
