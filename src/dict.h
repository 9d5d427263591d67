#ifndef MX_dict_H
#define MX_dict_H
#endif
