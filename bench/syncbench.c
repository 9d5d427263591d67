/* bench/syncbench.c - what a group commit's sync costs on this file system,
 * the numbers behind the commit journal (doc/spool.md "Commit journal").
 *
 *   cc -O2 -o /tmp/syncbench bench/syncbench.c
 *   cd /var/spool/mxrelay && /tmp/syncbench [MESSAGES [SIZE [ROUNDS]]]
 *
 * In the current directory (put it on the spool's file system), ROUNDS
 * times (default 200) a batch of MESSAGES (default 10) files of SIZE
 * octets (default 4096) is made durable four ways:
 *   files+fdatasync  a new file each, fdatasync(2) of each, fsync of the
 *                    directory (the spool's small-batch path before the
 *                    journal)
 *   files+syncfs     a new file each, one syncfs(2) (its big-batch path)
 *   journal          one write of the batch into a preallocated file and
 *                    one fdatasync(2) (the commit journal)
 *   growing log      the same into a file that grows (no preallocation)
 * and prints milliseconds per batch. Files are removed afterwards.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void
check(int ok, const char *what)
{
	if (!ok) {
		perror(what);
		exit(1);
	}
}

static void
new_files(int round, int n, const char *buf, size_t size, int *fds)
{
	char name[64];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "syncbench.%d.%d", round, i);
		fds[i] = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		check(fds[i] >= 0 && write(fds[i], buf, size) == (ssize_t)size, name);
	}
}

static void
remove_files(int rounds, int n)
{
	char name[64];

	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "syncbench.%d.%d", r, i);
			unlink(name);
		}
	unlink("syncbench.log");
}

int
main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10, rounds = argc > 3 ? atoi(argv[3]) : 200;
	size_t size = argc > 2 ? (size_t)atol(argv[2]) : 4096, batch;
	static const char *names[] = { "files+fdatasync", "files+syncfs", "journal",
	    "growing log" };
	int *fds, dirfd = open(".", O_RDONLY | O_DIRECTORY);
	char *buf;

	check(n > 0 && n <= 1024 && size > 0 && rounds > 0 && dirfd >= 0, "arguments");
	batch = size * (size_t)n;
	check((buf = malloc(batch)) != NULL && (fds = calloc((size_t)n, sizeof(int))) != NULL,
	    "malloc");
	memset(buf, 'x', batch);
	printf("%d messages of %zu octets per batch, %d batches\n", n, size, rounds);
	for (int mode = 0; mode < 4; mode++) {
		int log = open("syncbench.log", O_RDWR | O_CREAT | O_TRUNC, 0600);
		double t0, t;

		check(log >= 0, "syncbench.log");
		if (mode == 2) {	/* preallocated: written once, synced */
			for (int r = 0; r < rounds; r++)
				check(pwrite(log, buf, batch, (off_t)(r * batch)) == (ssize_t)batch,
				    "preallocate");
			check(fsync(log) == 0, "fsync");
		}
		t0 = now_ms();
		for (int r = 0; r < rounds; r++) {
			if (mode == 0 || mode == 1)
				new_files(r, n, buf, size, fds);
			if (mode == 0) {
				for (int i = 0; i < n; i++)
					check(fdatasync(fds[i]) == 0, "fdatasync");
				check(fsync(dirfd) == 0, "fsync .");
			} else if (mode == 1)
				check(syncfs(dirfd) == 0, "syncfs");
			else {
				check(pwrite(log, buf, batch, (off_t)(r * batch)) == (ssize_t)batch,
				    "write");
				check(fdatasync(log) == 0, "fdatasync");
			}
			if (mode == 0 || mode == 1)
				for (int i = 0; i < n; i++)
					close(fds[i]);
		}
		t = now_ms() - t0;
		printf("%-16s %8.3f ms per batch  %9.0f messages/s\n", names[mode],
		    t / rounds, rounds * n / (t / 1e3));
		close(log);
		remove_files(rounds, n);
	}
	return 0;
}
