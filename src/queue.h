#ifndef MX_queue_H
#define MX_queue_H
#endif
