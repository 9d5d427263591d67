/* nofile.h - the descriptor budget: inbound sessions and the message files
 * they open must leave room under RLIMIT_NOFILE for everything else */
#ifndef MX_NOFILE_H
#define MX_NOFILE_H

#include <stdint.h>

/* Descriptors kept for all but inbound sessions and their message files:
 * outbound connections (each with its message file and read-ahead copy),
 * the store, the listeners, the control socket, DNS, worker wake-ups.
 * Under a small limit, a quarter of it instead. */
#define NOFILE_RESERVE	2048

/* nofile_raise - raise the soft limit as far as max_connections sessions,
 * one message file each, and the reserve need (the hard limit permitting);
 * logs when that is not enough. Remembers the limit. */
void nofile_raise(int max_connections);

/* nofile_sessions_max - inbound sessions the limit has room for */
int64_t nofile_sessions_max(void);

/* nofile_file_room - 1 if one more message file may be opened with
 * sessions inbound sessions and files message files open now */
int nofile_file_room(int64_t sessions, int64_t files);

#endif
