#ifndef MX_smtp_client_H
#define MX_smtp_client_H
#endif
