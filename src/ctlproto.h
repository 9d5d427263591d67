#ifndef MX_ctlproto_H
#define MX_ctlproto_H
#endif
