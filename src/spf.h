#ifndef MX_spf_H
#define MX_spf_H
#endif
