#ifndef MX_dnsbl_H
#define MX_dnsbl_H
#endif
