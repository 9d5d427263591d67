#ifndef MX_tls_H
#define MX_tls_H
#endif
