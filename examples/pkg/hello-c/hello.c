/* hello-c: a tiny daemon for keel's BuildKit example. It says hello, then
 * ticks every few seconds until SIGTERM, which it answers by saying goodbye
 * and exiting 0. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define VERSION "1.0"

static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("hello-c " VERSION " (gcc " __VERSION__ ")\n");
		return 0;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	struct utsname u;
	if (uname(&u) == 0)
		printf("hello-c " VERSION ": hello from C on %s %s (pid %d)\n", u.sysname, u.machine, (int)getpid());
	for (unsigned long tick = 1; !stop; tick++) {
		printf("hello-c: tick %lu\n", tick);
		for (int i = 0; i < 5 && !stop; i++)
			sleep(1);
	}
	printf("hello-c: goodbye\n");
	return 0;
}
