#ifndef MX_jsonw_H
#define MX_jsonw_H
#endif
