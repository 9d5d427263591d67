#ifndef MX_ioev_H
#define MX_ioev_H
#endif
