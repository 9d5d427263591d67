#ifndef MX_spool_H
#define MX_spool_H
#endif
