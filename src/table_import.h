#ifndef MX_table_import_H
#define MX_table_import_H
#endif
