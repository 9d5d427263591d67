#ifndef MX_bounce_H
#define MX_bounce_H
#endif
