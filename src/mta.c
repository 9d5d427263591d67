/* mta.c - placeholder until written */
#include "autoconf.h"
extern int mx_placeholder_mta;
