/* tap.h - a minimal TAP producer for the C unit tests */
#ifndef MX_TAP_H
#define MX_TAP_H

void tap_plan(int n);
/* ok - one test point; returns cond */
int ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int is_int(long got, long want, const char *name);
int is_str(const char *got, const char *want, const char *name);
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* done_testing - print the plan if none was given; returns the exit status */
int done_testing(void);

#endif
