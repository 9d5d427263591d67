#ifndef MX_smtp_server_H
#define MX_smtp_server_H
#endif
