/*
 * The baseline for bench/core.bench.ts: the rate of a real ioctl(FIONREAD)
 * on a pipe, the cheapest ioctl a Linux process can make that still goes
 * through fdget, do_vfs_ioctl and a driver's unlocked_ioctl (pipe_ioctl).
 * Compiled at bench time into a temporary directory; never committed as a
 * binary. Prints "<calls> <nanoseconds>" for the best of a few rounds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long calls = argc > 1 ? atol(argv[1]) : 1000000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	long long best = -1;
	int fds[2], avail = 0;

	if (pipe(fds) != 0) {
		perror("pipe");
		return 1;
	}
	if (write(fds[1], "x", 1) != 1)
		return 1;
	for (int r = 0; r < rounds; r++) {
		long long t0 = now_ns();

		for (long i = 0; i < calls; i++) {
			if (ioctl(fds[0], FIONREAD, &avail) != 0) {
				perror("ioctl");
				return 1;
			}
		}
		long long dt = now_ns() - t0;

		if (best < 0 || dt < best)
			best = dt;
	}
	if (avail != 1)
		return 1;
	printf("%ld %lld\n", calls, best);
	return 0;
}
