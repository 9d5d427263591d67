/* smtp_client.c - placeholder until written */
#include "autoconf.h"
extern int mx_placeholder_smtp_client;
